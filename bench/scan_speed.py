"""Scan speed: cost follows the sample, not the table; and optout vs presidio-structured.

    python bench/scan_speed.py [--sizes 100000,1000000,10000000] [--slice 10000]

1. Writes a 20-column Parquet table at each size (cached under bench/data/), scans each with
   the same warmed-up classifier, and prints wall times and the ratio largest/smallest.
2. On a slice of `--slice` rows, times presidio-structured's `PandasAnalysisBuilder` (same
   Presidio recognizers and spaCy model, every value analyzed as it does by default) against
   optout's classification of the same table, and prints both F1 scores on the known truth.
Ratios are measured in one process, one after the other; absolute times on a shared machine
mislead.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from faker import Faker  # noqa: E402

from optout.model.dataset import Sample  # noqa: E402
from optout.scanner.catalog import Catalog  # noqa: E402
from optout.scanner.classify.column import Classifier  # noqa: E402
from optout.scanner.scan import ScanOptions, scan  # noqa: E402

DATA = ROOT / "bench" / "data"
POOL = 5000
#: column → is PII (the truth for both tools)
TRUTH = {
    "id": False,
    "customer_id": True,
    "email": True,
    "phone": True,
    "full_name": True,
    "ip_address": True,
    "iban": True,
    "card_number": True,
    "birth_date": True,
    "city": True,
    "order_uuid": False,
    "amount": False,
    "status": False,
    "sku": False,
    "app_version": False,
    "event_ts": False,
    "quantity": False,
    "description": False,
    "country_code": False,
    "payload_md5": False,
}


def pool_table() -> pa.Table:
    """POOL distinct realistic rows; the big tables repeat them in a scrambled order."""
    fake = Faker("en_US")
    fake.seed_instance(7)
    rng = random.Random(7)
    rows = []
    for i in range(POOL):
        rows.append(
            {
                "customer_id": 100_000 + i,
                "email": fake.email(),
                "phone": f"+1 {rng.choice([212, 415, 617, 312])}-{rng.randint(201, 989)}-{rng.randint(1000, 9999)}",
                "full_name": fake.name(),
                "ip_address": fake.ipv4_public(),
                "iban": fake.iban(),
                "card_number": fake.credit_card_number(),
                "birth_date": fake.date_of_birth(minimum_age=18, maximum_age=90),
                "city": fake.city(),
                "order_uuid": fake.uuid4(),
                "amount": round(rng.uniform(1, 900), 2),
                "status": rng.choice(["new", "paid", "shipped"]),
                "sku": f"X{rng.randint(10**7, 10**8 - 1)}",
                "app_version": f"{rng.randint(1, 4)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 30)}",
                "quantity": rng.randint(1, 9),
                "description": rng.choice(
                    [
                        "Blue cotton shirt with two pockets and a classic collar.",
                        "A sturdy steel water bottle that keeps drinks cold all day.",
                    ]
                ),
                "country_code": rng.choice(["US", "CA", "MX"]),
                "payload_md5": f"{rng.getrandbits(128):032x}",
            }
        )
    return pa.Table.from_pylist(rows)


def write_table(rows: int) -> Path:
    """The 20-column Parquet file with `rows` rows (cached)."""
    path = DATA / f"wide_{rows}.parquet"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.register("pool", pool_table())
    con.execute("CREATE TABLE p AS SELECT row_number() OVER () - 1 AS k, * FROM pool")
    con.execute(f"""
        COPY (SELECT r.range AS id, p.* EXCLUDE (k),
                     TIMESTAMP '2025-01-01' + to_seconds(r.range * 7) AS event_ts
              FROM range({rows}) r JOIN p ON p.k = (r.range * 7919) % {POOL}
              ORDER BY r.range)
        TO '{path}' (FORMAT parquet, COMPRESSION zstd)""")
    con.close()
    return path


def timed_scan(path: Path, classifier: Classifier) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = scan(
            [str(path)], Catalog(f"{tmp}/c.duckdb"), ScanOptions(full=True), classifier=classifier
        )
        elapsed = time.perf_counter() - start
    assert not report.failed, report.results
    return elapsed, report.results[0].row_count or 0


def f1(predicted: set[str]) -> float:
    truth = {c for c, pii in TRUTH.items() if pii}
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 0.0
    recall = tp / len(truth)
    return 2 * precision * recall / (precision + recall) if tp else 0.0


def structured_comparison(path: Path, classifier: Classifier, rows: int) -> None:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_structured import PandasAnalysisBuilder

    table = pq.read_table(path).slice(0, rows)
    setup = classifier.setup
    registry = RecognizerRegistry(
        recognizers=list(setup.pattern_recognizers + setup.ner_recognizers),
        supported_languages=["en"],
    )
    analyzer = AnalyzerEngine(
        nlp_engine=setup.nlp_engine, registry=registry, supported_languages=["en"]
    )
    builder = PandasAnalysisBuilder(analyzer=analyzer, batch_size=64)
    # presidio-structured takes only primitive cell types: dates and timestamps as text.
    frame = table.to_pandas()
    for name, field in zip(table.column_names, table.schema, strict=True):
        if pa.types.is_temporal(field.type):
            frame[name] = frame[name].astype(str)

    start = time.perf_counter()
    ours = classifier.classify("wide", Sample(table, table.num_rows))
    ours_time = time.perf_counter() - start
    start = time.perf_counter()
    theirs = builder.generate_analysis(frame)
    theirs_time = time.perf_counter() - start

    ours_f1 = f1({f.name for f in ours if f.pii})
    theirs_f1 = f1(set(theirs.entity_mapping))
    print(f"\n{rows:,}-row slice, 20 columns, every value given to both tools:")
    print(f"  presidio-structured PandasAnalysisBuilder  {theirs_time:8.2f}s  F1 {theirs_f1:.3f}")
    print(f"  optout classifier                          {ours_time:8.2f}s  F1 {ours_f1:.3f}")
    print(f"  ratio presidio-structured / optout: {theirs_time / ours_time:.1f}x")
    print(f"  presidio-structured's mapping: {dict(sorted(theirs.entity_mapping.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--slice", type=int, default=10_000)
    parser.add_argument("--skip-structured", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    paths = {n: write_table(n) for n in sizes}

    start = time.perf_counter()
    classifier = Classifier()
    print(
        f"classifier load (spaCy + Presidio, once per process): {time.perf_counter() - start:.2f}s"
    )
    timed_scan(paths[sizes[0]], classifier)  # warm caches: both sides of the ratio start warm

    times = {}
    for n in sizes:
        runs = [timed_scan(paths[n], classifier) for _ in range(3)]
        times[n] = min(t for t, _ in runs)
        size_mb = paths[n].stat().st_size / 1e6
        print(f"{n:>12,} rows  {size_mb:8.1f} MB  scan {times[n]:6.2f}s (best of 3)")
    print(f"ratio {sizes[-1]:,} / {sizes[0]:,} rows: {times[sizes[-1]] / times[sizes[0]]:.2f}")
    if not args.skip_structured:
        structured_comparison(paths[sizes[0]], classifier, args.slice)


if __name__ == "__main__":
    main()
