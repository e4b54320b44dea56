"""What the database targets share: matched rows are found by keyed hash inside the engine,
changed inside one open transaction, checked in it, and committed in the commit phase."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from typing import Any, ClassVar

import pyarrow as pa

from optout.connectors.target import ApplyError, Staged, Target
from optout.model.matching import MatchQuery
from optout.model.redaction import one_line
from optout.model.sandbox import Relation
from optout.model.values import change


class SharedTransaction:
    """One open transaction per database, shared by every step on it: two transactions of one
    process on one database would wait on each other's locks (a foreign key check waits for
    the uncommitted delete of the referencing rows)."""

    def __init__(self, con: Any, key: tuple) -> None:
        self.con = con
        self.key = key
        self.done = False
        self.outcome: str | None = None

    def finish(self, statement: str, errors: tuple[type[Exception], ...]) -> None:
        """COMMIT or ROLLBACK once, close, and let the next request open a new one."""
        if not self.done:
            self.done = True
            self.outcome = statement
            _OPEN.pop(self.key, None)
            try:
                if statement == "ROLLBACK":
                    with contextlib.suppress(*errors):
                        self.con.execute(statement)
                else:
                    self.con.execute(statement)
            finally:
                self.con.close()


_OPEN: dict[tuple, SharedTransaction] = {}
#: integer column types and their width: a keyed hash of an integer stays in the column's range
INT_BITS = {"TINYINT": 8, "SMALLINT": 16, "INTEGER": 32, "INT": 32, "BIGINT": 64,
            "UTINYINT": 8, "USMALLINT": 16, "UINTEGER": 32, "UBIGINT": 64}


class DatabaseTarget(Target):
    """A table changed inside a transaction that stays open from prepare to commit."""

    durable_staging = False  # a transaction does not outlive its process: resume re-prepares
    db_errors: ClassVar[tuple[type[Exception], ...]] = ()

    @abstractmethod
    def open(self) -> Any:
        """A read-write connection with a new open transaction."""

    def connect(self) -> Any:
        """The open transaction on this target's database (shared with the other steps)."""
        return self.transaction().con

    def transaction(self) -> SharedTransaction:
        """The shared transaction on this database, opened on first use."""
        key = (type(self).__name__, self.step.location)
        tx = _OPEN.get(key)
        if tx is None:
            tx = _OPEN[key] = SharedTransaction(self.open(), key)
        return tx

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

    def column_type(self, con: Any, column: str) -> str:
        """The engine's type name of one column ("" when it does not say)."""
        return ""

    def prepare(self) -> Staged:
        tx = self.transaction()
        con = tx.con
        try:
            staged = Staged(handle=tx)
            staged.rows_before = self.count(con)
            staged.checksum_before = self.checksum(con)
            actions = self.column_actions
            columns = [c for c in actions]
            keys = [c for c, _, _ in self.step.keys if c not in columns]
            rows = self.matched(con, self.match_query(), columns + keys)
            # the values the subject's rows are matched by, kept in memory for the raw read
            # of the physical erasure (optout/connectors/forensic.py); never stored
            at = [1 + (columns + keys).index(c) for c in self.erased_keys]
            self.erased_values = {r[i] for r in rows for i in at if isinstance(r[i], str)}
            staged.rows_changed = len(rows)
            params = dict(self.step.params)
            kinds = self.kinds
            if rows and self.deletes:
                self.delete(con, [r[0] for r in rows])
            elif rows:
                for i, column in enumerate(columns):
                    bits = INT_BITS.get(self.column_type(con, column).upper(), 64)
                    self.update(con, column, [
                        (r[0], change(actions[column], r[1 + i], kinds.get(column, "code"),
                                      params, self.hasher, frozenset(self.step.text_hashes),
                                      bits))
                        for r in rows])
            staged.rows_after = self.count(con)
            staged.checksum_after = self.checksum(con)
        except Exception:
            self.rollback(Staged(handle=tx))
            raise
        return staged

    def check(self, staged: Staged) -> None:
        super().check(staged)
        left = self.staged_residue(staged)
        if left:
            raise ApplyError(f"{self.step.dataset}: {left} rows of the subject remain in the "
                             "staged transaction")

    def staged_residue(self, staged: Staged) -> int:
        return len(self.matched(staged.handle.con, self.residue_query(), []))

    # -- rebuilding ---------------------------------------------------------------------------


    @abstractmethod
    def read(self, con: Any) -> pa.Table:
        """The table's rows, as this connection sees them."""

    @abstractmethod
    def insert(self, con: Any, table: pa.Table) -> None:
        """Insert rows (by column name) into the emptied table."""

    def sandbox_relation(self, staged: Staged | None) -> Relation:
        """The staged version is read inside its transaction; the data as it is now inside
        the transaction open on this database, if any, else in a short one."""
        if staged is not None:
            return Relation(arrow=self.read(staged.handle.con))
        tx = _OPEN.get((type(self).__name__, self.step.location))
        if tx is not None:
            return Relation(arrow=self.read(tx.con))
        con = self.open()
        try:
            return Relation(arrow=self.read(con))
        finally:
            SharedTransaction(con, ()).finish("ROLLBACK", self.db_errors)

    def prepare_rebuild(self, table: pa.Table) -> Staged:
        """Inside the open transaction: every row replaced by the rebuilt ones."""
        tx = self.transaction()
        con = tx.con
        try:
            staged = Staged(handle=tx, rows_expected=table.num_rows)
            staged.rows_before = self.count(con)
            staged.checksum_before = self.checksum(con)
            self.delete_all(con)
            if table.num_rows:
                self.insert(con, table)
            staged.rows_after = self.count(con)
            staged.rows_changed = staged.rows_before - staged.rows_after
            staged.checksum_after = self.checksum(con)
        except self.db_errors as exc:
            self.rollback(Staged(handle=tx))
            raise ApplyError(f"{self.step.dataset}: the rebuilt rows could not be written: "
                             f"{one_line(exc)}") from exc
        return staged

    @abstractmethod
    def delete_all(self, con: Any) -> None:
        """Empty the table (inside the transaction)."""

    def residue(self) -> int:
        con = self.open()
        try:
            return len(self.matched(con, self.residue_query(), []))
        finally:
            SharedTransaction(con, ()).finish("ROLLBACK", self.db_errors)

    def commit(self, staged: Staged) -> None:
        if staged.handle is None or staged.handle.outcome == "ROLLBACK":
            raise ApplyError(f"{self.step.dataset}: its transaction was rolled back; "
                             "preparing it again")
        staged.handle.finish("COMMIT", self.db_errors)

    def rollback(self, staged: Staged) -> None:
        if staged.handle is not None:
            staged.handle.finish("ROLLBACK", self.db_errors)
