"""Apply speed: erase N subjects from a 10M-row Parquet dataset.

    python bench/apply_speed.py [--rows 10000000] [--subjects 1000] [--repeat 3]

Prints optout's apply time (prepare, check, commit, verify; the plan is made beforehand) and,
on a copy of the same file, the time of a bare DuckDB
`COPY (SELECT * FROM t WHERE id NOT IN (...)) TO ...`, their ratio, and the peak memory
(max RSS) of the applying process. Each side runs in its own subprocess, the two alternating
`--repeat` times; the best time of each side is compared, and each pair's ratio is shown.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = ROOT / "bench" / "data"


def write_fixture(rows: int) -> Path:
    """A people table: id, email, name, signup time, amount (cached)."""
    import duckdb

    path = DATA / f"people_{rows}.parquet"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        duckdb.connect().execute(f"""COPY (SELECT range AS id,
            'person' || range || '@example.com' AS email, 'Name' || range AS name,
            TIMESTAMP '2024-01-01' + to_seconds(range) AS signup_ts,
            round((range % 1000) / 7.0, 2) AS amount FROM range({rows}))
            TO '{path}' (FORMAT parquet, COMPRESSION zstd)""")
    return path


def run_optout(folder: Path, subjects: int, rows: int) -> dict:
    """Scan, plan (not timed), apply (timed); in this process."""
    from optout.engine.apply import ApplyOptions, apply_plan
    from optout.engine.planner import PlanRequest, build_plan
    from optout.engine.policy import load_policy
    from optout.engine.subjects import parse_subject
    from optout.scanner.catalog import Catalog
    from optout.scanner.scan import scan

    catalog = Catalog(str(folder / "c.duckdb"))
    scan([str(folder / "data")], catalog)
    step = rows // subjects
    path = ROOT / "policies" / "gdpr-erasure.yaml"
    plan = build_plan(catalog, PlanRequest(
        [parse_subject(f"email=person{i * step}@example.com") for i in range(subjects)],
        load_policy(path), str(path)))
    start = time.perf_counter()
    apply_plan(catalog, plan, ApplyOptions())
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_duckdb(folder: Path, subjects: int, rows: int) -> dict:
    """The bare DuckDB rewrite of the same file."""
    import duckdb

    step = rows // subjects
    ids = ", ".join(str(i * step) for i in range(subjects))
    src = folder / "data" / "people.parquet"
    start = time.perf_counter()
    duckdb.connect().execute(f"COPY (SELECT * FROM read_parquet('{src}') WHERE id NOT IN "
                             f"({ids})) TO '{folder / 'out.parquet'}' "
                             "(FORMAT parquet, COMPRESSION zstd)")
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--side", choices=["optout", "duckdb"], default=None)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per side, alternating; the best of each is compared")
    args = parser.parse_args()
    if args.side:
        run = run_optout if args.side == "optout" else run_duckdb
        print(json.dumps(run(args.folder, args.subjects, args.rows)))
        return
    source = write_fixture(args.rows)
    runs: dict[str, list[dict]] = {"duckdb": [], "optout": []}
    for _ in range(args.repeat):  # alternating, so machine noise falls on both sides
        for side in ("duckdb", "optout"):
            with tempfile.TemporaryDirectory(dir=DATA) as tmp:
                (Path(tmp) / "data").mkdir()
                shutil.copy(source, Path(tmp) / "data" / "people.parquet")
                out = subprocess.run([sys.executable, __file__, "--side", side, "--folder", tmp,
                                      "--rows", str(args.rows), "--subjects", str(args.subjects)],
                                     capture_output=True, text=True, check=True)
                runs[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
    o = min(runs["optout"], key=lambda r: r["seconds"])
    d = min(runs["duckdb"], key=lambda r: r["seconds"])
    print(f"{args.rows:,} rows, {args.subjects:,} subjects erased; best of {args.repeat} runs")
    print(f"bare DuckDB COPY ... WHERE id NOT IN (...): {d['seconds']:7.2f}s  "
          f"peak {d['max_rss_mb']:.0f} MiB")
    print(f"optout apply (prepare, check, commit, verify): {o['seconds']:7.2f}s  "
          f"peak {max(r['max_rss_mb'] for r in runs['optout']):.0f} MiB")
    each = ", ".join(f"{a['seconds'] / b['seconds']:.2f}"
                     for a, b in zip(runs["optout"], runs["duckdb"], strict=True))
    print(f"ratio optout / DuckDB: {o['seconds'] / d['seconds']:.2f} (run by run: {each})")


if __name__ == "__main__":
    main()
