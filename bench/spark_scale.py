"""The same erasure on the duckdb engine and on Spark (`local[2]` here), at scale: a Parquet
folder partitioned by day (id, email, name, signup_ts, amount; DATA/spark_scale_ROWS/,
cached), 1,000 subjects by email, through the CLI as a user runs it.

    python bench/spark_scale.py [--rows 10000000,100000000] [--subjects 10,1000]
                                [--days 100] [--driver-memory 4g]

Per engine and size: scan, plan and apply wall time (each command its own process, as a user
waits for it; approve is not timed), the peak memory of the driver (the optout process plus
the JVM it starts, summed over the process tree, sampled every 0.1 s), and the files apply
rewrote against the files of the folder. Both engines work on fresh copies of the same folder;
each run ends by checking that the subjects' rows are gone and every other row is there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
POLICY = "gdpr-erasure"
PAGE = os.sysconf("SC_PAGE_SIZE")


def write_folder(rows: int, days: int) -> Path:
    """The partitioned table (cached): `day=YYYY-MM-DD/data_0.parquet`, zstd."""
    import duckdb

    path = DATA / f"spark_scale_{rows}_{days}"
    if not (path / ".done").exists():
        shutil.rmtree(path, ignore_errors=True)
        DATA.mkdir(parents=True, exist_ok=True)
        duckdb.connect().execute(f"""COPY (SELECT range AS id,
            'person' || range || '@example.com' AS email, 'Name' || range AS name,
            TIMESTAMP '2024-01-01' + to_seconds(range) AS signup_ts,
            round((range % 1000) / 7.0, 2) AS amount,
            DATE '2024-01-01' + CAST(hash(range) % {days} AS INTEGER) AS day
            FROM range({rows})) TO '{path}' (FORMAT parquet, PARTITION_BY (day),
            COMPRESSION zstd)""")
        (path / ".done").touch()
    return path


def tree_rss(root: int) -> int:
    """Bytes resident in a process and all its descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    family, grew = {root}, True
    while grew:
        more = {p for p, pp in parents.items() if pp in family} - family
        family |= more
        grew = bool(more)
    total = 0
    for pid in family:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run a process; (wall seconds, peak MiB of its process tree). Fails loudly."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    sampler.join()
    if proc.returncode not in (0, 4):
        raise SystemExit(f"{' '.join(argv[:8])}...: exit {proc.returncode}\n"
                         f"{out.decode()[-2000:]}{err.decode()[-3000:]}")
    return elapsed, peak[0] / (1 << 20)


def subject_ids(rows: int, subjects: int) -> list[int]:
    step = max(rows // subjects, 1)
    return [i * step + 7 for i in range(subjects)]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in folder.rglob("*.parquet")}


def run(engine: str, source: Path, rows: int, subjects: int, work: Path,
        driver_memory: str) -> dict:
    """Scan, plan, approve and apply on a fresh copy through the CLI; checks the result."""
    folder = work / f"run-{engine}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    data = folder / "events"
    shutil.copytree(source, data, ignore=shutil.ignore_patterns(".done"))
    (folder / "policies").symlink_to(ROOT / "policies")
    (folder / "deployment.yaml").write_text(
        f"engine: {engine}\nspark:\n  master: local[2]\n  conf:\n"
        f"    spark.driver.memory: {driver_memory}\n")
    catalog = folder / "catalog.duckdb"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "optout.cli.main", "--catalog", str(catalog)]
    tokens = {}
    init = subprocess.run([*cli, "init", "-q"], cwd=folder, env=env, capture_output=True,
                          text=True, check=True)
    tokens["admin"] = init.stdout.strip()
    admin = {**env, "OPTOUT_TOKEN": tokens["admin"]}
    subprocess.run([*cli, "config", "set", str(folder / "deployment.yaml")], cwd=folder,
                   env=admin, check=True, capture_output=True)
    for role in ("requester", "approver", "operator"):
        subprocess.run([*cli, "user", "add", role, "--role", role], cwd=folder, env=admin,
                       check=True, capture_output=True)
        made = subprocess.run([*cli, "token", "create", role], cwd=folder, env=admin,
                              check=True, capture_output=True, text=True)
        tokens[role] = made.stdout.strip().split()[-1]
    ids = subject_ids(rows, subjects)
    listed = folder / "subjects.txt"
    listed.write_text("".join(f"email=person{i}@example.com\n" for i in ids))
    plan = folder / "plan.json"
    out: dict = {}
    out["scan"] = timed([*cli, "scan", "-q", str(data)], folder, admin)
    out["plan"] = timed([*cli, "plan", "--subjects-file", str(listed), "--policy", POLICY,
                         "-o", str(plan)], folder, {**env, "OPTOUT_TOKEN": tokens["requester"]})
    timed([*cli, "approve", str(plan)], folder, {**env, "OPTOUT_TOKEN": tokens["approver"]})
    before = snapshot(data)
    out["apply"] = timed([*cli, "apply", str(plan), "--yes"], folder,
                         {**env, "OPTOUT_TOKEN": tokens["operator"]})
    after = snapshot(data)
    out["files"] = (sum(after[f] != before[f] for f in before), len(before))
    import duckdb

    con = duckdb.connect()
    left, gone = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE id IN ({', '.join(map(str, ids))})) "
        f"FROM read_parquet('{data}/**/*.parquet')").fetchone()
    con.close()
    if gone or left != rows - len(ids):
        raise SystemExit(f"{engine}: {gone} subject rows left, {left} rows in all "
                         f"(expected {rows - len(ids)})")
    shutil.rmtree(folder, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="10000000,100000000")
    parser.add_argument("--subjects", default="10,1000")
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--engines", default="duckdb,spark")
    args = parser.parse_args()
    print(f"{'engine':<7} {'rows':>12} {'subjects':>8} {'scan s':>7} {'plan s':>7} "
          f"{'apply s':>8} {'plan+apply s':>12} {'vs duckdb':>9} {'peak MiB':>8} "
          f"{'files rewritten':>15}", flush=True)
    with tempfile.TemporaryDirectory(dir=DATA.parent) as tmp:
        for rows in (int(r) for r in args.rows.split(",")):
            source = write_folder(rows, args.days)
            for subjects in (int(s) for s in args.subjects.split(",")):
                base = None
                for engine in args.engines.split(","):
                    r = run(engine, source, rows, subjects, Path(tmp), args.driver_memory)
                    both = r["plan"][0] + r["apply"][0]
                    base = base or both
                    peak = max(r[k][1] for k in ("scan", "plan", "apply"))
                    print(f"{engine:<7} {rows:>12,} {subjects:>8,} {r['scan'][0]:>7.1f} "
                          f"{r['plan'][0]:>7.1f} {r['apply'][0]:>8.1f} {both:>12.1f} "
                          f"{both / base:>9.2f} {peak:>8.0f} "
                          f"{r['files'][0]:>7} of {r['files'][1]:<5}", flush=True)


if __name__ == "__main__":
    main()
