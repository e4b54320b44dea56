"""The erasure plan: frozen, ordered, serializable data with a content hash.

Building a plan writes nothing to the data. It holds no raw identifiers: subjects appear as
keyed hashes, examples are masked, rows are counted, not copied.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from optout.model.dataset import DatasetRef
from optout.model.errors import EngineError
from optout.model.identifiers import KINDS
from optout.model.plan_detail import DetailError, SubjectDetail, SubjectResolution
from optout.model.row_numbers import RowNumbers, RowNumbersError
from optout.model.runtime import RUNTIMES

#: 4: steps name their special-category columns; 5: the per-subject detail is one sealed
#: Parquet table (optout/model/plan_detail.py)
PLAN_VERSION = 5
#: a request id: it names files (staged versions, plans waiting for approval), so no paths;
#: `worker:` starts the ids of the worker's requests, which no CLI request may take
REQUEST_ID = re.compile(r"^(worker:)?[A-Za-z0-9._-]{1,80}$")


class PlanError(EngineError):
    """A plan file is unreadable, altered, or not a plan."""


@dataclass(frozen=True)
class PlanStep:
    """What happens to one dataset that holds the subject, and why."""

    dataset_id: str
    dataset: str
    location: str
    format: str
    kind: str
    action: str
    rule: str
    rows: int | None  # matching rows; None for a derived dataset rebuilt from its sources
    match: tuple[str, ...] = ()  # how rows are matched (columns, domains)
    columns: tuple[tuple[str, str], ...] = ()  # column → action, for column-level changes
    via: tuple[str, ...] = ()  # how the subject was reached: links and lineage
    legal_basis: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    #: what apply matches rows by: (column, normalization kind, keyed hashes), free-text
    #: columns and the keyed hashes of the subject's mentions; keyed hashes only
    keys: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    texts: tuple[str, ...] = ()
    text_hashes: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()  # how the source reads the dataset
    fingerprint: str | None = None  # the dataset's fingerprint when planned
    #: where the matching rows are, per file: (path, file fingerprint, row numbers); apply
    #: uses them while the file's fingerprint holds (Parquet), else it matches by a full pass.
    #: Row numbers are `RowNumbers` (written compactly); plans made before kept tuples.
    locations: tuple[tuple[str, str, RowNumbers | tuple[int, ...]], ...] = ()
    #: GDPR Art. 9 special-category columns of the dataset: (column, category, what the step
    #: does to it: `deleted with the row`, a column action, or `kept`)
    special: tuple[tuple[str, str, str], ...] = ()

    def param(self, key: str, default: Any = None) -> Any:
        """One action parameter."""
        return dict(self.params).get(key, default)

    def ref(self) -> DatasetRef:
        """The source-level reference of the step's dataset."""
        return DatasetRef(self.format, self.location, self.dataset, self.kind, self.format,
                          self.options)


#: how a finding about special-category data a step keeps in clear begins (not left data)
RETAINED_FINDING = "special-category data (GDPR Art. 9) kept in clear"


@dataclass(frozen=True)
class DatasetNote:
    """A dataset the plan looked at without a step: searched with no match, or needing review."""

    dataset_id: str
    dataset: str
    location: str
    reason: str
    #: rows of the subject the plan found there by value and leaves (None: not known)
    rows: int | None = None
    #: what would resolve it, best first: {"section": "links" | "references", "columns":
    #: [a, b], "evidence": ...}, accepted or rejected in one step with `optout review PLAN`
    proposals: tuple[dict[str, Any], ...] = ()

    @property
    def may_hold(self) -> bool:
        """True when the dataset (or a stopped subject) may still hold the subject's data
        after apply; a finding about data a step retains on purpose does not."""
        return not self.reason.startswith(RETAINED_FINDING)


__all__ = ["SubjectResolution"]  # it lives with the detail that holds it


@dataclass(frozen=True)
class ErasurePlan:
    """A whole plan."""

    request_id: str
    created_at: str
    created_by: str
    policy: dict[str, str]
    catalog_state: str
    steps: tuple[PlanStep, ...]
    searched: tuple[DatasetNote, ...] = ()
    review: tuple[DatasetNote, ...] = ()
    exempt: tuple[DatasetNote, ...] = ()
    approvals: int = 1  # approvals the policy requires before apply
    #: the subjects as the request named them (keyed hashes) and what each resolved to: one
    #: columnar table, sealed by its sha256 (optout/model/plan_detail.py)
    detail: SubjectDetail = field(default_factory=lambda: SubjectDetail.build((), ()))
    #: steps that cannot be carried out (optout/engine/executable.py): the plan cannot be applied
    unexecutable: tuple[DatasetNote, ...] = ()
    #: the request this plan finishes (`apply --replan` of a blocked request)
    supersedes: str = ""
    #: the erasure requests whose subjects this plan erases again (a restore brought them
    #: back: `optout restore-check`, `optout ledger sweep`)
    reerases: tuple[str, ...] = ()
    #: the engine that matched the rows (`duckdb` or `spark`); apply may run on another one
    #: while the data's fingerprints hold
    engine: str = "duckdb"
    #: the deployment's configuration the plan was made under (optout/engine/plan_settings.py)
    settings: dict[str, Any] = field(default_factory=dict)
    version: int = PLAN_VERSION
    content_hash: str = field(default="", compare=False)
    #: the catalog's MAC of the content hash (optout/engine/plan_store.py): set once recorded
    mac: str = field(default="", compare=False)

    @property
    def subjects(self) -> tuple[dict[str, str], ...]:
        """The subjects as the request named them: `{"key", "hash"}` each."""
        return self.detail.subjects

    @property
    def resolution(self) -> tuple[SubjectResolution, ...]:
        """What each subject resolved to."""
        return self.detail.resolutions

    def body(self) -> dict[str, Any]:
        """Everything but the content hash and the MAC, in a stable order; the steps and
        notes stay objects (`_plain` turns them into JSON objects as they are written,
        without copying the plan first); the per-subject detail is its sealed summary."""
        data = _fields(self)
        data.pop("content_hash")
        data.pop("mac")
        data["detail"] = self.detail.summary
        for name in ("unexecutable", "supersedes", "reerases", "settings"):  # absent from older plans:
            if not data[name]:                          # their hashes stay as they were
                data.pop(name)
        if data["engine"] == "duckdb":  # likewise: plans before the Spark engine
            data.pop("engine")
        return data

    def digest(self) -> str:
        """sha256 of the canonical JSON of the body (computed once per plan object: a plan
        is not changed in place, `dataclasses.replace` makes a new one)."""
        cached = self.__dict__.get("_digest")
        if cached is None:
            text = json.dumps(self.body(), sort_keys=True, separators=(",", ":"),
                              default=_plain)
            cached = hashlib.sha256(text.encode()).hexdigest()
            object.__setattr__(self, "_digest", cached)
        return cached

    def remaining(self) -> list[DatasetNote]:
        """What may still hold the subject after apply: review items other than findings on
        retained data (datasets left, stopped subjects)."""
        return [n for n in self.review if n.may_hold]

    def rows_left(self) -> int:
        """Rows of the subject the plan found by value and leaves."""
        return sum(n.rows or 0 for n in self.remaining())

    def sealed(self) -> ErasurePlan:
        """The same plan with its content hash filled in."""
        from dataclasses import replace

        return replace(self, content_hash=self.digest())

    def to_json(self) -> str:
        """The plan file's text: one top-level field a line, and one line per step and note
        (JSON's C encoder writes each line; `indent` would make the encoder Python's own);
        the per-subject detail is one base64 line (`detail_data`), sealed by `detail`.
        Written once per plan object (recorded, then saved: tens of MB at 100,000 subjects)."""
        cached = self.__dict__.get("_json")
        if cached is not None:
            return cached
        sealed = {"content_hash": self.content_hash or self.digest(),
                  "detail_data": self.detail.text()}
        if self.mac:
            sealed["mac"] = self.mac
        data = {**self.body(), **sealed}
        encode = json.JSONEncoder(sort_keys=True, default=_plain).encode
        lines = []
        for key in sorted(data):
            value = data[key]
            if isinstance(value, list | tuple) and value:
                items = ",\n".join(f"    {encode(v)}" for v in value)
                lines.append(f"  {encode(key)}: [\n{items}\n  ]")
            else:
                lines.append(f"  {encode(key)}: {encode(value)}")
        text = "{\n" + ",\n".join(lines) + "\n}\n"
        object.__setattr__(self, "_json", text)
        return text

    @property
    def summary(self) -> dict[str, int]:
        """Counts per action, and of the notes."""
        out: dict[str, int] = {}
        for s in self.steps:
            out[s.action] = out.get(s.action, 0) + 1
        out["rows"] = sum(s.rows or 0 for s in self.steps if s.action == "delete_rows")
        out["needs_review"] = len(self.review)
        out["rows_left"] = self.rows_left()
        out["stopped"] = self.detail.summary["statuses"].get("stopped", 0)
        out["searched_no_match"] = len(self.searched)
        out["exempt"] = len(self.exempt)
        out["unexecutable"] = len(self.unexecutable)
        return out


def _fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields by name (not copied)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _plain(obj: Any) -> Any:
    """How JSON writes what it has no form for: a dataclass as an object of its fields,
    anything else as its text (the same JSON as `dataclasses.asdict` would give)."""
    return _fields(obj) if is_dataclass(obj) and not isinstance(obj, type) else str(obj)


def _note(data: dict[str, Any]) -> DatasetNote:
    """A note from its JSON (proposals as a tuple, as the plan made them)."""
    return DatasetNote(**{**data, "proposals": tuple(data.get("proposals", ()))})


def load_plan(path: str | Path) -> ErasurePlan:
    """Read a plan file and check its content hash."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise PlanError(f"{path}: not a readable plan file: {exc.strerror}") from exc
    return plan_from_json(text, str(path))


def plan_from_json(text: str, origin: str) -> ErasurePlan:
    """A plan from its JSON (a file, the journal), its version and content hash checked."""
    try:
        data = json.loads(text)
        plan = ErasurePlan(
            request_id=data["request_id"], created_at=data["created_at"],
            created_by=data["created_by"], policy=data["policy"],
            catalog_state=data["catalog_state"],
            steps=tuple(_step(s) for s in data["steps"]),
            searched=tuple(_note(n) for n in data["searched"]),
            review=tuple(_note(n) for n in data["review"]),
            exempt=tuple(_note(n) for n in data["exempt"]),
            approvals=int(data.get("approvals", 1)),
            detail=_detail(data, origin),
            unexecutable=tuple(_note(n) for n in data.get("unexecutable", ())),
            supersedes=str(data.get("supersedes", "")),
            reerases=tuple(str(r) for r in data.get("reerases", ())),
            engine=str(data.get("engine", "duckdb")),
            settings=dict(data.get("settings") or {}),
            version=data["version"], content_hash=data["content_hash"],
            mac=str(data.get("mac", "")))
    except json.JSONDecodeError as exc:
        raise PlanError(f"{origin}: not a readable plan file: {exc}") from exc
    except (KeyError, TypeError) as exc:
        raise PlanError(f"{origin}: not a plan file (missing or bad field {exc})") from exc
    except RowNumbersError as exc:
        raise PlanError(f"{origin}: not a plan file (locations: {exc})") from exc
    except DetailError as exc:
        raise PlanError(str(exc)) from exc
    if not REQUEST_ID.match(plan.request_id):
        raise PlanError(f"{origin}: not a plan this optout made (request id "
                        f"{plan.request_id[:80]!r})")
    bad = [k for step in plan.steps for _, k, _ in step.keys if k not in KINDS]
    if bad:
        raise PlanError(f"{origin}: not a plan this optout made (unknown match kind {bad[0]!r})")
    if plan.engine not in RUNTIMES:
        raise PlanError(f"{origin}: not a plan this optout made (engine {plan.engine[:20]!r})")
    if plan.version != PLAN_VERSION:
        raise PlanError(f"{origin}: plan version {plan.version}, this optout reads {PLAN_VERSION}")
    if plan.digest() != plan.content_hash:
        raise PlanError(f"{origin}: content hash does not match: the plan was altered")
    object.__setattr__(plan, "_source", text)  # what it was read from (see `read_from`)
    return plan


def read_from(plan: ErasurePlan, text: str) -> bool:
    """True when `plan` was read (`plan_from_json`) from exactly this text: reading the text
    again would give the same plan."""
    return plan.__dict__.get("_source") == text


def _step(s: dict[str, Any]) -> PlanStep:
    """A step from its JSON form (lists back to tuples, so the content hash is reproduced)."""
    return PlanStep(**{
        **s, "match": tuple(s["match"]), "columns": tuple(tuple(c) for c in s["columns"]),
        "via": tuple(s["via"]), "params": tuple((k, _freeze(v)) for k, v in s["params"]),
        "keys": tuple((c, k, tuple(h)) for c, k, h in s["keys"]), "texts": tuple(s["texts"]),
        "text_hashes": tuple(s["text_hashes"]),
        "locations": tuple((p, f, RowNumbers.decode(r) if isinstance(r, str) else tuple(r))
                           for p, f, r in s.get("locations", ())),
        "special": tuple(tuple(c) for c in s.get("special", ())),
        "options": tuple((k, _freeze(v)) for k, v in s["options"])})


def detail_of(data: dict[str, Any], origin: str) -> SubjectDetail:
    """The per-subject detail of a plan's JSON as a dict (the journal's copy of a plan); a
    plan of an older optout kept its subjects and resolutions as JSON objects."""
    if "detail_data" not in data:
        return SubjectDetail.build(
            data.get("subjects", ()), [SubjectResolution(
                r["subject"], r["status"], tuple((d, n) for d, n in r["keys"]),
                tuple(r["learned"]), r.get("reason")) for r in data.get("resolution", ())])
    try:
        return SubjectDetail.from_text(data["detail_data"], data["detail"], origin)
    except DetailError as exc:
        raise PlanError(str(exc)) from exc


def _detail(data: dict[str, Any], origin: str) -> SubjectDetail:
    """The per-subject detail, checked against the summary the digest seals (which it then
    keeps: counts need no read of the table)."""
    if data.get("version") != PLAN_VERSION:  # an older plan: its version error says so
        return SubjectDetail.build((), ())
    sealed = data["detail"]
    if not isinstance(sealed, dict) or not isinstance(sealed.get("statuses"), dict):
        raise PlanError(f"{origin}: not a plan file (bad field 'detail')")
    detail = SubjectDetail.from_text(data["detail_data"], sealed, origin)
    detail.__dict__["summary"] = sealed
    return detail


def _freeze(value: Any) -> Any:
    """JSON lists back to the tuples a plan holds."""
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value
