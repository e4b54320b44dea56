"""A plan's per-subject detail, columnar: who the request names (keyed hashes) and what each
subject resolved to. At 100,000 subjects this is most of a plan; kept as one compressed
Parquet table (in the plan file as base64, sealed by its sha256 in the plan's digest), it is
written and read in one pass instead of as 100,000 JSON objects, and turned into Python
objects only when somebody asks for them (a rendered plan, one subject's detail).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from optout.model.errors import EngineError

#: the columns of the detail table: a row is a subject as the request names it (`part` =
#: `subject`: `key`, `hash`) or a subject's resolution (`part` = `resolution`: `hash` is the
#: subject's keyed hash, `status`, `keys` as JSON pairs, `learned`, `reason`)
SCHEMA = pa.schema([("part", pa.string()), ("key", pa.string()), ("hash", pa.string()),
                    ("status", pa.string()), ("keys", pa.string()),
                    ("learned", pa.list_(pa.string())), ("reason", pa.string())])
FORMAT = "parquet+zstd"


@dataclass(frozen=True)
class SubjectResolution:
    """What one subject resolved to: keys per domain, each learned key with the row and
    column it came from, and whether the plan stopped it."""

    subject: str  # the subject's keyed hash
    status: str  # resolved | stopped | accepted (stopped, but the caller accepted it)
    keys: tuple[tuple[str, int], ...] = ()  # domain → how many keys
    learned: tuple[str, ...] = ()
    reason: str | None = None  # why it was stopped


@dataclass(frozen=True)
class Resolutions:
    """What the subjects resolved to, a column each (see SubjectResolution), in order."""

    subject: list[str]
    status: list[str]
    keys: list[str]  # JSON pairs (`keys_json`)
    learned: pa.ListArray  # list<string>
    reason: list[str | None]


@functools.lru_cache(maxsize=4096)
def keys_json(keys: tuple[tuple[str, int], ...]) -> str:
    """A resolution's keys as the detail table holds them (most subjects share a few forms)."""
    return json.dumps(keys, separators=(",", ":"))


class DetailError(EngineError):
    """A plan's per-subject detail is unreadable or not the one its digest seals."""


@dataclass(frozen=True, eq=False)
class SubjectDetail:
    """The detail as its Parquet bytes; `summary` is what the plan's digest covers."""

    data: bytes

    @classmethod
    def build(cls, subjects: Sequence[dict[str, str]],
              resolutions: Sequence[SubjectResolution]) -> SubjectDetail:
        """From the request's subjects (`{"key", "hash"}`) and the resolutions, in order."""
        return cls.from_columns(subjects, Resolutions(
            [r.subject for r in resolutions], [r.status for r in resolutions],
            [keys_json(r.keys) for r in resolutions],
            pa.array([list(r.learned) for r in resolutions], pa.list_(pa.string())),
            [r.reason for r in resolutions]))

    @classmethod
    def from_columns(cls, subjects: Sequence[dict[str, str]],
                     resolutions: Resolutions) -> SubjectDetail:
        """From the request's subjects and the resolutions as columns (a planner's 100,000
        subjects never become 100,000 objects on the way)."""
        n, m = len(subjects), len(resolutions.subject)
        learned = resolutions.learned
        table = pa.table({
            "part": pa.array(["subject"] * n + ["resolution"] * m, pa.string()),
            "key": [s["key"] for s in subjects] + [None] * m,
            "hash": [s["hash"] for s in subjects] + resolutions.subject,
            "status": [None] * n + resolutions.status,
            "keys": [None] * n + resolutions.keys,
            "learned": pa.concat_arrays([pa.nulls(n, learned.type), learned]),
            "reason": [None] * n + resolutions.reason}, schema=SCHEMA)
        out = io.BytesIO()
        pq.write_table(table, out, compression="zstd", use_dictionary=["part", "status", "keys",
                                                                      "reason"])
        detail = cls(out.getvalue())
        detail.__dict__["table"] = table  # already in memory: no need to read it back
        return detail

    @classmethod
    def from_text(cls, text: str, sealed: dict[str, Any], origin: str) -> SubjectDetail:
        """From the plan file's base64 text, checked against the digest-sealed summary."""
        try:
            data = base64.b64decode(text, validate=True)
        except (ValueError, TypeError) as exc:
            raise DetailError(f"{origin}: the per-subject detail is not base64: {exc}") from exc
        detail = cls(data)
        if detail.sha256 != sealed.get("sha256"):
            raise DetailError(f"{origin}: the per-subject detail does not match the plan's "
                              "content hash: it was altered")
        return detail

    def text(self) -> str:
        """The bytes as base64, for the plan file."""
        return base64.b64encode(self.data).decode()

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @functools.cached_property
    def table(self) -> pa.Table:
        """The detail as an Arrow table (read once)."""
        try:
            table = pq.read_table(io.BytesIO(self.data))
        except (pa.ArrowInvalid, OSError) as exc:
            raise DetailError(f"the plan's per-subject detail is unreadable: {exc}") from exc
        if not table.schema.equals(SCHEMA):
            raise DetailError("the plan's per-subject detail has an unknown layout")
        return table

    def _part(self, part: str) -> pa.Table:
        return self.table.filter(pc.equal(self.table["part"], part))

    @functools.cached_property
    def summary(self) -> dict[str, Any]:
        """What the plan's digest covers: the bytes' sha256, and counts to print without
        reading the table."""
        statuses = Counter(self._part("resolution")["status"].to_pylist())
        return {"format": FORMAT, "sha256": self.sha256,
                "subjects": self._part("subject").num_rows,
                "statuses": dict(sorted(statuses.items()))}

    @functools.cached_property
    def subjects(self) -> tuple[dict[str, str], ...]:
        """The subjects as the request named them: `{"key", "hash"}` each."""
        part = self._part("subject")
        return tuple({"key": k, "hash": h} for k, h in zip(
            part["key"].to_pylist(), part["hash"].to_pylist(), strict=True))

    @functools.cached_property
    def resolutions(self) -> tuple[SubjectResolution, ...]:
        """Every subject's resolution, in the plan's order."""
        return self.resolutions_of(self._part("resolution"))

    @staticmethod
    def resolutions_of(part: pa.Table) -> tuple[SubjectResolution, ...]:
        return tuple(
            SubjectResolution(h, s, tuple((d, int(n)) for d, n in json.loads(k)), tuple(lr), r)
            for h, s, k, lr, r in zip(*(part[c].to_pylist() for c in (
                "hash", "status", "keys", "learned", "reason")), strict=True))

    def subject_hashes(self) -> pa.Table:
        """The request's subjects as a two-column table (`hash`, `key`), for engines."""
        return self._part("subject").select(["hash", "key"])

    def resolution_of(self, subject_hash: str) -> SubjectResolution | None:
        """One subject's resolution by its keyed hash (None when the plan has none)."""
        part = self._part("resolution")
        found = part.filter(pc.equal(part["hash"], subject_hash))
        return self.resolutions_of(found)[0] if found.num_rows else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SubjectDetail) and self.sha256 == other.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)
