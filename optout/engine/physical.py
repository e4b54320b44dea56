"""Physical erasure of an applied plan: every store the plan changed (a database file, a
database, data files) is made to hold the erased values in none of its bytes, then read raw for
the subject's identifiers (`optout/connectors/forensic.py`), as is optout's own catalog.

The policy's `physical` decides how much this matters: `required` (the default) retries a store
whose raw read still finds the subject and blocks the request (`optout resume`) until it reads
clean; `best-effort` records what it found and ends the request `incomplete_needs_review`;
`off` erases logically only, and the request ends `complete_with_review` with the report saying
which stores may hold the bytes. Each store's outcome is recorded in `physical_steps`, so a
resumed request runs again only the stores not yet done.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections import defaultdict
from typing import Any

from optout.connectors import connector_for
from optout.connectors.forensic import Needles, scan_files
from optout.connectors.physical import PhysicalSettings, Reach, Store
from optout.engine import EngineError
from optout.engine.policy import Policy
from optout.model.errors import ScannerError
from optout.model.plan import ErasurePlan, PlanStep
from optout.model.redaction import one_line
from optout.model.secret import KeyedHash
from optout.scanner.catalog import Catalog, DatasetRecord

ATTEMPTS = 5
#: a store's outcomes that need nothing more
DONE = ("verified", "rewritten", "unreachable", "retained")
#: column actions after which a key's value is gone from the rows kept
REMOVING = ("null", "hash", "mask", "generalize", "redact")
CATALOG_STORE = "optout catalog"
#: most erased values searched literally: an automaton over more (four forms each) costs more
#: to build than the keyed-hash token search costs to run (1,000,000 values: 6.7 s and 2 GB,
#: against about a second per 50 MB of store); past it the store is read by keyed hash
MAX_LITERALS = 100_000


class PhysicalError(EngineError):
    """A store could not be erased physically, or its raw bytes still hold the subject."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def settings_of(policy: Policy) -> PhysicalSettings:
    """The physical-erasure settings a policy sets."""
    return PhysicalSettings(lock_friendly=tuple(policy.lock_friendly),
                            keep_history=policy.table_history == "retain")


def stores(plan: ErasurePlan, settings: PhysicalSettings) -> list[tuple[str, Store]]:
    """(format, store) for every place the plan changes, in plan order."""
    grouped: dict[tuple[str, str], list[PlanStep]] = defaultdict(list)
    for step in plan.steps:
        if step.kind == "view" or (step.action == "retain" and not step.columns):
            continue
        grouped[(step.format, step.location)].append(step)
    out = []
    for (fmt, location), steps in grouped.items():
        connector = connector_for(fmt)
        cls = connector.physical_class() if connector else None
        if cls is not None:
            out.append((fmt, cls(location, steps, plan.request_id, settings)))
    return out


#: column types whose values a store keeps as binary numbers: no text search can tell them
#: from other bytes (Arrow's names, as the catalog records a scanned column, and SQL's)
NUMERIC = re.compile(r"^(u?int\d*|integer|bigint|smallint|tinyint|hugeint|float\d*|halffloat|"
                     r"double|real|decimal|numeric)\b", re.IGNORECASE)


def needles_for(hasher: KeyedHash, steps: list[PlanStep],
                numeric: frozenset[tuple[str, str]] = frozenset()) -> Needles:
    """What must be gone from a store's bytes: the keys of rows deleted and of key columns a
    step changes, less the values a step on the same store keeps on purpose. Keys of numeric
    columns (`numeric`: dataset id, column) are not searched: stored as binary numbers, they
    are no text, and among 1,000,000 subjects' ids a run of random bytes that reads
    `12.345678` is one of them by chance."""
    gone = Needles(hasher)
    kept: dict[str, set[str]] = defaultdict(set)
    for step in steps:
        changed = dict(step.columns)
        for column, kind, hashes in step.keys:
            if (step.dataset_id, column) in numeric:
                continue
            if step.action == "delete_rows" or changed.get(column) in REMOVING:
                gone.hashes.setdefault(kind, set()).update(hashes)
            else:
                kept[kind].update(hashes)
    for kind, hashes in kept.items():
        gone.hashes.get(kind, set()).difference_update(hashes)
    return gone


class Physical:
    """The physical erasure of one request, recorded in the catalog."""

    def __init__(self, catalog: Catalog, plan: ErasurePlan, policy: Policy,
                 known: dict[int, set[str] | None] | None = None) -> None:
        self.catalog = catalog
        self.plan = plan
        self.mode = policy.physical
        self.settings = settings_of(policy)
        #: step number → the values its rows were matched by, when this process changed them
        self.known = known or {}
        #: literal needles by the values they search: stores (and the catalog) that search the
        #: same values share one automaton, built once (0.8 s for a 100,000-subject list)
        self._literal: dict[frozenset[str], Needles] = {}
        self._records: dict[str, DatasetRecord] | None = None

    def _needles(self, hasher: KeyedHash, steps: list[PlanStep]) -> Needles:
        """The store's needles: the raw values this process saw, searched literally (fast),
        when it saw every step's and they are at most MAX_LITERALS; else the keyed hashes,
        matched token by token (a resumed request, whose process never saw the values; a
        deletion list of more)."""
        number = {id(s): i for i, s in enumerate(self.plan.steps)}
        removing = [s for s in steps if _removes_keys(s)]
        values = [self.known.get(number[id(s)]) for s in removing]
        if removing and all(v is not None for v in values):
            wanted = frozenset().union(*values)
            literal = self._literal.get(wanted)
            if literal is None and len(wanted) <= MAX_LITERALS:
                literal = self._literal[wanted] = Needles(hasher)
                for value in wanted:
                    literal.add_literal(value)
            if literal is not None:
                return literal  # (empty: the keys are not text, the store is only rewritten)
        return needles_for(hasher, steps, self._numeric(steps))

    def _numeric(self, steps: list[PlanStep]) -> frozenset[tuple[str, str]]:
        """The steps' key columns the catalog knows as numeric (see `needles_for`)."""
        out = set()
        if self._records is None:  # read once for every store of the request
            self._records = {d.id: d for d in self.catalog.datasets()}
        records = self._records
        for step in steps:
            record = records.get(step.dataset_id)
            if record is None:
                continue
            types = {c.name: c.type for c in record.columns}
            out |= {(step.dataset_id, column) for column, _, _ in step.keys
                    if NUMERIC.match(types.get(column) or "")}
        return frozenset(out)

    def purge_kept(self, names: set[str]) -> list[str]:
        """Purge and read back the named stores whose older versions were kept (their
        retention has ended); returns the problems."""
        hasher = self.catalog.hasher()
        settings = PhysicalSettings(lock_friendly=self.settings.lock_friendly)
        problems = []
        for fmt, store in stores(self.plan, settings):
            if store.name in names:
                problem = self._store(fmt, store, self._needles(hasher, store.steps), hasher)
                if problem:
                    problems.append(problem)
        return problems

    def recorded(self) -> dict[str, dict[str, Any]]:
        """The request's store outcomes so far, by store."""
        with self.catalog.connect() as con:
            rows = con.execute("SELECT store, format, status, attempts, error, detail FROM "
                               "physical_steps WHERE request_id = ? ORDER BY rowid",
                               [self.plan.request_id]).fetchall()
        return {r[0]: {"store": r[0], "format": r[1], "status": r[2], "attempts": r[3],
                       "error": r[4], "detail": json.loads(r[5] or "{}")} for r in rows}

    def _record(self, store: str, fmt: str, status: str, attempts: int, error: str | None,
                detail: dict[str, Any]) -> None:
        with self.catalog.connect() as con:
            con.execute("DELETE FROM physical_steps WHERE request_id = ? AND store = ?",
                        [self.plan.request_id, store])
            con.execute("INSERT INTO physical_steps VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [self.plan.request_id, store, fmt, status, attempts,
                         one_line(error)[:300] if error else None, json.dumps(detail), _now()])

    def run(self) -> list[str]:
        """Erase physically and read back every store not done yet; returns the problems
        (stores still holding the subject, or failing). Raises PhysicalError when the policy
        requires physical erasure and a problem remains."""
        done = self.recorded()
        hasher = self.catalog.hasher()
        problems = []
        for fmt, store in stores(self.plan, self.settings):
            if done.get(store.name, {}).get("status") in (*DONE, "off"):
                continue
            if self.mode == "off":
                self._record(store.name, fmt, "off", 0, None, {
                    "done": [], "outside": ["physical erasure is off by policy: the erased "
                                            "values may remain in this store's bytes"]})
                continue
            problem = self._store(fmt, store, self._needles(hasher, store.steps),
                                  hasher)
            if problem:
                problems.append(problem)
        if self.mode != "off":
            problems += self._catalog(hasher)
        if problems and self.mode == "required":
            raise PhysicalError("physical erasure: " + "; ".join(problems))
        return problems

    def _store(self, fmt: str, store: Store, needles: Needles,
               hasher: KeyedHash) -> str | None:
        error = None
        for attempt in range(1, ATTEMPTS + 1):
            try:
                store.hasher = hasher
                done = store.erase()
                reach = store.reach()
                needles.utf16 = reach.utf16
                hits = scan_files(needles, reach.files)
                hits.update({f"{store.name} @ version {v} (its rows, read through the table's "
                             "library)": n for v, n in reach.versions.items()})
                outside = store.outside() + [
                    f"version {v} still holds the subject until {until or 'no end date'} "
                    f"({why}); `optout ledger sweep` purges it once its retention has ended"
                    for v, (until, why) in sorted(reach.kept.items())]
            except (EngineError, ScannerError, OSError) as exc:
                error = str(exc)
                self._record(store.name, fmt, "retrying", attempt, error, {})
                time.sleep(0.2 * attempt)
                continue
            status = _status(reach, hits, needles)
            self._record(store.name, fmt, status, attempt, None, {
                "done": done, "read": hits, "searched": sorted(k for k, h in
                                                               needles.hashes.items() if h),
                "unreachable": reach.unreachable, "outside": outside,
                "kept": {v: until for v, (until, _) in reach.kept.items()}})
            if status != "residue":
                return None
            error = (f"{sum(hits.values())} occurrences of the subject still in the raw bytes"
                     + store.residue_hint())
            time.sleep(1.0 * attempt)
        status = "residue" if error and "occurrences" in error else "failed"
        if status == "failed":
            self._record(store.name, fmt, "failed", ATTEMPTS, error, {})
        return f"{store.name}: {error}"

    def _catalog(self, hasher: KeyedHash) -> list[str]:
        """optout's own catalog (journal, plans, audit log) read raw: it must hold keyed
        hashes and masked values only."""
        needles = self._needles(hasher, list(self.plan.steps))
        path = str(self.catalog.path)
        hits = scan_files(needles, [path, path + ".wal"])
        status = "residue" if any(hits.values()) else "verified"
        self._record(CATALOG_STORE, "duckdb", status, 1, None, {
            "done": [], "read": hits, "searched": sorted(k for k, h in needles.hashes.items()
                                                         if h),
            "unreachable": [], "outside": []})
        return [f"{CATALOG_STORE}: the subject's identifiers are in its raw bytes"] \
            if status == "residue" else []


def _removes_keys(step: PlanStep) -> bool:
    changed = dict(step.columns)
    return step.action == "delete_rows" or any(changed.get(c) in REMOVING
                                               for c, _, _ in step.keys)


def _status(reach: Reach, hits: dict[str, int], needles: Needles) -> str:
    if any(hits.values()):
        return "residue"
    if reach.kept:
        return "retained"
    if not reach.files:
        return "unreachable"
    return "verified" if needles or reach.versions else "rewritten"


def physical_steps(catalog: Catalog, request_id: str) -> list[dict[str, Any]]:
    """A request's physical-erasure outcomes, for its report."""
    with catalog.connect() as con:
        rows = con.execute("SELECT store, format, status, attempts, error, detail, updated_at "
                           "FROM physical_steps WHERE request_id = ? ORDER BY rowid",
                           [request_id]).fetchall()
    out = []
    for store, fmt, status, attempts, error, detail, at in rows:
        d = json.loads(detail or "{}")
        out.append({"store": store, "format": fmt, "status": status, "attempts": attempts,
                    "error": error, "rewritten": d.get("done", []),
                    "read": [{"file": f, "hits": n} for f, n in d.get("read", {}).items()],
                    "searched_for": d.get("searched", []),
                    "not_reachable": d.get("unreachable", []),
                    "outside_reach": d.get("outside", []),
                    "at": at.isoformat(timespec="seconds") if at else None})
    return out
