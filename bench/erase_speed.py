"""Erasure speed as a user waits for it: `optout plan --subjects-file`, `optout approve` and
`optout apply --yes` through the CLI, against a bare DuckDB `COPY` that drops the same rows by
id, on one Parquet table (id, email, name, signup_ts, amount).

    python bench/erase_speed.py [--rows 1000000,10000000] [--subjects 1,1000,10000]
                                [--repeat 3] [--baseline REF]

Each command runs in its own process; optout and the bare COPY alternate `--repeat` times on
fresh copies of the file (scanned beforehand, not timed); the best time of each is kept, with
each process's peak RSS. The bare COPY runs two ways: with the ids in a literal list (`NOT IN
(1, 2, ...)`, which DuckDB evaluates more slowly the longer the list: 20 s for 10,000 ids) and
with the ids in a table (an anti-join, as fast for 10,000 ids as for one: the fair floor).
Printed per size: both COPYs, plan, approve, apply, plan+apply / each COPY, and plan(N
subjects) / plan(1 subject). With `--baseline REF` the optout side also runs from a git
worktree of REF (before), alternating with this tree (after).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.apply_speed import write_fixture  # noqa: E402

POLICY = "gdpr-erasure"


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run a process; (wall seconds, its peak RSS in MiB). Fails loudly."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 4):
        raise SystemExit(f"{' '.join(argv[:6])}...: exit {code}\n{out.decode()[-2000:]}"
                         f"{err.decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def subject_ids(rows: int, subjects: int) -> list[int]:
    step = max(rows // subjects, 1)
    return [i * step for i in range(subjects)]


def optout_run(tree: Path, fixture: Path, rows: int, subjects: int, work: Path) -> dict:
    """Scan (untimed), then plan, approve and apply through the CLI (timed, each its own
    process)."""
    folder = work / f"optout-{tree.name}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    shutil.copy(fixture, folder / "data" / "people.parquet")
    out = cli_erase(tree, folder, [f"email=person{i}@example.com"
                                   for i in subject_ids(rows, subjects)])
    shutil.rmtree(folder, ignore_errors=True)
    return out


def cli_erase(tree: Path, folder: Path, subjects: list[str]) -> dict:
    """In `folder` (its data in `data/`): init, one user per role, scan (untimed), then plan
    the listed subjects, approve and apply through the CLI of `tree` (timed, each its own
    process): step → (seconds, peak MiB)."""
    (folder / "policies").symlink_to(ROOT / "policies")
    catalog = folder / "catalog.duckdb"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # trees before the optout package (2afda6e and older) run `engine.cli`
    module = "optout.cli.main" if (tree / "optout").is_dir() else "engine.cli"
    cli = [sys.executable, "-m", module, "--catalog", str(catalog)]
    tokens = {}
    init = subprocess.run([*cli, "init", "-q"], cwd=tree, env=env, capture_output=True,
                          text=True, check=True)
    tokens["admin"] = init.stdout.strip()
    admin = {**env, "OPTOUT_TOKEN": tokens["admin"]}
    for role in ("requester", "approver", "operator"):
        subprocess.run([*cli, "user", "add", role, "--role", role], cwd=tree, env=admin,
                       check=True, capture_output=True)
        made = subprocess.run([*cli, "token", "create", role], cwd=tree, env=admin, check=True,
                              capture_output=True, text=True)
        tokens[role] = made.stdout.strip().split()[-1]
    subprocess.run([*cli, "scan", "-q", str(folder / "data")], cwd=tree, env=admin, check=True,
                   capture_output=True)
    listed = folder / "subjects.txt"
    listed.write_text("".join(f"{s}\n" for s in subjects))
    plan = folder / "plan.json"
    out = {}
    out["plan"] = timed([*cli, "plan", "--subjects-file", str(listed), "--policy", POLICY,
                         "-o", str(plan)], folder, {**env, "OPTOUT_TOKEN": tokens["requester"]})
    out["approve"] = timed([*cli, "approve", str(plan)], folder,
                           {**env, "OPTOUT_TOKEN": tokens["approver"]})
    out["apply"] = timed([*cli, "apply", str(plan), "--yes"], folder,
                         {**env, "OPTOUT_TOKEN": tokens["operator"]})
    return out


def copy_run(fixture: Path, rows: int, subjects: int, work: Path,
             way: str) -> tuple[float, float]:
    """The bare rewrite: COPY the table without the subjects' rows, by id; `way` is `list`
    (`id NOT IN (1, 2, ...)`, as one types it: DuckDB slows down as the list grows) or `join`
    (the ids in a table, `NOT IN (SELECT id FROM gone)`: an anti-join, flat in the number of
    ids, the fair floor)."""
    ids = subject_ids(rows, subjects)
    out = work / "copy.parquet"
    if way == "list":
        setup, where = "", f"id NOT IN ({', '.join(str(i) for i in ids)})"
    else:
        setup = (f"con.execute('CREATE TEMP TABLE gone AS SELECT unnest(?::BIGINT[]) AS id', "
                 f"[{ids!r}]); ")
        where = "id NOT IN (SELECT id FROM gone)"
    code = (f"import duckdb; con = duckdb.connect(); {setup}con.execute(\"COPY (SELECT * FROM "
            f"read_parquet('{fixture}') WHERE {where}) TO '{out}' "
            "(FORMAT parquet, COMPRESSION zstd)\")")
    result = timed([sys.executable, "-c", code], work, dict(os.environ))
    out.unlink(missing_ok=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="1000000,10000000")
    parser.add_argument("--subjects", default="1,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", help="a git ref: its optout runs too (before)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        trees = {"after": ROOT}
        if args.baseline:
            trees = {"before": work / "baseline", "after": ROOT}
            subprocess.run(["git", "worktree", "add", "--detach", str(trees["before"]),
                            args.baseline], cwd=ROOT, check=True, capture_output=True)
        try:
            results = []
            for rows in (int(r) for r in args.rows.split(",")):
                fixture = write_fixture(rows)
                for subjects in (int(s) for s in args.subjects.split(",")):
                    best: dict[str, dict[str, tuple[float, float]]] = {}
                    copies: dict[str, list] = {"list": [], "join": []}
                    for _ in range(args.repeat):
                        for way, times in copies.items():
                            times.append(copy_run(fixture, rows, subjects, work, way))
                        for side, tree in trees.items():
                            run = optout_run(tree, fixture, rows, subjects, work)
                            for step, (secs, rss) in run.items():
                                old = best.setdefault(side, {}).get(step)
                                if old is None or secs < old[0]:
                                    best[side][step] = (secs, max(rss, old[1] if old else 0))
                    results.append((rows, subjects, {w: min(t) for w, t in copies.items()}, best))
                    show(results[-1:], header=len(results) == 1)
        finally:
            if args.baseline:
                subprocess.run(["git", "worktree", "remove", "--force", str(trees["before"])],
                               cwd=ROOT, check=False, capture_output=True)
    print()
    show(results, header=True)
    for side in trees:
        for rows in sorted({r for r, *_ in results}):
            one = next((b[side]["plan"][0] for r, s, _, b in results if r == rows and s == 1),
                       None)
            for r, s, _, b in results:
                if r == rows and s > 1 and one:
                    print(f"{side}: plan({s:,}) / plan(1) at {rows:,} rows: "
                          f"{b[side]['plan'][0] / one:.2f}")


def show(results: list, header: bool) -> None:
    if header:
        print(f"{'side':<7} {'rows':>11} {'subjects':>8} {'COPY list s':>11} "
              f"{'COPY join s':>11} {'plan s':>7} {'approve s':>9} {'apply s':>8} "
              f"{'(plan+apply)/COPY list':>22} {'(plan+apply)/COPY join':>22} "
              f"{'plan MiB':>8} {'apply MiB':>9}", flush=True)
    for rows, subjects, copies, best in results:
        for side, steps in best.items():
            plan_s, plan_rss = steps["plan"]
            apply_s, apply_rss = steps["apply"]
            both = plan_s + apply_s
            print(f"{side:<7} {rows:>11,} {subjects:>8,} {copies['list'][0]:>11.2f} "
                  f"{copies['join'][0]:>11.2f} {plan_s:>7.2f} {steps['approve'][0]:>9.2f} "
                  f"{apply_s:>8.2f} {both / copies['list'][0]:>22.2f} "
                  f"{both / copies['join'][0]:>22.2f} {plan_rss:>8.0f} {apply_rss:>9.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
