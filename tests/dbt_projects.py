"""Real dbt projects in tests: run dbt in a copy of a fixture project, read its seeds, and keep
a pristine copy beside the one optout erases from (tests/test_dbt.py, test_recall_*.py)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

DBT = Path(sys.executable).with_name("dbt")
#: what dbt leaves in a project folder: never copied between tests
ARTIFACTS = shutil.ignore_patterns("target", "logs", "*.duckdb*")


def run_dbt(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`dbt ARGS` in a project folder with its own profiles.yml and `env` (where it builds);
    a failure fails the test with dbt's output."""
    done = subprocess.run(
        [str(DBT), *args, "--profiles-dir", str(project)], cwd=project,
        env={**os.environ, **env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "DO_NOT_TRACK": "1"},
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return done


def copy_project(source: Path, root: Path) -> Path:
    """A copy of a project folder without what dbt wrote."""
    shutil.copytree(source, root, ignore=ARTIFACTS)
    return root


def seed_rows(root: Path, name: str) -> list[dict[str, str]]:
    """A seed's rows, as text."""
    with open(root / "seeds" / f"{name}.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def write_seed(root: Path, name: str, header: list[str], rows: list[dict[str, str]]) -> None:
    """Write a seed (the cleaned seeds a truth is rebuilt from)."""
    with open(root / "seeds" / f"{name}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def keep_pristine(root: Path) -> Path:
    """A copy of the built project beside it, as it was before the erasure."""
    before = root.parent / "before"
    shutil.copytree(root, before)
    return before
