"""The cost of physical erasure per engine: one subject erased from a 10M-row table, applied
with the policy's `physical: off` (logical erasure only) and with `physical: required` (the
table's database rewritten, then read raw), on identical copies of the data.

    python bench/physical_cost.py [--rows 10000000] [--repeat 3] [--engines duckdb,sqlite,postgresql]

For each engine the data is built once (DuckDB and SQLite files copied back before each run,
PostgreSQL recreated from a template database); each run rescans and plans (not timed) and
applies (timed, in this process: prepare, check, commit, verify, physical step); the two
sides alternate `--repeat` times and the best of each is compared. Prints per engine: the
logical apply, the physical apply, their ratio, and the size of what was rewritten and read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("OPTOUT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BASE = PG_ADMIN.rsplit("/", 1)[0]


def build(engine: str, folder: Path, rows: int) -> str:
    """The pristine data of one engine; returns its location."""
    import duckdb

    select = (f"SELECT range::INTEGER AS id, 'person' || range || '@example.com' AS email, "
              f"'Name' || range AS name FROM range({rows})")
    if engine == "duckdb":
        path = folder / "pristine.duckdb"
        con = duckdb.connect(str(path))
        con.execute(f"CREATE TABLE people AS {select}")
        con.close()
        return str(path)
    if engine == "sqlite":
        path = folder / "pristine.sqlite"
        duckdb.connect().execute(f"COPY ({select}) TO '{folder}/people.csv'")
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, name TEXT)")
        with open(folder / "people.csv") as fh:
            next(fh)
            con.executemany("INSERT INTO people VALUES (?, ?, ?)",
                            (line.rstrip("\n").split(",") for line in fh))
        con.commit()
        con.close()
        return str(path)
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as con:
        con.execute("DROP DATABASE IF EXISTS optout_bench_pristine WITH (FORCE)")
        con.execute("CREATE DATABASE optout_bench_pristine")
    duckdb.connect().execute(f"COPY ({select}) TO '{folder}/people.csv'")
    with psycopg.connect(f"{PG_BASE}/optout_bench_pristine", autocommit=True) as con:
        con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, name TEXT)")
        with con.cursor() as cur, cur.copy("COPY people FROM STDIN (FORMAT csv, HEADER)") as cp, \
                open(folder / "people.csv", "rb") as fh:
            while chunk := fh.read(1 << 20):
                cp.write(chunk)
        con.execute("VACUUM ANALYZE people")
    return f"{PG_BASE}/optout_bench_pristine"


def restore(engine: str, pristine: str, folder: Path) -> str:
    """A fresh copy of the pristine data at the location the catalog knows."""
    if engine in ("duckdb", "sqlite"):
        target = folder / f"people.{engine}"
        shutil.copyfile(pristine, target)
        return str(target)
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as con:
        con.execute("DROP DATABASE IF EXISTS optout_bench_run WITH (FORCE)")
        con.execute("CREATE DATABASE optout_bench_run TEMPLATE optout_bench_pristine")
    with psycopg.connect(f"{PG_BASE}/optout_bench_run", autocommit=True) as con:
        # analyzed now, so autovacuum does not change the table's statistics (part of its
        # fingerprint) between the plan and the apply
        con.execute("VACUUM ANALYZE people")
    time.sleep(2)  # the server flushes table statistics (part of the fingerprint) lazily
    return f"{PG_BASE}/optout_bench_run"


def size_of(engine: str, location: str) -> int:
    if engine != "postgresql":
        return os.path.getsize(location)
    import psycopg

    with psycopg.connect(location) as con:
        return con.execute("SELECT pg_total_relation_size('people')").fetchone()[0]


def apply_once(catalog, policy_path: Path, subject: str) -> float:
    from optout.engine.apply import ApplyOptions, StalePlan, apply_plan
    from optout.engine.planner import PlanRequest, build_plan
    from optout.engine.policy import load_policy
    from optout.engine.subjects import parse_subject

    for attempt in range(3):
        plan = build_plan(catalog, PlanRequest([parse_subject(f"email={subject}")],
                                               load_policy(policy_path), str(policy_path)))
        start = time.perf_counter()
        try:
            apply_plan(catalog, plan, ApplyOptions())
        except StalePlan:  # statistics moved between plan and apply: plan again (untimed)
            if attempt == 2:
                raise
            time.sleep(2)
            continue
        return time.perf_counter() - start
    raise AssertionError("unreachable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", default="duckdb,sqlite,postgresql")
    args = parser.parse_args()

    from optout.scanner.catalog import Catalog
    from optout.scanner.scan import scan

    subject = f"person{args.rows // 2 + 7}@example.com"
    print(f"{'engine':<11} {'rows':>11} {'logical s':>10} {'physical s':>11} {'ratio':>6}  "
          "size")
    for engine in args.engines.split(","):
        with tempfile.TemporaryDirectory(prefix="optout-phys-") as tmp:
            folder = Path(tmp)
            policies = {}
            for mode in ("off", "required"):
                text = (ROOT / "policies" / "gdpr-erasure.yaml").read_text()
                policies[mode] = folder / f"{mode}.yaml"
                policies[mode].write_text(text + f'\nphysical: "{mode}"\n')
            pristine = build(engine, folder, args.rows)
            location = restore(engine, pristine, folder)
            size = size_of(engine, location)
            catalog = Catalog(str(folder / "catalog.duckdb"))
            scan([location], catalog)
            best = {"off": float("inf"), "required": float("inf")}
            for _ in range(args.repeat):
                for mode in ("off", "required"):
                    scan([restore(engine, pristine, folder)], catalog)  # not timed
                    best[mode] = min(best[mode], apply_once(catalog, policies[mode], subject))
            print(f"{engine:<11} {args.rows:>11,} {best['off']:>10.2f} {best['required']:>11.2f} "
                  f"{best['required'] / best['off']:>6.2f}  {size / 1e6:,.0f} MB", flush=True)
            if engine == "postgresql":
                import psycopg

                with psycopg.connect(PG_ADMIN, autocommit=True) as con:
                    for db in ("optout_bench_run", "optout_bench_pristine"):
                        con.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    main()
