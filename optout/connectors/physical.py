"""Physical erasure: after a plan's changes commit, what a store does so that the erased values
are gone from its bytes too, not only from what it reads, and which bytes optout can then read
raw to prove it (see `forensic.py`).

One `Store` is one place a plan changed: a database file, a database, a data file. Its format's
connector names the class (`Connector.physical`). A store says what it rewrote, which files
it can read raw, what it cannot reach and why, and what lies outside optout's reach with the
retention that holds it there (write-ahead logs, archives, the file system's freed blocks).
Every move is idempotent: a step that died half-way is run again whole.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from optout.connectors.target import STAGED_SUFFIX, staged_glob
from optout.model.plan import PlanStep
from optout.model.secret import KeyedHash

#: what no store of files can reach: the blocks a replaced version freed
FREED_BLOCKS = ("the blocks the replaced version occupied were freed to the file system, not "
                "overwritten: optout cannot reach them; only the device's own erasure "
                "(discard/TRIM, an encrypted volume's key) does")


@dataclass(frozen=True)
class PhysicalSettings:
    """How a policy asks stores to erase physically."""

    #: dataset name globs of tables that cannot take an exclusive lock: a database
    #: reclaims their space in place (freed space may hold bytes until it is reused)
    lock_friendly: tuple[str, ...] = ()
    #: a table format's older versions are kept (the policy's `table_history: retain`): the
    #: report names each one still holding the subject and the day its retention ends
    keep_history: bool = False

    def is_lock_friendly(self, dataset: str) -> bool:
        return any(fnmatch.fnmatchcase(dataset, g) for g in self.lock_friendly)


@dataclass
class Reach:
    """Which of a store's bytes optout can read raw, and what it cannot."""

    files: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # what, and why
    utf16: bool = False  # the store keeps text as UTF-16
    #: a table format's versions still readable (time travel) → rows of the subject in each
    versions: dict[str, int] = field(default_factory=dict)
    #: older versions kept on purpose that still hold the subject → (the day their retention
    #: ends, ISO; None: no end), what keeps them
    kept: dict[str, tuple[str | None, str]] = field(default_factory=dict)


class Store(ABC):
    """One place a plan changed, erased physically as a whole."""

    def __init__(self, location: str, steps: list[PlanStep], request_id: str,
                 settings: PhysicalSettings) -> None:
        self.location = location
        self.steps = steps
        self.request_id = request_id
        self.settings = settings
        #: the catalog's keyed hash (set by the physical step): stores that read rows back
        #: through a library (a table format's versions) match them with it
        self.hasher: KeyedHash | None = None

    @property
    def name(self) -> str:
        """The store as the report names it."""
        return self.location

    @abstractmethod
    def erase(self) -> list[str]:
        """Make the committed change physical; returns what was done (idempotent)."""

    @abstractmethod
    def reach(self) -> Reach:
        """The files to read raw after `erase`, and what cannot be read."""

    def outside(self) -> list[str]:
        """What holds the erased bytes beyond optout's reach, and until when."""
        return []

    def residue_hint(self) -> str:
        """What may explain bytes still found after `erase` (appended to the error)."""
        return ""


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class FileStore(Store):
    """Data files replaced by a new version (Parquet, CSV, JSON, logs): the old version was
    unlinked by the rename; what remains is to remove any staged leftover and read the files."""

    def paths(self) -> list[str]:
        """The dataset's files (a folder's files, recursively)."""
        if os.path.isdir(self.location):
            return sorted(os.path.join(d, f) for d, _, files in os.walk(self.location)
                          for f in files)
        return [self.location]

    def leftovers(self) -> list[str]:
        """Staged versions of this request that no rename consumed."""
        found = [p for path in self.paths() for p in staged_glob(path, self.request_id)]
        return [p for p in found if p.endswith(STAGED_SUFFIX) and _is_regular(p)]

    def erase(self) -> list[str]:
        left = self.leftovers()
        for path in left:
            os.unlink(path)
        return ["replaced by a new version (the old one unlinked by an atomic rename)"] + (
            [f"removed {len(left)} staged leftover file(s)"] if left else [])

    def reach(self) -> Reach:
        return Reach(files=[p for p in self.paths() if _is_regular(p)])

    def outside(self) -> list[str]:
        notes = [FREED_BLOCKS]
        if any(s.format == "parquet" for s in self.steps):
            notes.append("Parquet pages are compressed: a raw read sees only values stored "
                         "uncompressed; the logical read-back reads every value")
        return notes


def database_files(path: str, suffixes: tuple[str, ...]) -> list[str]:
    """A database file and the side files it keeps (write-ahead log, journal) that exist."""
    return [p for p in [path, *(path + s for s in suffixes)] if _is_regular(p)]
