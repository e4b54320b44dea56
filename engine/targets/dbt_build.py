"""A dbt model rebuilt by dbt itself (opt-in: `dbt: {rebuild: command}` in optout.yaml).

Instead of running the model's compiled SQL in the rebuild sandbox, apply runs
`dbt build --select MODEL` with the user's own profile once the model's sources are committed
(commit order puts derived steps after their sources), then verifies the rebuilt table by
reading it back. dbt's own tests of the model run with it (`build` = run + test). This leaves
the atomic unit: the sources are committed before dbt runs, so a failing dbt leaves the
request blocked at this step (`optout resume` runs it again), never silently partial. The
command is the one the plan carries (approved with it); the model and project come from the
catalog's lineage, not from the caller.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from engine.plan import PlanStep
from engine.targets.base import ApplyError, Staged, Target
from scanner.catalog.secret import KeyedHash
from scanner.dbt import PROJECT_FILE
from scanner.sources import open_source
from scanner.sources.base import one_line

TIMEOUT = 3600  # seconds one dbt build may take


class DbtBuildTarget(Target):
    """A dbt model rebuilt by `dbt build --select MODEL` after its sources are committed."""

    formats = ()
    durable_staging = True  # nothing is staged: resume runs the build again

    def __init__(self, step: PlanStep, hasher: KeyedHash) -> None:
        super().__init__(step, hasher)
        self.project = Path(str(step.param("dbt_project", "")))
        self.model = str(step.param("dbt_model", ""))
        self.command = [str(a) for a in step.param("dbt_command", ())]
        self.args = [str(a) for a in step.param("dbt_args", ())]

    @property
    def deletes(self) -> bool:
        return True  # after the rebuild none of the subject's rows may remain

    def argv(self) -> list[str]:
        """The command apply runs."""
        return [*self.command, "build", "--select", self.model, "--project-dir",
                str(self.project), *self.args]

    def executable(self) -> str | None:
        if not self.command or shutil.which(self.command[0]) is None:
            return f"the dbt command {self.command[:1]} is not installed here"
        if not (self.project / PROJECT_FILE).is_file():
            return f"{self.project} is no longer a dbt project"
        if not self.model:
            return "the plan names no dbt model to build"
        return None

    def prepare(self) -> Staged:
        why = self.executable()
        if why:
            raise ApplyError(f"{self.step.dataset}: {why}")
        return Staged(rows_before=None, rows_after=None, rows_changed=None)

    def check(self, staged: Staged) -> None:
        """Nothing staged: dbt builds at commit."""

    def commit(self, staged: Staged) -> None:
        try:
            done = subprocess.run(self.argv(), cwd=self.project, capture_output=True, text=True,
                                  timeout=TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ApplyError(f"{self.step.dataset}: dbt build --select {self.model} did not "
                             f"run ({one_line(exc)})") from exc
        if done.returncode != 0:
            lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
            last = one_line(lines[-1]) if lines else "no output"
            raise ApplyError(f"{self.step.dataset}: dbt build --select {self.model} failed "
                             f"(exit {done.returncode}: {last})")

    def rollback(self, staged: Staged) -> None:
        """Nothing staged."""

    def residue(self) -> int:
        with open_source(self.step.location) as source:
            return source.match(self.step.ref(), self.residue_query(), self.hasher).rows
