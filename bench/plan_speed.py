"""Plan speed: one subject vs 1,000 subjects on a 1M-row fixture.

    python bench/plan_speed.py [--rows 1000000] [--subjects 1000]

Writes `customers` (1M rows: id, email, phone, name) and `orders` (1M rows keyed by customer
id) as Parquet under bench/data/, scans them, then plans erasure for 1 subject and for N
subjects in the same process. Matching runs inside DuckDB by keyed hash, one query per dataset
per round whatever the number of subjects, so the ratio should stay near 1 (goal: under 5).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from optout.engine.planner import PlanRequest, build_plan  # noqa: E402
from optout.engine.policy import load_policy  # noqa: E402
from optout.engine.subjects import parse_subject  # noqa: E402
from optout.scanner.catalog import Catalog  # noqa: E402
from optout.scanner.scan import scan  # noqa: E402

DATA = ROOT / "bench" / "data"


def write_fixture(rows: int) -> Path:
    """customers and orders, `rows` rows each (cached)."""
    folder = DATA / f"plan_{rows}"
    if (folder / "orders.parquet").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT range AS id, 'person' || range || '@example.com' AS email,
        '+1 415-' || lpad(((range // 10000) % 800 + 200)::VARCHAR, 3, '0') || '-' ||
        lpad((range % 10000)::VARCHAR, 4, '0') AS phone,
        'Name' || range || ' Family' || (range % 977) AS full_name,
        TIMESTAMP '2024-01-01' + to_seconds(range) AS signup_ts
        FROM range({rows})) TO '{folder}/customers.parquet' (FORMAT parquet)""")
    con.execute(f"""COPY (SELECT range AS order_id, (range * 7919) % {rows} AS customer_id,
        round((range % 1000) / 7.0, 2) AS amount FROM range({rows}))
        TO '{folder}/orders.parquet' (FORMAT parquet)""")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--subjects", type=int, default=1000)
    args = parser.parse_args()
    folder = write_fixture(args.rows)
    policy = load_policy(ROOT / "policies" / "gdpr-erasure.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(f"{tmp}/c.duckdb")
        report = scan([str(folder)], catalog)
        assert not report.failed
        step = max(1, args.rows // args.subjects)
        many = [parse_subject(f"email=person{i}@example.com")
                for i in range(0, step * args.subjects, step)]

        def timed(subjects: list) -> tuple[float, int]:
            start = time.perf_counter()
            plan = build_plan(catalog, PlanRequest(subjects, policy, "bench"))
            rows = sum(s.rows or 0 for s in plan.steps)
            return time.perf_counter() - start, rows

        timed(many[:1])  # warm-up: file caches, DuckDB
        one, one_rows = min(timed(many[:1]) for _ in range(3))
        lots, lots_rows = min(timed(many) for _ in range(3))
    print(f"fixture: customers and orders, {args.rows:,} rows each")
    print(f"plan, 1 subject:      {one:6.2f}s  ({one_rows} matching rows)")
    print(f"plan, {len(many):,} subjects: {lots:6.2f}s  ({lots_rows} matching rows)")
    print(f"ratio {len(many):,}/1: {lots / one:.2f}")


if __name__ == "__main__":
    main()
