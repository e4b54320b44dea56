"""Who the subject is: how a plan learns a subject's keys from the rows it matches, and the
bound that stops a subject when the data would make it more than one person.

The rules (the roles they use are defined in `optout/engine/graph.py`):

1. **Seeds.** A subject starts from the identifier the request gives: an email, phone, ... in
   that entity's domain, or a person key (`customer_id=42`) in the one key domain of that
   name. A key name that names several domains (a `customer` table in two schemas) stops the
   subject: which people it means is not known.
2. **Whose row.** A matched row is the subject's when it matched through a column whose role
   is `own`, `attribute` or `owner`. A row matched only through an `agent` column
   (`customer.support_rep_id`, `orders.employee_id`) is somebody else's row naming the subject:
   it is never changed, and the subject is stopped with a finding naming the column and the
   rows, since erasing the subject would leave or break those references. So is a subject
   whose rows also hang off another person's records through a second record key (an order
   line of her order that is also a line of another person's product): whose row it is, is
   not known. Both checks run once the keys are resolved.
3. **What a row teaches.** Only an *entity row* teaches person keys: a row of a person table
   (one whose own key is a person key) matched through that own key or an attribute, whose
   matched value is in no other row of the table. It teaches that row's own key, its
   attributes (emails, phones) and its name (searched for in free text) — never its agent
   columns (other people) nor its references to other entities (`address_id`). Every row of
   the subject teaches its table's own *record* key (`invoice.invoice_id`), which reaches the
   rows hanging off it (`invoice_line`), and the records only her rows point at through a
   declared foreign key whose values are unique there (her card, her address), and nothing
   else. A row of a person's attribute table (`person.emailaddress`: no key of its own, one
   owner reference) matched by an attribute value no other row holds teaches that owner key.
   Free-text mentions are redacted where found and teach nothing.
4. **Shared values are not keys.** A value learned from the subject's row (her email, her
   phone) that other rows of a table of people also hold (a placeholder email test users
   share, a household phone) says nothing about who she is: it is dropped from the walk with a
   finding, and the walk starts again without it, so nothing it reached stays. Only a value
   the request itself gives stops the subject when it is ambiguous.
5. **The bound.** A subject is stopped as *ambiguous* when it resolves to more than
   `identity.max_keys` keys in one person domain (default 1), more than `max_emails` emails or
   `max_phones` phones (default 3), or when the value that matched a person table's row is in
   several of its rows. Nothing is planned for a stopped subject unless the caller accepts the
   widening (`optout plan --accept-ambiguous`), which the plan records.
6. **Subjects apart.** Each subject's keys are its own; one subject's rows never join another's
   through a shared row: a batch step matches the union of its resolved subjects' own keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from optout.engine.graph import IdentityGraph, record_parent
from optout.model.matching import MatchQuery, MatchResult
from optout.model.plan_detail import Resolutions, keys_json
from optout.scanner.catalog import DatasetRecord
from optout.scanner.config import IdentityConfig

#: roles through which a matched row is the subject's own
OWNING = ("own", "attribute", "owner")
#: bounds per entity domain (person-key domains use `max_keys`)
_BOUNDED = {"EMAIL_ADDRESS": "max_emails", "PHONE_NUMBER": "max_phones"}


@dataclass(slots=True)
class SubjectState:
    """One subject while planning: what it resolved to so far, and whether it stopped."""

    label: str  # the subject's keyed hash (or a name for keys carried from an earlier plan)
    known: dict[str, set[str]] = field(default_factory=dict)  # domain → keyed hashes
    seeds: dict[str, set[str]] = field(default_factory=dict)
    text_hashes: set[str] = field(default_factory=set)
    #: what it learned, as (how many, domain, up to 3 of them, from where): worded only when
    #: the plan is written (`learned_text`), not once per key while planning
    learned: list[tuple[int, str, tuple[str, ...], str]] = field(default_factory=list)
    stopped: str | None = None
    accepted: bool = False  # stopped, and the caller accepted the widening
    bounded: bool = True
    #: keyed hashes learned from the subject's rows that other people share: never keys
    dropped: set[str] = field(default_factory=set)
    drops: list[str] = field(default_factory=list)  # why each was dropped (findings)
    seed_text: set[str] = field(default_factory=set)  # the request's free-text hashes
    unchecked: bool = True  # keys were learned since `check_bound` last looked

    @property
    def active(self) -> bool:
        """Still matched (not stopped, or stopped and accepted)."""
        return self.stopped is None or self.accepted

    def stop(self, reason: str, accept: bool) -> None:
        """Stop the subject with a finding (the first reason is kept)."""
        if self.stopped is None:
            self.stopped, self.accepted = reason, accept

    def add(self, domain: str, hashes: set[str], why: str) -> bool:
        """Learn keys into a domain; True when something was new."""
        known = self.known.get(domain)
        if known is None:
            known = self.known[domain] = set()
        new = hashes - known
        if new and self.dropped:
            new -= self.dropped
        if new:
            self.unchecked = True
            self.known[domain] |= new
            self.learned.append((len(new), domain, tuple(sorted(new)[:3]) if len(new) > 1
                                 else tuple(new), why))
        return bool(new)

    def drop(self, domain: str, value: str, why: str) -> bool:
        """Drop a learned value other people share; True when it was not dropped before."""
        if value in self.dropped:
            return False
        self.dropped.add(value)
        self.known.get(domain, set()).discard(value)
        self.drops.append(f"dropped 1 value of {domain} [{value[:10]}]: {why}; not a key of "
                          "the subject")
        return True

    def restarted(self) -> SubjectState:
        """The subject as the request seeded it, keeping what it dropped."""
        known = {d: set(h) for d, h in (self.seeds if self.bounded else self.known).items()}
        return SubjectState(self.label, known, {d: set(h) for d, h in self.seeds.items()},
                            set(self.seed_text), [w for w in self.learned if w[3] == "the request"],
                            bounded=self.bounded, dropped=set(self.dropped),
                            drops=list(self.drops), seed_text=set(self.seed_text),
                            accepted=False)

    def key_counts(self) -> dict[str, int]:
        """Domain → how many distinct keys (a seed's several normalized forms count once)."""
        out = {}
        for domain, hashes in self.known.items():
            seeds = self.seeds.get(domain, set())
            out[domain] = len(hashes - seeds) + (1 if seeds else 0)
        return out


def resolution_columns(subjects: list[SubjectState]) -> Resolutions:
    """What each subject resolved to, as the plan's detail holds it (`SubjectResolution`:
    resolved, stopped, or stopped and accepted; keys per domain; what it learned, worded, then
    the values it dropped), built a column at a time."""
    statuses, keys, reasons, texts, offsets = [], [], [], [], [0]
    for s in subjects:
        statuses.append("resolved" if s.stopped is None else "accepted" if s.accepted
                        else "stopped")
        keys.append(keys_json(tuple(sorted(s.key_counts().items()))))
        reasons.append(s.stopped)
        texts += map(learned_text, s.learned)
        texts += s.drops
        offsets.append(len(texts))
    learned = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()),
                                       pa.array(texts, pa.string()))
    return Resolutions([s.label for s in subjects], statuses, keys, learned, reasons)


def learned_text(entry: tuple[int, str, tuple[str, ...], str]) -> str:
    """How a plan words what a subject learned: `2 in customer [ab12…, cd34…] from …`."""
    count, domain, some, why = entry
    shown = ", ".join(h[:10] for h in some) + (", …" if count > 3 else "")
    return f"{count} in {domain} [{shown}] from {why}"


def check_bound(graph: IdentityGraph, subject: SubjectState, bounds: IdentityConfig,
                accept: bool) -> None:
    """Stop a subject that resolved to more than the bound allows in any domain."""
    if not subject.bounded or not subject.unchecked:
        return  # only a key learned since the last check can pass a bound
    subject.unchecked = False
    for domain, count in subject.key_counts().items():
        limit = getattr(bounds, _BOUNDED[domain]) if domain in _BOUNDED else \
            bounds.max_keys if graph.is_person_domain(domain) else None
        if limit is not None and count > limit:
            sources = [learned_text(w) for w in subject.learned if w[1] == domain]
            subject.stop(f"ambiguous subject: resolved to {count} keys in {domain} "
                         f"(bound {limit}); {'; '.join(sources)}", accept)


def _role_columns(graph: IdentityGraph, record: DatasetRecord, index: dict[str, int],
                  roles: tuple[str, ...]) -> list[tuple[str, str]]:
    """(column, its domain) of the collected columns of those roles (once per dataset, not
    once per subject)."""
    return [(c, graph.domains[(record.id, c)]) for c in index
            if graph.roles.get((record.id, c)) in roles]


def _owned_groups(columns: list[tuple[str, str]], groups: dict[tuple[str, str], list[int]],
                  s: SubjectState) -> dict[int, list[str]]:
    """Group → the columns (of `_role_columns`) through which it matched the subject's keys."""
    out: dict[int, list[str]] = {}
    known = s.known
    for c, domain in columns:
        for h in known.get(domain, ()):
            for n in groups.get((c, h), ()):
                out.setdefault(n, []).append(c)
    return out


def _by_value(query: MatchQuery, result: MatchResult) -> tuple[dict[str, int],
                                                             dict[tuple[str, str], list[int]]]:
    """Collected column → its position, and (column, keyed hash) → the groups holding it
    (once per result: `check_shared` reads the result `attribute` read last)."""
    memo = result.__dict__.get("_by_value")
    if memo is not None and memo[0] is query:
        return memo[1]
    memo = (query, _index_values(query, result))
    result.__dict__["_by_value"] = memo
    return memo[1]


def _index_values(query: MatchQuery, result: MatchResult) -> tuple[
        dict[str, int], dict[tuple[str, str], list[int]]]:
    index = {c: i for i, (c, _) in enumerate(query.collect)}
    groups: dict[tuple[str, str], list[int]] = {}  # (column, hash) → groups holding it
    for n, g in enumerate(result.groups):
        for c, i in index.items():
            if g.hashes[i] is not None:
                groups.setdefault((c, g.hashes[i]), []).append(n)
    return index, groups


def check_shared(graph: IdentityGraph, record: DatasetRecord, query: MatchQuery,
                 result: MatchResult, subjects: list[SubjectState], accept: bool) -> None:
    """Once resolution is done: stop a subject whose key is named in other people's rows
    (rule 2), or whose rows also hang off another person's records through a second record
    key (`order_details` of her order and of another person's product)."""
    index, groups = _by_value(query, result)
    refs = [c for c in index if graph.roles.get((record.id, c)) == "owner"
            and not graph.is_person_domain(graph.domains[(record.id, c)])
            and record_parent(graph, (record.id, c)) in graph.person_owned]
    owning = _role_columns(graph, record, index, OWNING)
    agents = _role_columns(graph, record, index, ("agent",))
    for s in subjects:
        if not s.active:
            continue
        owned = _owned_groups(owning, groups, s)
        named = _owned_groups(agents, groups, s)
        for c in sorted({c for n, cs in named.items() if n not in owned for c in cs}):
            rows = sum(result.groups[n].rows for n, cs in named.items()
                       if n not in owned and c in cs)
            s.stop(f"referenced by other people's rows: {rows} rows of {record.name}:{c} "
                   "(never changed; erasing the subject would leave or break those "
                   "references)", accept)
        for c in refs:
            known = s.known.get(graph.domains[(record.id, c)], set())
            shared = sum(result.groups[n].rows for n in owned
                         if (h := result.groups[n].hashes[index[c]]) is not None
                         and h not in known)
            if shared:
                s.stop(f"ambiguous subject: {shared} rows of {record.name} are the subject's "
                       f"and also hang off other people's "
                       f"{graph.datasets[record_parent(graph, (record.id, c))].name} rows "
                       f"through {c}", accept)


def _satellite(graph: IdentityGraph, record: DatasetRecord, index: dict[str, int],
               groups: dict[tuple[str, str], list[int]], result: MatchResult,
               s: SubjectState, role: dict[str, str | None]) -> bool:
    """A row of a person's attribute table (`person.emailaddress`: an email and the person it
    belongs to) matched by an attribute value no other row holds teaches the one person key
    that owns the row. True when it taught something."""
    owners = [c for c in index if role[c] == "owner"
              and graph.is_person_domain(graph.domains[(record.id, c)])]
    if len(owners) != 1:
        return False
    grew = False
    for c in (c for c in index if role[c] == "attribute"):
        domain = graph.domains[(record.id, c)]
        for h in sorted(s.known.get(domain, set()) - s.dropped):
            holding = groups.get((c, h), [])
            if sum(result.groups[n].rows for n in holding) != 1:
                continue
            key = result.groups[holding[0]].hashes[index[owners[0]]]
            if key is not None:
                grew |= s.add(graph.domains[(record.id, owners[0])], {key},
                              f"the {record.name} row holding its {c} ({owners[0]})")
    return grew


def attribute(graph: IdentityGraph, record: DatasetRecord, query: MatchQuery,
              result: MatchResult, subjects: list[SubjectState],
              name_hash: Callable[[str], str], accept: bool) -> tuple[bool, bool]:
    """Give each matched row to the subjects it belongs to and learn from their rows by the
    rules above (`name_hash`: the keyed hash of a normalized name). (any subject learned
    something, any dropped a shared value)."""
    index, groups = _by_value(query, result)
    role = {c: graph.roles.get((record.id, c)) for c in index}
    own = graph.person_tables.get(record.id)
    record_key = graph.record_tables.get(record.id)
    grew = dropped = False
    owning = _role_columns(graph, record, index, OWNING)
    found = result.groups
    # what each subject may learn from its rows, worked out once per dataset: (position of the
    # column in a group, its domain, why)
    taught = [(index[c], graph.domains[(record.id, c)],
               f"its {record.name} rows ({c}: records no other row points at)")
              for c in index if (record.id, c) in graph.exclusive and role[c] == "owner"]
    if record_key is not None:
        taught.insert(0, (index[record_key[1]], graph.domains[record_key],
                          f"its {record.name} rows ({record_key[1]}, a record key)"))
    entity = [] if own is None else [(c, i, graph.domains[(record.id, c)])
                                     for c, i in index.items()
                                     if c == own[1] or role[c] == "attribute"]
    holding: dict[tuple[str, str], int] = {}  # (column, hash) → rows holding it
    for s in subjects:
        if not s.active:
            continue
        owned = _owned_groups(owning, groups, s)
        for i, domain, why in taught:
            grew |= s.add(domain, {found[n].hashes[i] for n in owned} - {None}, why)
        if own is None:
            grew |= _satellite(graph, record, index, groups, result, s, role)
            continue
        for n, by_columns in sorted(owned.items()):
            g = found[n]
            by = []
            for c in by_columns:
                if c != own[1] and role[c] != "attribute":
                    continue
                # every row holding the value matched (it is among the subjects' keys)
                h = g.hashes[index[c]]
                rows = holding.get((c, h))
                if rows is None:
                    rows = holding[(c, h)] = sum(found[m].rows for m in groups[(c, h)])
                if rows <= 1:
                    by.append(c)
                    continue
                domain = graph.domains[(record.id, c)]
                if h in s.seeds.get(domain, ()) or not s.bounded:
                    s.stop(f"ambiguous subject: {c} matches {rows} rows of {record.name}",
                           accept)
                else:
                    dropped |= s.drop(domain, h, f"{rows} rows of {record.name} hold it in {c} "
                                                 "(other people share it)")
            if not by or not s.active:
                continue
            why = f"the {record.name} row matched by {by[0]}"
            for c, i, domain in entity:
                if g.hashes[i] is not None:
                    grew |= s.add(domain, {g.hashes[i]}, f"{why} ({c})")
            for name in g.names:
                words = (name or "").split()
                h = name_hash(f"{words[0]} {words[-1]}") if len(words) >= 2 else None
                if h is not None and h not in s.text_hashes:
                    s.text_hashes.add(h)
                    grew = True
    return grew, dropped
