"""Planning: from a request's subjects to one step per dataset that holds them.

The walk runs in rounds. Each round asks every dataset with a match key in a domain that has
values (or a free-text column) for its matching rows — one query per dataset for all subjects
at once, grouped by the keyed hashes of the rows' keys — gives each row to the subjects it
belongs to, and learns from a subject's own rows only what the resolution rules allow
(`optout/engine/resolution.py`): an email finds the `customers` row whose `id = 42`, which finds
`orders.customer_id = 42`; the order's `employee_id` is somebody else and is never learned.
It stops when a round learns nothing new. Nothing is written to the data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import getpass
import hashlib
import itertools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from optout.connectors.source import Located
from optout.engine.executable import settle
from optout.engine.graph import (
    SUBJECT_ENTITIES,
    IdentityGraph,
    build_graph,
    holds_people,
    kind_of_column,
)
from optout.engine.journal import Journal
from optout.engine.key_names import role_word
from optout.engine.plan_render import ACTION_WORDS
from optout.engine.plan_settings import plan_settings
from optout.engine.plan_store import record_plan
from optout.engine.policy import COLUMN_ACTIONS, Policy, PolicyError, Rule
from optout.engine.policy_store import is_current
from optout.engine.rebuild import dbt_command_params, dbt_rebuild, rebuild_of
from optout.engine.references import dangling
from optout.engine.resolution import (
    OWNING,
    SubjectState,
    attribute,
    check_bound,
    check_shared,
    resolution_columns,
)
from optout.engine.source_pool import SourcePool
from optout.engine.subjects import Subject, SubjectError
from optout.model.errors import ScannerError
from optout.model.matching import GROUPS_PER_SUBJECT, MAX_GROUPS, KeyMatch, MatchQuery, MatchResult
from optout.model.plan import (
    REQUEST_ID,
    RETAINED_FINDING,
    DatasetNote,
    ErasurePlan,
    PlanError,
    PlanStep,
)
from optout.model.plan_detail import SubjectDetail
from optout.model.progress import task
from optout.model.row_numbers import RowNumbers
from optout.model.secret import KeyedHash
from optout.scanner.access import EMBEDDED, Principal, acting
from optout.scanner.catalog import Catalog, DatasetRecord
from optout.scanner.config import Config, DbtConfig

MAX_ROUNDS = 6
#: what a plan says of a dataset without rows, or whose personal columns hold no value
EMPTY = "empty: nothing to erase"
#: what a plan says of a lookup table (address types, territories) many rows point at
REFERENCE_DATA = ("reference data: shared by the rows of many people through declared foreign "
                  "keys, no person's own")
#: what a plan says of a table of other people: those the subject's rows name as agents
OTHER_PEOPLE = ("other people: the subject's rows name them as agents ({agents}); the request "
                "names no identifier of theirs")
MAX_RESTARTS = 4  # walks started again without the shared values they dropped
#: what makes a dataset derived (most to least of the row kept), for `derivation` rules
DERIVATION_ORDER = ("aggregated", "filter", "transformed", "copied")
TEXT_KEYS = ("email", "phone")  # identifiers also searched for in free text
TEXT_DOMAIN = "free text"  # where free-text mention hashes go among the domains


@dataclass(frozen=True)
class PlanRequest:
    """What to plan: subjects, the policy, and who asks."""

    subjects: list[Subject]
    policy: Policy
    policy_path: str
    request_id: str | None = None
    created_by: str = field(default_factory=getpass.getuser)
    #: domain → keyed hashes to start from, besides the subjects (re-erasing ledger subjects,
    #: planning again from an old plan)
    known: dict[str, frozenset[str]] = field(default_factory=dict)
    #: subjects as an earlier plan named them (keyed hashes), when planning again from it
    digests: tuple[dict[str, str], ...] = ()
    #: the blocked request whose remaining work this plan is
    supersedes: str = ""


@dataclass
class _Walk:
    graph: IdentityGraph
    hasher: KeyedHash
    subjects: list[SubjectState] = field(default_factory=list)
    results: dict[str, MatchResult] = field(default_factory=dict)
    asked: dict[str, MatchQuery] = field(default_factory=dict)  # the query of each result
    queries: dict[str, MatchQuery] = field(default_factory=dict)  # final: what apply matches
    rows: dict[str, int] = field(default_factory=dict)  # dataset id → rows apply changes
    failures: dict[str, str] = field(default_factory=dict)
    locations: dict[str, Located] = field(default_factory=dict)
    #: datasets left whose rows hold the keys of erased rows (optout/engine/references.py): why,
    #: and how many rows
    dangling: dict[str, tuple[str, int | None, tuple[dict, ...]]] = field(default_factory=dict)
    #: keyed hash → the normalized value behind it, for the request's identifiers and the keys
    #: learned from matched rows: engines match these values by plain equality and hash only
    #: what matched. In memory only: never in the plan, the journal or a log.
    raw: dict[str, str] = field(default_factory=dict, repr=False)
    #: the request's subjects' keyed hashes, in the request's order (each computed once)
    digests: list[str] = field(default_factory=list)
    #: keyed hashes of the names matched rows hold, each computed once however many rounds
    #: match the row again (in memory only, like `raw`)
    name_hashes: dict[str, str] = field(default_factory=dict, repr=False)

    def name_hash(self, name: str) -> str:
        """The keyed hash of a normalized name (`first last`), computed once per walk."""
        h = self.name_hashes.get(name)
        if h is None:
            h = self.name_hashes[name] = self.hasher(name)
        return h

    def learn_raw(self, result: MatchResult) -> None:
        """Remember the values behind the keyed hashes a match brought back (pairs with a
        NULL on either side are not kept)."""
        groups = result.groups
        if not groups or len(groups[0].raw) != len(groups[0].hashes):
            return  # the query did not bring the values back (`MatchResult.from_groups`)
        chain = itertools.chain.from_iterable
        pairs = dict(zip(chain(g.hashes for g in groups), chain(g.raw for g in groups),
                         strict=True))
        pairs.pop(None, None)  # type: ignore[call-overload]
        if None in pairs.values():  # a hash without its value: never a value to match by
            pairs = {h: v for h, v in pairs.items() if v is not None}
        self.raw.update(pairs)

    def _roles(self, record: DatasetRecord, roles: tuple[str, ...]) -> list[str]:
        return [c.name for c in record.columns if self.graph.roles.get((record.id, c.name))
                in roles and (record.id, c.name) in self.graph.domains]

    def query_for(self, record: DatasetRecord, owning_only: bool = False) -> MatchQuery:
        """The match of a dataset for every active subject: its keys in their domains, its
        free text for their mentions. `owning_only`: what apply changes (no agent columns)."""
        active = [s for s in self.subjects if s.active]
        roles = OWNING if owning_only else (*OWNING, "agent")
        keys = []
        empty: frozenset[str] = frozenset()
        for column in self._roles(record, roles):
            col = (record.id, column)
            domain = self.graph.domains[col]
            values = frozenset().union(*(s.known.get(domain, empty) for s in active))
            if values:
                raw = self.raw
                keys.append(KeyMatch(column, kind_of_column(self.graph, col), values,
                                     {h: raw[h] for h in values & raw.keys()}))
        text_hashes = frozenset(set().union(*(s.text_hashes for s in active)))
        texts = tuple(c.name for c in record.columns if c.free_text) if text_hashes else ()
        collect = tuple((c, kind_of_column(self.graph, (record.id, c)))
                        for c in self._roles(record, (*OWNING, "agent")))
        names: tuple[tuple[str, ...], ...] = ()
        if record.id in self.graph.person_tables and not owning_only:
            person = tuple(c.name for c in record.columns
                           if c.pii and c.entity == "PERSON" and not c.free_text)
            names = (person,) if len(person) == 2 else tuple((p,) for p in person)
        return MatchQuery(tuple(keys), texts, text_hashes if texts else frozenset(), collect,
                          names, raw_collect=True,
                          limit=max(MAX_GROUPS, GROUPS_PER_SUBJECT * len(active)))


def build_plan(catalog: Catalog, request: PlanRequest, config: Config | None = None,
               now: dt.datetime | None = None, caller: Principal | None = None,
               accept_ambiguous: bool = False) -> ErasurePlan:
    """Plan the request against everything the catalog knows. Reads data, writes none; the
    plan is recorded in the catalog (approve and apply trust that record, not a file).

    `accept_ambiguous`: plan subjects the resolution bound would stop (the plan says so)."""
    if request.request_id is not None and not REQUEST_ID.match(request.request_id):
        raise PlanError(f"bad request id {request.request_id[:80]!r}: use letters, digits and "
                        ". _ - (at most 80)")
    hasher = catalog.hasher()
    who = acting(catalog, caller)
    if caller is not None:  # the plan's author is who asked (four eyes rests on it)
        request = dataclasses.replace(request, created_by=who.name)
    if who is not EMBEDDED:
        _check_governed(catalog, request.policy)
    graph = build_graph(catalog, config)
    config = config or Config()
    walk = _Walk(graph, hasher)
    held = {e.subject_hash: e.reason for e in request.policy.exemptions if e.subject_hash}
    exempt_notes = []
    walk.digests = [subject.digest(hasher) for subject in request.subjects]
    for subject, digest in zip(request.subjects, walk.digests, strict=True):
        if digest in held:
            exempt_notes.append(DatasetNote("", "(subject)", digest,
                                            f"legal hold: {held[digest]}"))
            continue
        behind = {hasher(v): v for v in subject.values}  # each normalized form hashed once
        walk.subjects.append(_seed(graph, subject, set(behind), digest, accept_ambiguous))
        walk.raw.update(behind)
    if request.known:  # keys of subjects resolved by an earlier plan: not bounded again
        carried = SubjectState("(carried from an earlier plan)", bounded=False)
        for domain, hashes in request.known.items():
            if domain == TEXT_DOMAIN:
                carried.text_hashes |= hashes
            elif domain in set(graph.domains.values()):
                carried.add(domain, set(hashes), "the earlier plan or the erasure ledger")
        walk.subjects.append(carried)
    records = sorted(graph.datasets.values(), key=lambda d: (d.name, d.location))
    pool = SourcePool(frozenset({catalog.path}), config.engine_of())
    try:
        # A subject that drops a shared value starts again without it: nothing it reached
        # through that value stays (optout/engine/resolution.py, rule 4).
        for _ in range(MAX_RESTARTS):
            if not _rounds(walk, records, pool, config, accept_ambiguous):
                break
            walk.subjects = [s.restarted() for s in walk.subjects]
            walk.results, walk.asked = {}, {}
        for record in records:
            if record.id in walk.results:
                check_shared(graph, record, walk.asked[record.id], walk.results[record.id],
                             [s for s in walk.subjects if s.bounded], accept_ambiguous)
        _final_rows(walk, records, pool)
        walk.dangling = dangling(graph, records, walk.rows, walk.queries, pool, hasher)
    finally:
        pool.close()
    plan = _assemble(catalog, request, config, walk, records, exempt_notes, now,
                     accept_ambiguous)
    return record_plan(catalog, plan)  # approve and apply trust this record, not a file


def _rounds(walk: _Walk, records: list[DatasetRecord], pool: SourcePool, config: Config,
            accept_ambiguous: bool) -> bool:
    """Match and learn until a round learns nothing new; True when a subject dropped a
    shared value (the walk must start again without it)."""
    signatures: dict[str, tuple] = {}
    dropped = False
    for n in range(MAX_ROUNDS):
        with task(f"planning, round {n + 1}", len(records)) as advance:
            grew, dropped = _round(walk, records, pool, signatures, accept_ambiguous, advance)
        for s in walk.subjects:
            check_bound(walk.graph, s, config.identity, accept_ambiguous)
        if not grew or dropped:
            break
    return dropped


def _round(walk: _Walk, records: list[DatasetRecord], pool: SourcePool,
           signatures: dict[str, tuple], accept_ambiguous: bool,
           advance: Callable[..., None]) -> tuple[bool, bool]:
    """One round over the datasets: (something was learned, a shared value was dropped)."""
    grew = dropped = False
    for record in records:
        advance(f"planning: {record.name}")
        if record.id in walk.failures:
            continue
        query = walk.query_for(record)
        if not query.keys and not query.texts:
            continue
        signature = (tuple((k.column, len(k.hashes)) for k in query.keys),
                     len(query.text_hashes) if query.texts else 0,
                     sum(1 for s in walk.subjects if s.active))
        if signatures.get(record.id) == signature:
            continue
        signatures[record.id] = signature
        try:
            result = pool.match(record, query, walk.hasher)
        except ScannerError as exc:
            walk.failures[record.id] = str(exc)
            continue
        if result.truncated:
            walk.failures[record.id] = (
                f"matched more than {query.limit} distinct rows: too many to tell whose "
                "they are")
            continue
        walk.results[record.id] = result
        walk.asked[record.id] = query
        walk.learn_raw(result)
        learned, shared = attribute(walk.graph, record, query, result, walk.subjects,
                                    walk.name_hash, accept_ambiguous)
        grew |= learned
        dropped |= shared
    return grew, dropped


def _final_rows(walk: _Walk, records: list[DatasetRecord], pool: SourcePool) -> None:
    """What apply will change per dataset: the rows of the subjects still planned (and free-text
    mentions), matched again where the grouped rows cannot tell, and located (Parquet)."""
    with task("planning: the rows apply changes", len(records)) as advance:
        for record in records:
            advance(f"locating rows: {record.name}")
            _final_rows_of(walk, record, pool)


def _final_rows_of(walk: _Walk, record: DatasetRecord, pool: SourcePool) -> None:
    """One dataset's rows that apply changes (see `_final_rows`)."""
    result = walk.results.get(record.id)
    if result is None or not result.rows:
        return
    query = walk.query_for(record, owning_only=True)
    walk.queries[record.id] = query
    if not query.keys and not query.texts:
        return
    index = {c: i for i, (c, _) in enumerate(walk.asked[record.id].collect)}
    owned = sum(g.rows for g in result.groups if any(
        g.hashes[index[k.column]] in k.hashes for k in query.keys))
    if owned == result.rows:
        walk.rows[record.id] = owned
    else:
        try:
            walk.rows[record.id] = pool.match(record, dataclasses.replace(
                query, collect=(), names=()), walk.hasher).rows
        except ScannerError as exc:
            walk.failures[record.id] = str(exc)
            return
    if walk.rows[record.id]:
        with contextlib.suppress(ScannerError):  # apply then finds the rows itself
            walk.locations[record.id] = pool.locate(record, query, walk.hasher)


def _seed(graph: IdentityGraph, subject: Subject, hashes: set[str], digest: str,
          accept: bool) -> SubjectState:
    """A subject as the request names it (`hashes`: the keyed hashes of its normalized forms)."""
    state = SubjectState(digest)
    entity = SUBJECT_ENTITIES.get(subject.key)
    if entity:
        state.add(entity, hashes, "the request")
        state.seeds[entity] = hashes
        if subject.key in TEXT_KEYS:
            state.text_hashes |= hashes
            state.seed_text |= hashes
        return state
    domains = graph.domains_for_key(subject.key)
    if not domains:
        raise SubjectError(f"no person-key column named '{subject.key}' in the catalog "
                           "(see `optout graph`)")
    if len(domains) > 1:
        state.stop(f"ambiguous subject: '{subject.key}' names {len(domains)} key domains "
                   f"({'; '.join(domains)}); say which with a config link, or give an email",
                   accept)
    for domain in domains:
        state.add(domain, hashes, "the request")
        state.seeds[domain] = hashes
    return state


def _derivation(graph: IdentityGraph, record: DatasetRecord, holders: set[str]) -> str | None:
    kinds = {e["kind"] for e in graph.upstream(record.id) if e["upstream_id"] in holders}
    return next((k for k in DERIVATION_ORDER if k in kinds), None)


def _has_sql(graph: IdentityGraph, record: DatasetRecord) -> bool:
    return any(e["origin"] in ("sql", "view", "dbt") for e in graph.upstream(record.id))


def _columns(record: DatasetRecord, rule: Rule | None, action: str) -> tuple[tuple[str, str], ...]:
    """Column → action for column-level actions (and for what `retain` anonymizes)."""
    if rule is not None and action == "retain" and rule.anonymize:
        spec, act, per = rule.anonymize, rule.anonymize.action, {}
    elif action in COLUMN_ACTIONS:
        spec, act, per = rule, action, (rule.per_entity if rule else {})
    else:
        return ()
    out = []
    for c in record.columns:
        if not c.pii:
            continue
        if action == "redact" or act == "redact":
            if c.free_text:
                out.append((c.name, "redact"))
            continue
        if c.free_text:
            out.append((c.name, "redact"))
            continue
        if spec is not None and spec.entities and c.entity not in spec.entities:
            continue
        if spec is not None and spec.columns and c.name not in spec.columns:
            continue
        out.append((c.name, per.get(c.entity or "", act)))
    return tuple(out)


def _params(rule: Rule | None, action: str) -> tuple[tuple[str, object], ...]:
    if rule is None:
        return ()
    if action == "mask":
        return (("keep_last", rule.keep_last),)
    if action == "generalize":
        return (("band_width", rule.band_width), ("generalize_to", rule.generalize_to),
                ("prefix_length", rule.prefix_length))
    if action == "retain" and rule.anonymize and rule.anonymize.action == "mask":
        return (("keep_last", rule.anonymize.keep_last),)
    return ()


def _assemble(catalog: Catalog, request: PlanRequest, config: Config, walk: _Walk,
              records: list[DatasetRecord], exempt_notes: list[DatasetNote],
              now: dt.datetime | None, accept_ambiguous: bool) -> ErasurePlan:
    graph, policy = walk.graph, request.policy
    holders = {r.id for r in records if walk.rows.get(r.id, 0) > 0}
    # Derived datasets downstream of a holder hold the subject through their sources too.
    affected = set(holders)
    changed = True
    while changed:
        changed = False
        for r in records:
            if r.id not in affected and any(e["upstream_id"] in affected
                                            for e in graph.upstream(r.id)):
                affected.add(r.id)
                changed = True
    steps, searched, review, exempt = [], [], [], list(exempt_notes)
    for r in records:
        tags = set(config.datasets[r.name].tags) if r.name in config.datasets else set()
        pii = [c for c in r.columns if c.pii]
        if r.id in walk.failures:
            review.append(DatasetNote(r.id, r.name, r.location,
                                      f"could not be searched: {walk.failures[r.id]}"))
            continue
        if r.id not in affected:
            if r.id in walk.dangling:
                # why, the rows it leaves, and the foreign key that would follow them
                review.append(DatasetNote(r.id, r.name, r.location, *walk.dangling[r.id]))
            elif r.id in walk.results:
                searched.append(DatasetNote(r.id, r.name, r.location,
                                            "searched: no rows of the subject"))
            elif pii and (r.row_count == 0 or not any(c.non_null for c in pii)):
                searched.append(DatasetNote(r.id, r.name, r.location, EMPTY))
            elif reference_data(graph, r.id):
                searched.append(DatasetNote(r.id, r.name, r.location, REFERENCE_DATA))
            elif (agents := agents_of(graph, r.id, affected)):
                searched.append(DatasetNote(r.id, r.name, r.location, OTHER_PEOPLE.format(
                    agents=", ".join(agents[:3]))))
            elif pii:
                review.append(DatasetNote(r.id, r.name, r.location, _unreachable(graph, r, pii),
                                          proposals=tuple(graph.proposals(r.id))))
            continue
        hold = policy.exemption_for(r.name)
        if hold is not None:
            exempt.append(DatasetNote(r.id, r.name, r.location, f"legal hold: {hold.reason}"))
            continue
        steps.append(_step(graph, walk, policy, r, tags, holders, config.dbt))
    settled = settle(catalog, graph, steps, {n.dataset_id: n.reason for n in (*exempt, *review)
                                             if n.dataset_id})
    by_id = {r.id: r for r in records}
    steps = [_special(by_id[s.dataset_id], s) for s in settled.steps]
    review = review + settled.review
    review += [n for n in map(_kept_in_clear, steps) if n is not None]
    review += _subject_findings(walk)
    return ErasurePlan(
        request_id=request.request_id or uuid.uuid4().hex[:16],
        created_at=(now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        created_by=request.created_by,
        policy={"name": policy.name, "digest": policy.digest, "path": request.policy_path},
        catalog_state=catalog_state(records),
        steps=tuple(steps), searched=tuple(searched), review=tuple(review),
        exempt=tuple(exempt), approvals=policy.approvals,
        detail=SubjectDetail.from_columns(
            sorted([{"key": s.key, "hash": d} for s, d in zip(request.subjects, walk.digests,
                                                              strict=True)]
                   + list(request.digests), key=lambda s: (s["key"], s["hash"])),
            resolution_columns(walk.subjects)),
        unexecutable=tuple(settled.unexecutable), supersedes=request.supersedes,
        engine=config.engine, settings=plan_settings(config, accept_ambiguous)).sealed()


def _check_governed(catalog: Catalog, policy: Policy) -> None:
    """What an authenticated caller may plan under: a policy of the deployment's store (who
    may widen past the resolution bounds is the session's to say)."""
    if not is_current(catalog, policy):
        raise PolicyError(f"policy {policy.name}: not the policy store's current policy of "
                          "that name (an admin adds policies with `optout policy add FILE`)")


def reference_data(graph: IdentityGraph, ds: str) -> bool:
    """A lookup table: its own key is what declared foreign keys of other tables point at,
    many of their rows at one record (`addresstype`, `salesterritory`), and it holds no key
    of a person nor what only a person row holds."""
    own = graph.person_tables.get(ds) or graph.record_tables.get(ds)
    if own is None or holds_people(graph, ds) or any(
            c[0] == ds and c != own and f.entity == "PERSON_ID"
            for c, f in graph.columns.items()):
        return False
    pointing = [x.a for x in graph.links if x.kind == "foreign_key" and x.b == own]
    shared = [a for a in pointing if (b := graph.datasets[a[0]].column(a[1])) is not None
              and b.non_null > b.distinct]
    return bool(shared) and len(shared) == len(pointing)


def agents_of(graph: IdentityGraph, ds: str, holders: set[str]) -> list[str]:
    """The columns of the subject's rows that name the people of `ds` as agents (the
    clinician of a patient's encounter: `encounters:PROVIDER` → `providers:Id`), when every
    person key of `ds` is in such an agents' domain; none otherwise (a table the subject's
    keys do not reach is then for review)."""
    keys = [c for c, f in graph.columns.items() if c[0] == ds and f.entity == "PERSON_ID"]
    if not keys or not all(c in graph.domains for c in keys):
        return []
    named = {c: graph.domains.get(c) for c, role in graph.roles.items()
             if role == "agent" and c[0] in holders and c[0] != ds}
    if not all(graph.domains[k] in named.values() for k in keys):
        return []
    wanted = {graph.domains[k] for k in keys}
    return sorted(graph.name(c) for c, d in named.items() if d in wanted)


def _unreachable(graph: IdentityGraph, r: DatasetRecord, pii: list) -> str:
    """Why a dataset with PII is not in the plan, and the candidate link that would resolve it."""
    entities = ", ".join(sorted({c.entity or "?" for c in pii}))
    text = (f"not reachable: holds PII ({entities}) but no match key or lineage links it to "
            "the subject; needs review")
    candidates = [x for x in graph.links if x.status == "candidate" and r.id in (x.a[0], x.b[0])]
    for x in candidates[:2]:
        text += (f"; candidate link {graph.name(x.a)} ⊆ {graph.name(x.b)} ({x.evidence}): "
                 "accept it with `optout review PLAN --accept N` (an admin's)")
    vetoed = [c for c in graph.vetoed if c[0] == r.id]
    if vetoed and not candidates:
        text += "; not match keys: " + ", ".join(
            f"{c[1]} ({graph.vetoed[c]})" for c in vetoed[:3])
    return text


def _subject_findings(walk: _Walk) -> list[DatasetNote]:
    """A finding per stopped subject: what widened it, or what names it."""
    out = []
    for s in walk.subjects:
        if s.stopped is not None:
            verdict = "accepted by the caller, planned" if s.accepted else "nothing planned for it"
            out.append(DatasetNote("", "(subject)", s.label, f"{s.stopped}; {verdict}"))
    return out


def _step(graph: IdentityGraph, walk: _Walk, policy: Policy, r: DatasetRecord, tags: set[str],
          holders: set[str], dbt: DbtConfig) -> PlanStep:
    query = walk.queries.get(r.id)
    rows = walk.rows.get(r.id) or None
    derivation = _derivation(graph, r, holders)
    free_text_only = bool(query) and not query.keys
    entities = {c.entity for c in r.columns if c.pii and c.entity}
    via = []
    if query:
        for k in query.keys:
            domain = graph.domains[(r.id, k.column)]
            role = graph.roles.get((r.id, k.column))
            word = role_word(k.column) if role in ("owner", "agent") else None
            shown = f"{role}: {word}" if word else role  # the role that brought the rows in
            via.append(f"{k.column} ({shown}) in {domain}: {len(k.hashes)} keys")
        via += [f"{t} searched for the subject's email, phone and name" for t in query.texts]
    for e in graph.upstream(r.id):
        via.append(f"derived from {e['upstream']} ({e['kind']}, {e['origin']} lineage)")
    matching = _matching(query, r, walk.locations.get(r.id, ()))
    if r.kind == "view":
        return PlanStep(r.id, r.name, r.location, r.format, r.kind, "recompute",
                        "view: follows its base tables", rows, _match(query, graph, r),
                        (), tuple(via), **matching)
    pii = [c for c in r.columns if c.pii]
    rule = policy.rule_for(r.name, tags, entities, [c.name for c in r.columns], derivation,
                           free_text_only, frozenset(c.sensitivity for c in pii if c.sensitivity),
                           frozenset(c.category for c in pii if c.category))
    action = rule.action if rule else policy.default_action
    rule_name = rule.name if rule else "default"
    if action == "recompute" and not _has_sql(graph, r):
        action = "delete_rows" if rows else "recompute"
        rule_name += " (no SQL to rebuild from: rows deleted)" if rows else ""
    if rows is None and action not in ("recompute", "retain"):
        action, rule_name = "recompute", f"{rule_name} (derived: rebuilt from its sources)"
    params = _params(rule, action)
    if action == "recompute":
        params += _recompute_params(graph, r, dbt)
    return PlanStep(
        r.id, r.name, r.location, r.format, r.kind, action, rule_name, rows,
        _match(query, graph, r), _columns(r, rule, action), tuple(via),
        rule.legal_basis if rule and action == "retain" else None, params, **matching)


def _special(r: DatasetRecord, step: PlanStep) -> PlanStep:
    """The step with the dataset's special-category columns and what it does to each: an
    auditor sees at once when a rule keeps one in clear."""
    changed = dict(step.columns)
    out = []
    for c in r.columns:
        if not (c.pii and c.category):
            continue
        if step.action == "delete_rows":
            fate = "deleted with the row"
        elif step.action == "recompute":
            fate = "rebuilt without the subject"
        else:
            act = changed.get(c.name)
            fate = "kept" if act is None else ACTION_WORDS.get(act, act)
        out.append((c.name, c.category, fate))
    return dataclasses.replace(step, special=tuple(out))


def _kept_in_clear(step: PlanStep) -> DatasetNote | None:
    """A finding when the step keeps the subject's special-category data in clear."""
    kept = [f"{c} ({cat})" for c, cat, fate in step.special if fate == "kept"]
    if not kept:
        return None
    return DatasetNote(step.dataset_id, step.dataset, step.location,
                       f"{RETAINED_FINDING} by rule "
                       f"{step.rule}: {', '.join(kept)}; anonymize it in the rule (its "
                       f"columns or entities) or confirm the legal basis covers it")


def _matching(query: MatchQuery | None, r: DatasetRecord, located: Located) -> dict:
    """The step fields apply matches rows by (keyed hashes only, and where the rows are),
    and how to read the data."""
    out = {"options": tuple(sorted(r.options.items())), "fingerprint": r.fingerprint,
           "locations": tuple((p, f, RowNumbers.of(rows)) for p, f, rows in located)}
    if query is not None:
        out |= {"keys": tuple((k.column, k.kind, tuple(sorted(k.hashes))) for k in query.keys),
                "texts": query.texts,
                "text_hashes": tuple(sorted(query.text_hashes)) if query.texts else ()}
    return out


def _recompute_params(graph: IdentityGraph, r: DatasetRecord,
                      dbt: DbtConfig) -> tuple[tuple[str, object], ...]:
    """The SQL that rebuilds a derived dataset (its text, read now), and the datasets it
    reads."""
    edges = [e for e in graph.upstream(r.id) if e["origin"] in ("sql", "dbt")]
    if not edges:
        return ()
    upstream = tuple(sorted({e["upstream_id"] for e in edges}))
    records = list(graph.datasets.values())
    ref = edges[0]["origin_ref"]
    if edges[0]["origin"] == "dbt" and dbt.rebuild == "command":
        built = dbt_command_params(ref, dbt)
        if built:
            return (*built, ("upstream", upstream))
    rebuild = dbt_rebuild(ref, r, records) if edges[0]["origin"] == "dbt" else \
        rebuild_of(ref, r, records)
    return (*rebuild.params(ref), ("upstream", upstream))


def _match(query: MatchQuery | None, graph: IdentityGraph, r: DatasetRecord) -> tuple[str, ...]:
    if query is None:
        return ()
    out = [f"{k.column} ({graph.columns[(r.id, k.column)].entity}): keyed hash in "
           f"{graph.domains[(r.id, k.column)]}" for k in query.keys]
    out += [f"{t} (free text): mentions of the subject" for t in query.texts]
    return tuple(out)


def catalog_state(records: list[DatasetRecord]) -> str:
    """A hash of what the plan was made from: each dataset's id, fingerprint and scan time."""
    h = hashlib.sha256()
    for r in sorted(records, key=lambda r: r.id):
        h.update(f"{r.id}\x00{r.fingerprint}\x00{r.scanned_at}\x00{r.status}\n".encode())
    return h.hexdigest()


def values_by_domain(graph: IdentityGraph, plan: ErasurePlan) -> dict[str, set[str]]:
    """Domain → the keyed hashes of people a plan matches on (free-text hashes under
    TEXT_DOMAIN); record keys (`invoice_id`) are not people and are learned again from rows."""
    out: dict[str, set[str]] = {}
    for step in plan.steps:
        for column, _, hashes in step.keys:
            domain = graph.domains.get((step.dataset_id, column))
            if domain and not domain.startswith("record "):
                out.setdefault(domain, set()).update(hashes)
        if step.text_hashes:
            out.setdefault(TEXT_DOMAIN, set()).update(step.text_hashes)
    return out


def replan(catalog: Catalog, plan: ErasurePlan, policy: Policy, config: Config | None = None,
           caller: Principal | None = None, supersedes: str = "") -> tuple[ErasurePlan,
                                                                          list[str]]:
    """Plan again from an earlier plan (its keyed hashes, per domain, as they are now) and
    say what changed: datasets added or dropped, other row counts or actions. `supersedes`:
    the earlier plan's request started and stopped (blocked); the new plan is the remaining
    work, under a request id of its own (`ID.2`, `ID.3`, ...), and finishes that request."""
    known = values_by_domain(build_graph(catalog, config), plan)
    request_id = plan.request_id
    if supersedes:
        base = re.sub(r"\.\d+$", "", plan.request_id)
        taken = Journal(catalog).find
        request_id = next(f"{base}.{n}" for n in range(2, 10_000)
                          if taken(f"{base}.{n}") is None)
    request = PlanRequest([], policy, plan.policy.get("path", ""), request_id,
                          known={d: frozenset(h) for d, h in known.items()},
                          digests=plan.subjects,
                          created_by=caller.name if caller else plan.created_by,
                          supersedes=supersedes)
    new = build_plan(catalog, request, config, caller=caller)
    old_steps = {s.dataset_id: s for s in plan.steps}
    new_steps = {s.dataset_id: s for s in new.steps}
    diff = []
    for ds in sorted(old_steps.keys() | new_steps.keys(),
                     key=lambda d: (old_steps.get(d) or new_steps[d]).dataset):
        a, b = old_steps.get(ds), new_steps.get(ds)
        if a is None:
            diff.append(f"+ {b.dataset}: {b.action}, {b.rows} rows")
        elif b is None:
            diff.append(f"- {a.dataset}: no longer holds the subject")
        elif (a.rows, a.action) != (b.rows, b.action):
            diff.append(f"~ {a.dataset}: {a.action} {a.rows} rows → {b.action} {b.rows} rows")
    return new, diff
