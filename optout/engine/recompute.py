"""Derived datasets: rebuilt from the SQL that made them, inside the atomic unit.

A rebuild runs the SELECT its plan carries, in the sandbox (`optout/model/sandbox.py`), over the
*staged* versions of the datasets it reads (or the data as it is, for those the plan does not
change), and stages the result in the dataset's own format through that format's target: a
new file version beside the old one, or the rows replaced inside the database's open
transaction. It is checked (exactly the computed rows, none of the subject's) and committed in
the same commit phase as its sources, so a failure anywhere before commit leaves everything as
it was. Views need no rebuild: they are read after their base tables are cleaned.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import pyarrow as pa

from optout.connectors import capabilities, open_source
from optout.connectors.target import ApplyError, Staged, Target
from optout.model.plan import PlanStep
from optout.model.sandbox import Relation, SandboxError, run_select
from optout.model.secret import KeyedHash
from optout.scanner.catalog import DatasetRecord

#: how a rebuild reads an upstream dataset, by catalog id
Upstream = Callable[[str], Relation]


def reader_step(record: DatasetRecord) -> PlanStep:
    """A step that only reads a catalog dataset (an upstream no step of the plan changes)."""
    return PlanStep(record.id, record.name, record.location, record.format, record.kind,
                    "retain", "read", None, options=tuple(sorted(record.options.items())))


class RecomputeTarget(Target):
    """A derived dataset rebuilt by its plan's SQL, staged through its format's target."""

    def __init__(self, step: PlanStep, hasher: KeyedHash, inner: Target,
                 upstream: Upstream) -> None:
        super().__init__(step, hasher)
        self.inner = inner
        self.upstream = upstream
        self.durable_staging = inner.durable_staging

    @property
    def deletes(self) -> bool:
        return True  # after the rebuild none of the subject's rows may remain

    def select(self) -> str:
        """The SELECT the plan carries (approved with it), never the file as it is now."""
        select = self.step.param("sql")
        if not select or hashlib.sha256(select.encode()).hexdigest() != self.step.param(
                "sql_sha256"):
            why = self.step.param("sql_problem") or "it had no readable SELECT"
            raise ApplyError(f"{self.step.dataset}: the plan carries no SQL to rebuild it from "
                             f"({self.step.param('sql_file')}: {why})")
        return select

    def rebuilt(self) -> pa.Table:
        """The dataset's new rows: the SELECT over its upstream datasets, in the sandbox."""
        select = self.select()
        relations = {name: self.upstream(ident) for name, ident in self.step.param("tables", ())}
        try:
            return run_select(select, relations)
        except SandboxError as exc:
            raise ApplyError(f"{self.step.dataset}: the rebuild failed: {exc}") from exc

    def prepare(self) -> Staged:
        return self.inner.prepare_rebuild(self.rebuilt())

    def check(self, staged: Staged) -> None:
        if staged.rows_after != staged.rows_expected:
            raise ApplyError(f"{self.step.dataset}: the staged rebuild holds {staged.rows_after} "
                             f"rows; its SQL computed {staged.rows_expected}")
        left = self.inner.staged_residue(staged)
        if left:
            raise ApplyError(f"{self.step.dataset}: the rebuilt version still holds {left} rows "
                             "of the subject (a dataset it reads still holds them)")

    def commit(self, staged: Staged) -> None:
        self.inner.commit(staged)

    def rollback(self, staged: Staged) -> None:
        self.inner.rollback(staged)

    def discard(self) -> None:
        self.inner.discard()

    def residue(self) -> int:
        return self.inner.residue()

    def sandbox_relation(self, staged: Staged | None) -> Relation:
        return self.inner.sandbox_relation(staged)

    def executable(self) -> str | None:
        if not self.step.param("sql"):
            return (f"no SQL to rebuild it from ({self.step.param('sql_file')}: "
                    f"{self.step.param('sql_problem') or 'none found'})")
        if not capabilities(self.step.format).rebuild:
            return f"{self.step.format} datasets cannot be rebuilt"
        return self.inner.executable()


class ViewTarget(Target):
    """A view: nothing to change; verification reads it after its base tables are cleaned."""

    formats = ()
    durable_staging = True

    def __init__(self, step: PlanStep, hasher: KeyedHash, reader: Target | None) -> None:
        super().__init__(step, hasher)
        self.reader = reader

    def prepare(self) -> Staged:
        return Staged(rows_before=None, rows_after=None, rows_changed=None)  # only read

    def check(self, staged: Staged) -> None:
        """Nothing staged."""

    def commit(self, staged: Staged) -> None:
        """Nothing to commit."""

    def rollback(self, staged: Staged) -> None:
        """Nothing to roll back."""

    def residue(self) -> int:
        with open_source(self.step.location) as source:
            return source.match(self.step.ref(), self.residue_query(), self.hasher).rows

    @property
    def deletes(self) -> bool:
        return True  # what its base tables no longer hold, it cannot show

    def sandbox_relation(self, staged: Staged | None) -> Relation:
        if self.reader is None:
            return super().sandbox_relation(staged)
        return self.reader.sandbox_relation(None)  # read through its database's open transaction


def as_deleting(step: PlanStep) -> PlanStep:
    """The step as its format's target must treat a rebuilt dataset: every row of the subject
    gone (its residue query matches on every key)."""
    return dataclasses.replace(step, action="delete_rows")
