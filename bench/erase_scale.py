"""Deletion lists at scale (issue 32): N subjects listed by email in one request, erased from a
customers Parquet file and its orders child (`orders.customer_id` → `customers.id`, no
declared key), through the CLI as a user runs it (plan, approve, apply: each its own process),
against the bare floor: two DuckDB `COPY ... WHERE id NOT IN (SELECT id FROM gone)` with the
ids in a table, in one process.

    python bench/erase_scale.py [--customers 10000000] [--orders 20000000]
                                [--subjects 1000,100000] [--repeat 2]

The data is generated here with DuckDB (seeded, the same bytes each run) and scanned before
anything is timed. optout and the floor alternate `--repeat` times on fresh copies; the best
of each is kept, with each process's peak RSS. Printed per subject count: floor, plan, approve,
apply, (plan+apply)/floor, peak RSS of plan and apply, the plan file's size; and whether the
rows optout left equal the floor's rows (row count and an order-independent hash of every
row).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.erase_speed import cli_erase, timed  # noqa: E402
from fixtures.deletion_list import (  # noqa: E402
    fingerprint,
    floor_code,
    subject_ids,
    subject_lines,
    write_data,
    write_ids,
)


def floor_run(data: Path, ids: list[int], out: Path) -> tuple[float, float]:
    """The bare rewrite of both files without the subjects' rows, the ids in a table (read
    from a file, as a deletion list arrives)."""
    out.mkdir(parents=True, exist_ok=True)
    code = floor_code(data, write_ids(ids, out / "gone.csv"), out)
    return timed([sys.executable, "-c", code], out, dict(os.environ))


def optout_run(data: Path, ids: list[int], work: Path) -> tuple[dict, Path]:
    """Scan (untimed), then plan, approve and apply through the CLI (timed)."""
    folder = work / "optout"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(data, folder / "data")
    out = cli_erase(ROOT, folder, subject_lines(ids))
    out["plan MiB"] = sum(p.stat().st_size for p in folder.glob("plan.json*")) / 2**20
    return out, folder / "data"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--orders", type=int, default=20_000_000)
    parser.add_argument("--subjects", default="1000,100000")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print(f"{'subjects':>9} {'floor s':>8} {'plan s':>7} {'approve s':>9} {'apply s':>8} "
          f"{'(plan+apply)/floor':>18} {'plan MiB RSS':>12} {'apply MiB RSS':>13} "
          f"{'plan file MiB':>13} {'rows equal':>10}", flush=True)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        data = work / "data"
        write_data(data, args.customers, args.orders)
        for subjects in (int(s) for s in args.subjects.split(",")):
            ids = subject_ids(args.customers, subjects)
            floors, runs, equal = [], [], True
            for _ in range(args.repeat):
                floors.append(floor_run(data, ids, work / "floor"))
                run, left = optout_run(data, ids, work)
                runs.append(run)
                equal &= fingerprint(left) == fingerprint(work / "floor")
            floor = min(f[0] for f in floors)
            best = {k: min((r[k] for r in runs), key=lambda v: v[0])
                    for k in ("plan", "approve", "apply")}
            both = best["plan"][0] + best["apply"][0]
            print(f"{subjects:>9,} {floor:>8.2f} {best['plan'][0]:>7.2f} "
                  f"{best['approve'][0]:>9.2f} {best['apply'][0]:>8.2f} {both / floor:>18.2f} "
                  f"{max(r['plan'][1] for r in runs):>12.0f} "
                  f"{max(r['apply'][1] for r in runs):>13.0f} {runs[-1]['plan MiB']:>13.1f} "
                  f"{'yes' if equal else 'NO':>10}", flush=True)


if __name__ == "__main__":
    main()
