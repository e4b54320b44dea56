"""A dbt model rebuilt by dbt itself (opt-in: `dbt: {rebuild: command}` in the deployment's
configuration).

Instead of running the model's compiled SQL in the rebuild sandbox, apply runs
`dbt build --select MODEL` with the user's own profile once the model's sources are committed
(commit order puts derived steps after their sources), then verifies the rebuilt table by
reading it back. dbt's own tests of the model run with it (`build` = run + test). This leaves
the atomic unit: the sources are committed before dbt runs, so a failing dbt leaves the
request blocked at this step (`optout resume` runs it again), never silently partial. The
command is the one the plan carries (approved with it); the model and project come from the
catalog's lineage, not from the caller; the project's files are bound to the plan and checked
again right before the build, hooks are refused unless the deployment allows them, and dbt
runs with a minimal environment (optout/engine/dbt_project.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from optout.connectors import open_source
from optout.connectors.dbt import PROJECT_FILE
from optout.connectors.target import ApplyError, Staged, Target
from optout.engine.dbt_project import ProjectError, changed_files, dbt_env, hooks, project_files
from optout.model.plan import PlanStep
from optout.model.redaction import one_line
from optout.model.secret import KeyedHash

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
        self.files = {str(p): str(d) for p, d in step.param("dbt_files", ())}
        self.allow_hooks = bool(step.param("dbt_allow_hooks", False))
        self.env = [str(n) for n in step.param("dbt_env", ())]

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
        return self.project_problem()

    def project_problem(self) -> str | None:
        """Why the project must not be built now: it changed since the plan recorded it
        (naming the files), or it runs hooks the deployment does not allow."""
        try:
            now = project_files(self.project, self.args)
            found = hooks(self.project)
        except (OSError, ProjectError) as exc:
            return f"the dbt project cannot be read whole ({one_line(exc)})"
        if not self.files:
            return "the plan records no content of the dbt project: plan again"
        changed = changed_files(self.files, now)
        if changed:
            return (f"the dbt project changed since the plan was made and approved "
                    f"({', '.join(changed[:5])}{', …' if len(changed) > 5 else ''}): refused; "
                    "plan again")
        if found and not self.allow_hooks:
            return (f"the dbt project runs hooks of its own ({'; '.join(found[:3])}): refused "
                    "unless the deployment's configuration allows them (dbt.allow_hooks)")
        return None

    def prepare(self) -> Staged:
        why = self.executable()
        if why:
            raise ApplyError(f"{self.step.dataset}: {why}")
        return Staged(rows_before=None, rows_after=None, rows_changed=None)

    def check(self, staged: Staged) -> None:
        """Nothing staged: dbt builds at commit."""

    def commit(self, staged: Staged) -> None:
        why = self.project_problem()  # again right before the build: nothing changed since
        if why:
            raise ApplyError(f"{self.step.dataset}: {why}")
        try:
            done = subprocess.run(self.argv(), cwd=self.project, capture_output=True, text=True,
                                  timeout=TIMEOUT, env=dbt_env(self.env))
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
