"""The interface every erasure target implements, and what targets share.

A target changes one dataset for one plan step in three moves that apply drives:
`prepare` stages the change without making it visible (a new file version beside the old one,
fsynced; or an open database transaction), `check` re-reads the staged version, `commit`
makes it visible (an atomic rename, a transaction commit). `rollback` undoes a staged change;
`residue` re-reads the committed data for the subject. Every move is idempotent.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import secrets
import stat
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

import pyarrow as pa

from optout.connectors.readers import reader_sql
from optout.connectors.rows import RowEditor
from optout.model.errors import EngineError
from optout.model.faults import fault
from optout.model.matching import KeyMatch, MatchQuery
from optout.model.plan import PlanStep
from optout.model.sandbox import Relation
from optout.model.secret import KeyedHash

STAGED_SUFFIX = ".optout-staged"


class ApplyError(EngineError):
    """A step could not be prepared, checked, committed or verified."""


@dataclass
class Staged:
    """A prepared, not yet visible change of one dataset."""

    files: list[tuple[str, str]] = field(default_factory=list)  # (final path, staged path)
    rows_before: int | None = 0  # None: a view, which is only read
    rows_after: int | None = 0
    rows_changed: int | None = 0
    checksum_before: str | None = None
    checksum_after: str | None = None
    handle: Any = None  # an open transaction, for database targets
    #: a rebuild: the rows its SQL computed (the staged version must hold exactly these)
    rows_expected: int | None = None

    def as_journal(self) -> dict[str, Any]:
        """What the journal keeps of it (enough to commit or roll back after a crash)."""
        return {"files": self.files, "rows_before": self.rows_before,
                "rows_after": self.rows_after, "rows_changed": self.rows_changed,
                "checksum_before": self.checksum_before, "checksum_after": self.checksum_after,
                "rows_expected": self.rows_expected}


class Target(ABC):
    """Changes one dataset as one plan step says."""

    formats: ClassVar[tuple[str, ...]]
    #: staged changes survive the process (files); else they live in an open transaction
    durable_staging: ClassVar[bool] = True

    def __init__(self, step: PlanStep, hasher: KeyedHash) -> None:
        self.step = step
        self.hasher = hasher
        self.options = dict(step.options)
        #: text values of the subject's rows this process changed (in memory only): the raw
        #: read of the physical erasure searches them literally; None when not known here
        self.erased_values: set[str] | None = None

    @abstractmethod
    def prepare(self) -> Staged:
        """Stage the change; nothing visible changes."""

    def check(self, staged: Staged) -> None:
        """Re-read the staged version: no residue, and the expected row count."""
        expected = staged.rows_before - (staged.rows_changed if self.deletes else 0)
        if staged.rows_after != expected:
            raise ApplyError(f"{self.step.dataset}: staged version has {staged.rows_after} rows, "
                             f"expected {expected}")

    @abstractmethod
    def commit(self, staged: Staged) -> None:
        """Make the staged change visible (idempotent)."""

    @abstractmethod
    def rollback(self, staged: Staged) -> None:
        """Discard a staged change (idempotent)."""

    @abstractmethod
    def residue(self) -> int:
        """Rows of the committed data that still carry what the step removes."""

    # -- rebuilding a derived dataset (optout/engine/recompute.py; `Capabilities.rebuild`) ----

    def sandbox_relation(self, staged: Staged | None) -> Relation:
        """How the rebuild sandbox reads this dataset: its staged version, or (None) the data
        as it is now."""
        raise ApplyError(f"{self.step.dataset}: {self.step.format} datasets cannot be read "
                         "to rebuild another dataset from them")

    def prepare_rebuild(self, table: pa.Table) -> Staged:
        """Stage a new version holding exactly `table`'s rows (a rebuilt derived dataset)."""
        raise ApplyError(f"{self.step.dataset}: {self.step.format} datasets cannot be rebuilt")

    def staged_residue(self, staged: Staged) -> int:
        """Rows of the staged version that still carry what the step removes."""
        raise NotImplementedError

    #: its prepare touches only its own files and a memory engine of its own: it may stage
    #: beside another step's (optout/engine/staging.py)
    stages_alone = False

    def discard(self) -> None:  # noqa: B027 - most targets stage nothing a failure leaves
        """Remove what a prepare that failed half-way may have left (it returned nothing to
        roll back)."""

    def executable(self) -> str | None:
        """Why the step cannot be carried out here (no permission to change the dataset), or
        None; checks without writing anything, when the plan is made and before apply stages."""
        return None

    # -- what the step asks ------------------------------------------------------------------

    @property
    def deletes(self) -> bool:
        """True when matching rows are removed."""
        return self.step.action == "delete_rows"

    @property
    def kinds(self) -> dict[str, str]:
        """Column → normalization kind, for the step's key columns."""
        return {c: k for c, k, _ in self.step.keys}

    @property
    def column_actions(self) -> dict[str, str]:
        """Column → action for matched rows."""
        return dict(self.step.columns) if self.step.action != "delete_rows" else {}

    @property
    def erased_keys(self) -> list[str]:
        """The key columns whose values the step takes out of the data: all of them when it
        deletes the rows, else those it changes (a key it keeps is no residue: the raw read of
        the physical erasure must not search for it)."""
        changed = self.column_actions
        return [c for c, _, _ in self.step.keys if self.deletes or c in changed]

    def capture(self, rows: pa.Table) -> None:
        """Keep the text values of matched rows (`rows`, as they were) in the key columns the
        step takes out, for the raw read of the physical erasure (memory only). Numbers are
        stored as binary, which no text search finds: not kept. Nothing once the values are
        unknown (`erased_values` is None)."""
        if self.erased_values is None:
            return
        for column in self.erased_keys:
            if column not in rows.column_names:
                continue
            kind = rows.schema.field(column).type
            kind = kind.value_type if pa.types.is_dictionary(kind) else kind
            if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                self.erased_values.update(v for v in rows.column(column).to_pylist()
                                          if v is not None)

    def match_query(self) -> MatchQuery:
        """Which rows the step is about."""
        return MatchQuery(
            tuple(KeyMatch(c, k, frozenset(h)) for c, k, h in self.step.keys),
            self.step.texts, frozenset(self.step.text_hashes))

    def residue_query(self) -> MatchQuery:
        """What must be gone afterwards: every key for deletes, changed columns otherwise."""
        if self.deletes:
            return self.match_query()
        changed = self.column_actions
        keys = tuple(KeyMatch(c, k, frozenset(h)) for c, k, h in self.step.keys
                     if changed.get(c) in ("null", "hash", "mask", "generalize"))
        texts = tuple(t for t in self.step.texts if changed.get(t) == "redact")
        return MatchQuery(keys, texts, frozenset(self.step.text_hashes) if texts else frozenset())


def file_checksum(path: str) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checksum_of(*digests: str) -> str | None:
    """The one checksum format of reports: `sha256:<hex>`. A file's own sha256; for several
    files or a table's rows, the sha256 of their digests in order (None when there is none)."""
    if not digests:
        return None
    if len(digests) == 1 and len(digests[0]) == 64:
        return f"sha256:{digests[0]}"
    return "sha256:" + hashlib.sha256("\n".join(digests).encode()).hexdigest()


def files_checksum(paths: list[str]) -> str | None:
    """`sha256:` of one file's bytes, or of several files' sha256s in order."""
    return checksum_of(*(file_checksum(p) for p in paths))


def staged_glob(path: str, request_id: str) -> list[str]:
    """The staged versions a request may have left beside a file (any random part)."""
    head, tail = os.path.split(path)
    return glob.glob(os.path.join(glob.escape(head), glob.escape(f".{tail}.{request_id}.")
                                  + "*" + STAGED_SUFFIX))


def open_staged(path: str, request_id: str, mode: str = "wb", **kwargs: Any) -> tuple[str, IO]:
    """A new version of `path`, opened for writing beside it (same folder, so the rename is
    atomic): a random name created exclusively, never through a link (`O_CREAT | O_EXCL |
    O_NOFOLLOW`: a name someone pre-created is not written through), with the original's
    mode and owner (an erasure never widens who may read everyone else's rows)."""
    head, tail = os.path.split(path)
    st = os.stat(path, follow_symlinks=False)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(16):
        new = os.path.join(head, f".{tail}.{request_id}.{secrets.token_hex(6)}{STAGED_SUFFIX}")
        try:
            fd = os.open(new, flags, 0o600)
        except FileExistsError:
            continue
        break
    else:
        raise ApplyError(f"cannot create a staged version beside {path}")
    try:
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        if os.geteuid() in (0, st.st_uid):
            with contextlib.suppress(PermissionError):
                os.fchown(fd, st.st_uid, st.st_gid)
        return new, os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        os.unlink(new)
        raise


def writable_problem(path: str, replaced: bool = True) -> str | None:
    """Why a file cannot be changed (read-only file system, immutable or append-only file, no
    permission on it or its folder) or, when a new version `replaced` it by rename, is not the
    only name of its data (a link rather than the file, a second hard link that would keep the
    old data), or None; the check writes nothing. Databases change in place (`replaced=False`):
    a link to one changes the same data."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror})"
    if replaced and stat.S_ISLNK(st.st_mode):
        return (f"{path} is a symbolic link (to {os.path.realpath(path)}): optout changes "
                "files, not links; scan the file it points to")
    if replaced and st.st_nlink > 1:
        return (f"{path} has {st.st_nlink} hard links: the other names would keep its data "
                "after the new version replaces this one")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND))  # never creates it
    except OSError as exc:
        return f"{path} is not writable ({exc.strerror})"
    if not os.access(os.path.dirname(path) or ".", os.W_OK):
        return f"the folder of {path} is not writable"
    return None


def ensure_writable(path: str, dataset: str) -> None:
    """Refuse, before anything is staged, a file that cannot be replaced."""
    problem = writable_problem(path)
    if problem:
        raise ApplyError(f"{dataset}: {problem}")


def write_staged_text(path: str, request_id: str, text: str) -> str:
    """Stage a text file's new version beside it (see `open_staged`), synced; its path."""
    new, fh = open_staged(path, request_id, "w", newline="", encoding="utf-8")
    with fh:
        fh.write(text)
    fsync_file(new)
    return new


def fsync_file(path: str) -> None:
    """Flush a written file and its directory entry to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class FileTarget(Target):
    """Targets whose change is a new version of one or more files, swapped in by rename."""

    request_id: str = "request"

    def editor(self) -> RowEditor:
        """The row editor for the step (Python-side matching, for text formats)."""
        return RowEditor(self.match_query(), self.hasher, self.deletes, self.column_actions,
                         self.kinds, dict(self.step.params))

    def residue_editor(self) -> RowEditor:
        """A row editor that matches what must be gone after the step."""
        return RowEditor(self.residue_query(), self.hasher, True, {}, {}, {})

    @abstractmethod
    def count_residue(self, path: str, original: str | None = None) -> int:
        """Rows of one file version that still carry what the step removes; `original` is
        the file a staged version was made from."""

    def files(self) -> list[str]:
        """The dataset's files."""
        return [self.step.location]

    def check(self, staged: Staged) -> None:
        super().check(staged)
        left = self.staged_residue(staged)
        if left:
            raise ApplyError(f"{self.step.dataset}: the staged version still holds {left} rows "
                             "of the subject")

    def staged_residue(self, staged: Staged) -> int:
        return sum(self.count_residue(new, final) for final, new in staged.files)

    def residue(self) -> int:
        return self.count_residue(self.step.location)

    def sandbox_relation(self, staged: Staged | None) -> Relation:
        new = dict(staged.files) if staged is not None else {}
        paths = [new.get(p, p) for p in self.files()]
        return Relation(reader_sql(self.step.format, paths, self.options), tuple(paths))

    def executable(self) -> str | None:
        return next(filter(None, (writable_problem(p) for p in self.files())), None)

    def commit(self, staged: Staged) -> None:
        for n, (final, new) in enumerate(staged.files):
            if os.path.exists(new):
                os.replace(new, final)  # atomic on POSIX; a retry after success finds no file
            if n == 0 and len(staged.files) > 1:
                fault("mid-file-commit")
        for final, _ in staged.files[:1]:
            dfd = os.open(os.path.dirname(final) or ".", os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def rollback(self, staged: Staged) -> None:
        for _, new in staged.files:
            if os.path.lexists(new):
                os.remove(new)

    def discard(self) -> None:
        for path in self.files():
            for new in staged_glob(path, self.request_id):
                if stat.S_ISREG(os.lstat(new).st_mode):  # optout never makes links there
                    os.unlink(new)
