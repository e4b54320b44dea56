"""What the database targets share: matched rows are found by keyed hash inside the engine,
changed inside one open transaction, checked in it, and committed in the commit phase."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from typing import Any, ClassVar

from engine.targets.base import ApplyError, Staged, Target
from engine.values import change
from scanner.matching import MatchQuery


class DatabaseTarget(Target):
    """A table changed inside a transaction that stays open from prepare to commit."""

    durable_staging = False  # a transaction does not outlive its process: resume re-prepares
    db_errors: ClassVar[tuple[type[Exception], ...]] = ()

    @abstractmethod
    def connect(self) -> Any:
        """A read-write connection with an open transaction."""

    @abstractmethod
    def matched(self, con: Any, query: MatchQuery, columns: list[str]) -> list[tuple]:
        """(row id, values of `columns`) of the rows matching `query`."""

    @abstractmethod
    def count(self, con: Any) -> int:
        """Rows in the table."""

    @abstractmethod
    def delete(self, con: Any, row_ids: list) -> None:
        """Delete rows by row id."""

    @abstractmethod
    def update(self, con: Any, column: str, changes: list[tuple[Any, Any]]) -> None:
        """Set one column of rows: (row id, new value) pairs."""

    @abstractmethod
    def checksum(self, con: Any) -> str:
        """A checksum of the table's content."""

    def prepare(self) -> Staged:
        con = self.connect()
        try:
            staged = Staged(handle=con)
            staged.rows_before = self.count(con)
            staged.checksum_before = self.checksum(con)
            actions = self.column_actions
            columns = [c for c in actions]
            rows = self.matched(con, self.match_query(), columns)
            staged.rows_changed = len(rows)
            kinds = {c: k for c, k, _ in self.step.keys}
            params = dict(self.step.params)
            if rows and self.deletes:
                self.delete(con, [r[0] for r in rows])
            elif rows:
                for i, column in enumerate(columns):
                    self.update(con, column, [
                        (r[0], change(actions[column], r[1 + i], kinds.get(column, "code"),
                                      params, self.hasher, frozenset(self.step.text_hashes)))
                        for r in rows])
            staged.rows_after = self.count(con)
            staged.checksum_after = self.checksum(con)
        except Exception:
            self.rollback(Staged(handle=con))
            raise
        return staged

    def check(self, staged: Staged) -> None:
        super().check(staged)
        left = len(self.matched(staged.handle, self.residue_query(), []))
        if left:
            raise ApplyError(f"{self.step.dataset}: {left} rows of the subject remain in the "
                             "staged transaction")

    def residue(self) -> int:
        con = self.connect()
        try:
            return len(self.matched(con, self.residue_query(), []))
        finally:
            self.rollback(Staged(handle=con))

    def commit(self, staged: Staged) -> None:
        if staged.handle is None:
            raise ApplyError(f"{self.step.dataset}: no open transaction to commit")
        staged.handle.execute("COMMIT")
        staged.handle.close()
        staged.handle = None

    def rollback(self, staged: Staged) -> None:
        if staged.handle is not None:
            with contextlib.suppress(*self.db_errors):
                staged.handle.execute("ROLLBACK")
            staged.handle.close()
            staged.handle = None
