"""The identity graph: identifier columns, the links between them, and their key domains.

A *domain* is a set of columns whose values name the same people: every email column is one
domain, every phone column another; person keys (`customers.id`, `orders.customer_id`,
`tickets.customer.id`) form domains through links — declared foreign keys, lineage that copies
a key, key sketches of one contained in another (with compatible names), and links the project
declares. Values never cross domains: customer 42 is not employee 42.

A column is a *match key* only when its values support it: a validated pattern in most sampled
values (email, phone, card, ...) or key structure (key-shaped values, or a declared foreign key).
A name alone never makes one, and a type that cannot hold the entity vetoes it (a DOUBLE named
`credit_card_amount` is not a card number). Vetoed columns stay PII to anonymize; they never say
who the subject is.

Each match key also has a *role* in its dataset, which the planner's resolution rules read:
`own` (the dataset's own key: `customer.customer_id`), `attribute` (an email or phone of the
row's own entity), `owner` (the one reference naming whose row it is: `invoice.customer_id`)
and `agent` (a reference to another person in someone's row: `customer.support_rep_id`,
`orders.employee_id`). *Record keys* (`invoice.invoice_id`, referenced by
`invoice_line.invoice_id`) are not people; they reach the rows that hang off a subject's rows.

Links inferred from values never cross namespaces (a database schema, a database file, the
plain files): there they are candidates a person accepts in `optout.yaml`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from optout.connectors import capabilities
from optout.engine import EngineError
from optout.engine.key_names import (
    ACTOR_WORDS,
    AGENT_WORDS,
    PEOPLE_WORDS,
    glued,
    role_word,
    stem,
    table_stem,
)
from optout.engine.match_keys import RECORD, SHAPELESS, VETO_TYPES, match_veto
from optout.model.dataset import ColumnFinding
from optout.model.identifiers import kind_of
from optout.scanner.catalog import Catalog, DatasetRecord
from optout.scanner.classify.names import tokens
from optout.scanner.config import Config

CONTAINMENT = 0.9  # share of a key's sampled values found in another key to infer a link
MIN_SKETCH = 5  # below this many distinct sampled values, only full containment links

COVERAGE = 0.5  # below this share of a key's values in its sketch, values cannot be compared
#: entities that make a table a table of people (what only a person row holds: a firm's row
#: has a phone and a contact's name too, a supplier is no person)
PERSON_ATTRIBUTES = frozenset({"EMAIL_ADDRESS", "US_SSN", "US_PASSPORT", "UK_NHS",
                               "US_DRIVER_LICENSE"})
#: entities copied through lineage (a derived column holds what its source holds)
FLOWING = ("copied", "transformed")

Column = tuple[str, str]  # (dataset id, column name)


@dataclass(frozen=True)
class Link:
    """Two identifier columns that hold the same people's values, and why we think so."""

    a: Column
    b: Column
    kind: str  # foreign_key | lineage | containment | declared
    evidence: str
    status: str = "accepted"  # accepted | candidate | rejected
    ratio: float | None = None


@dataclass
class IdentityGraph:
    """Datasets with their effective findings, lineage, links and domains."""

    datasets: dict[str, DatasetRecord]
    columns: dict[Column, ColumnFinding]  # identifier columns (effective findings)
    lineage: list[dict[str, Any]]
    links: list[Link] = field(default_factory=list)
    domains: dict[Column, str] = field(default_factory=dict)
    inherited: dict[Column, str] = field(default_factory=dict)  # column → upstream it came from
    #: identifier columns that are not match keys, and why (name only, wrong type, ...)
    vetoed: dict[Column, str] = field(default_factory=dict)
    roles: dict[Column, str] = field(default_factory=dict)  # own | attribute | owner | agent
    #: dataset id → its own key column, for datasets whose rows are people (`customer`)
    person_tables: dict[str, Column] = field(default_factory=dict)
    #: dataset id → its own record key, for datasets other rows reference (`invoice`)
    record_tables: dict[str, Column] = field(default_factory=dict)
    #: role columns (`requester_id`) → the one people table's key that holds their values
    role_targets: dict[Column, Column] = field(default_factory=dict)
    #: declared references from a subject's row to a record only that row points at
    #: (`personcreditcard.creditcardid`, `businessentityaddress.addressid`: the card, the
    #: address is the person's): learned as the subject's record keys
    exclusive: set[Column] = field(default_factory=set)
    #: datasets whose rows belong to someone: tables of people, and rows that hang off them
    #: (`invoice` through `customer_id`, `invoice_line` through `invoice_id`)
    person_owned: set[str] = field(default_factory=set)
    #: `domains_for_key` answers, per key name (a batch asks once per subject)
    _key_domains: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def name(self, column: Column) -> str:
        """`dataset:column` for display."""
        return f"{self.datasets[column[0]].name}:{column[1]}"

    def ref(self, column: Column) -> str:
        """How the configuration names a column: `dataset:column`, or `LOCATION#dataset:column`
        when several datasets have that name."""
        record = self.datasets[column[0]]
        same = [d for d in self.datasets.values() if d.name == record.name]
        return self.name(column) if len(same) == 1 else \
            f"{record.location}#{record.name}:{column[1]}"

    def proposals(self, dataset_id: str) -> list[dict[str, Any]]:
        """Candidate links touching a dataset, best first (names that agree, then the share
        of values contained): what a reviewer accepts to reach it."""
        found = [x for x in self.links if x.status == "candidate" and dataset_id in
                 (x.a[0], x.b[0])]
        found.sort(key=lambda x: (not refers(self, x.a, x.b), -(x.ratio or 0.0),
                                  self.name(x.a), self.name(x.b)))
        return [{"section": "links", "columns": [self.ref(x.a), self.ref(x.b)],
                 "evidence": f"{x.kind}: {x.evidence}"} for x in found]

    def is_person_domain(self, domain: str) -> bool:
        """True for domains of person keys (`key customer:customer_id`), not record keys."""
        return domain.startswith("key ")

    def domain_columns(self, domain: str) -> list[Column]:
        """Every column of a domain, sorted."""
        return sorted(c for c, d in self.domains.items() if d == domain)

    def upstream(self, dataset_id: str) -> list[dict[str, Any]]:
        """Lineage edges into a dataset."""
        return [e for e in self.lineage if e["downstream_id"] == dataset_id]

    def downstream(self, dataset_id: str) -> list[dict[str, Any]]:
        """Lineage edges out of a dataset."""
        return [e for e in self.lineage if e["upstream_id"] == dataset_id]

    def domains_for_key(self, key: str) -> list[str]:
        """Person-key domains a subject identifier named `key` looks in: an entity's
        (`email`), a `DATASET.COLUMN`'s, the columns of that name in any case (`patient_id`,
        `person_source_value`, `PATIENT`) and those whose name says the same row kind, else
        the own key of the tables of that row kind (`patient=`, `user=`)."""
        if key not in self._key_domains:
            self._key_domains[key] = self._domains_for_key(key)
        return list(self._key_domains[key])

    def _domains_for_key(self, key: str) -> list[str]:
        entity = SUBJECT_ENTITIES.get(key.lower())
        if entity:
            return [entity] if entity in self.domains.values() else []
        keys = {c: d for c, d in self.domains.items() if self.is_person_domain(d)}
        key = key.lower()
        table, _, column = key.rpartition(".")
        named = [d for c, d in keys.items() if table and self.datasets[c[0]].name.lower()
                 == table and c[1].lower() == column]
        wanted = stem(tokens(key))
        # every domain the name may mean (a `customer` table in two schemas: two domains)
        named = named or [d for c, d in keys.items() if c[1].lower() == key or (
            (c[0] not in self.person_tables or c == self.person_tables[c[0]])
            and wanted in column_stems(self, c))]
        named = named or [self.domains[c] for ds, c in self.person_tables.items()
                          if table_stem(self.datasets[ds].name) == wanted]
        # of several, the domains that hold a table of people (an export's orphan key column
        # is no second person; a `customers` table in a backup schema is)
        people = {d for d in named if any(self.domains.get(c) == d and holds_people(self, ds)
                                          for ds, c in self.person_tables.items())}
        return sorted(people if len(set(named)) > 1 and people else set(named))


#: subject identifier names that are an entity's, not a key column's
SUBJECT_ENTITIES = {"email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER", "ssn": "US_SSN",
                    "iban": "IBAN_CODE", "card": "CREDIT_CARD", "passport": "US_PASSPORT"}


def column_stems(graph: IdentityGraph, column: Column) -> set[tuple[str, ...]]:
    """What a key column's name says its values are: `patient_id`, `PATIENT`, `PATIENTID` →
    ("patient",); a bare `id` → its table's row kind."""
    toks = tokens(column[1])
    out = {s for s in (stem(toks), stem(glued(toks))) if s}
    # `manager_staff_id`, `parent_customer_id`: the last word says the row kind
    out |= {s[-1:] for s in list(out) if len(s) > 1}
    return out or {table_stem(graph.datasets[column[0]].name)}


def names_compatible(graph: IdentityGraph, a: Column, b: Column) -> bool:
    """`orders.customer_id` and `customers.id` may be one key (so may `encounters.PATIENT` and
    `patients.Id`); `employee_id` and `customers.id` may not, however well their values
    overlap."""
    sa, sb = column_stems(graph, a), column_stems(graph, b)
    if names_own(graph, b) or tokens(b[1]) == ["id"]:
        sb |= {table_stem(graph.datasets[b[0]].name)}
    return bool(sa & sb - {()})





def build_graph(catalog: Catalog, config: Config | None = None) -> IdentityGraph:
    """The identity graph of everything the catalog knows."""
    with catalog.held():  # a few short reads of the catalog, one connection
        return _graph(catalog, config or Config())


def _graph(catalog: Catalog, config: Config) -> IdentityGraph:
    records = {d.id: d for d in catalog.datasets() if d.status == "ok"}
    graph = IdentityGraph(records, {}, _spelled(records, catalog.lineage()))
    by_name = _names(records)
    what = "identity reference"  # foreign keys the data lost, declared in optout.yaml
    declared = [(_column_ref(a, by_name, what), _column_ref(b, by_name, what))
                for a, b in (r.columns for r in config.identity.references)]
    tested, unique = _declared_keys(graph, catalog)
    fks = _resolved_foreign_keys(graph, catalog, by_name) + declared + tested
    _effective_findings(graph, {c for pair in fks for c in pair} | unique)
    _foreign_key_links(graph, fks)
    _lineage_links(graph)
    sketches = catalog.sketches()
    referenced = _named_references(graph, sketches, unique)
    _containment_links(graph, sketches)
    _declared_links(graph, config, by_name)
    _domains(graph)
    _roles(graph, {b for _, b in fks} | unique | referenced)
    return graph


def _declared_keys(graph: IdentityGraph, catalog: Catalog
                   ) -> tuple[list[tuple[Column, Column]], set[Column]]:
    """What a project's dbt tests declare: foreign keys (`relationships`, across schemas and
    databases: declared, so authoritative) and the keys of tables (`unique` + `not_null`)."""
    fks, unique = [], set()
    for ds, column, ref_ds, ref_column, _ in catalog.declared_keys():
        if ds not in graph.datasets:
            continue
        if ref_ds is None:
            unique.add((ds, column))
        elif ref_ds in graph.datasets:
            fks.append(((ds, column), (ref_ds, ref_column)))
    return fks, unique


def _spelled(records: dict[str, DatasetRecord], lineage: list[dict[str, Any]]
             ) -> list[dict[str, Any]]:
    """Lineage with its column names as the datasets spell them (SQL folds `PATIENT` to
    `patient`; DuckDB and PostgreSQL compare unquoted names without case)."""
    def spell(ds: str, name: str) -> str:
        record = records.get(ds)
        return (record.column_named(name) if record is not None else None) or name

    return [{**e, "columns": {spell(e["downstream_id"], out): {
        **spec, "from": [spell(e["upstream_id"], c) for c in spec["from"]]}
        for out, spec in e["columns"].items()}} for e in lineage]


def _names(records: dict[str, DatasetRecord]) -> dict[str, list[DatasetRecord]]:
    out: dict[str, list[DatasetRecord]] = {}
    for d in records.values():
        out.setdefault(d.name, []).append(d)
    return out


def namespace(record: DatasetRecord) -> tuple[str, ...]:
    """Where a dataset's keys mean something: a database schema, a database file, or the
    plain files (files are one namespace: they have no schemas to keep apart)."""
    if capabilities(record.format).files:
        return ("files",)
    schema = record.options.get("schema") or (record.name.rsplit(".", 1)[0]
                                              if "." in record.name else "")
    return (record.location, str(schema))


def _resolved_foreign_keys(graph: IdentityGraph, catalog: Catalog,
                           by_name: dict[str, list[DatasetRecord]]) -> list[tuple[Column, Column]]:
    """Declared single-column foreign keys as (referencing column, referenced column)."""
    out = []
    for ds, cols, ref_table, ref_cols in catalog.foreign_keys():
        if ds not in graph.datasets:
            continue
        here = graph.datasets[ds].location
        targets = [d for d in by_name.get(ref_table, []) if d.location == here]
        if targets and len(cols) == 1 == len(ref_cols):
            out.append(((ds, cols[0]), (targets[0].id, ref_cols[0])))
    return out


def _effective_findings(graph: IdentityGraph, keyed: set[Column]) -> None:
    """Match keys, with PII flowing along lineage into derived columns."""
    findings = {(d.id, c.name): c for d in graph.datasets.values() for c in d.columns}
    changed = True
    while changed:
        changed = False
        for edge in graph.lineage:
            for out, spec in edge["columns"].items():
                target = (edge["downstream_id"], out)
                sources = [findings.get((edge["upstream_id"], c)) for c in spec["from"]]
                source = next((s for s in sources if s and s.pii and s.identifier), None)
                if (spec["kind"] in FLOWING and source and target in findings
                        and not findings[target].identifier):
                    f = findings[target]
                    findings[target] = ColumnFinding(
                        name=f.name, type=f.type, pii=True, entity=source.entity,
                        score=f.score, identifier=True, entities=f.entities,
                        signals={**f.signals, "lineage": graph.datasets[edge["upstream_id"]].name})
                    graph.inherited[target] = edge["upstream"]
                    changed = True
    for column, f in findings.items():
        if not (f.pii and f.identifier) or f.free_text:
            continue
        veto = match_veto(f, column in keyed)
        if veto:
            graph.vetoed[column] = veto
        else:
            graph.columns[column] = f


def _as_key(graph: IdentityGraph, column: Column, entity: str, why: str) -> bool:
    """Make a key column (not classified as an identifier) a match key of `entity`."""
    record = graph.datasets[column[0]]
    base = record.column(column[1])
    if base is None or column in graph.vetoed or VETO_TYPES.search(base.type or ""):
        return False
    graph.columns[column] = ColumnFinding(
        name=base.name, type=base.type, pii=entity != RECORD, entity=entity, score=1.0,
        identifier=True, signals={**base.signals, "keyed": why}, sample_size=base.sample_size,
        non_null=base.non_null, distinct=base.distinct)
    return True


def holds_people(graph: IdentityGraph, ds: str) -> bool:
    """A table whose rows are people: named so (`patients`, `users`), or holding what only a
    person row holds (an email, an SSN, a passport) and no key of another person."""
    record = graph.datasets[ds]
    if set(table_stem(record.name)) & PEOPLE_WORDS:
        return True
    found = {f.entity for c, f in graph.columns.items() if c[0] == ds}
    found |= {c.entity for c in record.columns if c.pii and not c.free_text}
    others = [c for c, f in graph.columns.items() if c[0] == ds and f.entity == "PERSON_ID"
              and not names_own(graph, c)]
    return bool(found & PERSON_ATTRIBUTES) and not others


def _foreign_key_links(graph: IdentityGraph, fks: list[tuple[Column, Column]]) -> None:
    """Declared foreign keys link key columns: a reference to a person key is that person's
    key (`customer.support_rep_id` → employee), and so is one to the key of a table with an
    email column (`rental.staff_id` → `staff`, whatever the classifier made of `staff_id`);
    one to any other key is a record key (`invoice_line.invoice_id` → `invoice.invoice_id`)."""
    with_people = {ds for ds in graph.datasets if holds_people(graph, ds)}
    for a, b in fks:
        fa, fb = graph.columns.get(a), graph.columns.get(b)
        people = [f for f in (fa, fb) if f is not None and f.entity == "PERSON_ID"]
        if b[0] in with_people and (fb is None or fb.entity == RECORD):
            people.append(ColumnFinding(name=b[1], type="", entity="PERSON_ID"))
        if fa is not None and fb is not None and not people and fa.entity != fb.entity:
            continue  # an email column referencing an email column: one domain already
        entity = "PERSON_ID" if people else RECORD
        why = f"declared foreign key {graph.name(a)} → {graph.name(b)}"
        for c in (a, b):  # a record key of a table of people is a person key
            if c in graph.columns and graph.columns[c].entity == RECORD and people:
                graph.columns[c] = dataclasses.replace(graph.columns[c], entity="PERSON_ID",
                                                       pii=True)
        ok = all((c in graph.columns and graph.columns[c].entity in ("PERSON_ID", RECORD))
                 or _as_key(graph, c, entity, why) for c in (a, b))
        if ok:
            graph.links.append(Link(a, b, "foreign_key",
                                    f"declared foreign key {graph.name(b)}"))


def _copies(graph: IdentityGraph) -> list[tuple[Column, Column, str]]:
    """(upstream column, downstream column, origin) of every column lineage copies as is."""
    return [((e["upstream_id"], spec["from"][0]), (e["downstream_id"], out), e["origin"])
            for e in graph.lineage for out, spec in sorted(e["columns"].items())
            if spec["kind"] == "copied" and len(spec["from"]) == 1]


def _lineage_links(graph: IdentityGraph) -> None:
    """Columns lineage copies hold the same values: one is a key when the other is (a seed's
    `Id` renamed `patient_id` by a staging view that a dbt test declares a key), and the two
    are linked, across schemas and databases (lineage is declared, not inferred)."""
    copies = _copies(graph)
    changed = True
    while changed:
        changed = False
        for a, b, origin in copies:
            fa, fb = graph.columns.get(a), graph.columns.get(b)
            key = next((f for f in (fa, fb) if f is not None and f.entity in ("PERSON_ID",
                                                                                RECORD)), None)
            missing = a if fa is None else b if fb is None else None
            if key is not None and missing is not None and missing not in graph.vetoed:
                changed |= _as_key(graph, missing, key.entity, f"copied by {origin} lineage")
    for a, b, origin in copies:
        if a in graph.columns and b in graph.columns:
            graph.links.append(Link(a, b, "lineage", f"copied by {origin} lineage"))


def _people_keys(graph: IdentityGraph, sketches: dict, unique: set[Column]) -> list[Column]:
    """The keys of tables of people: a column named as its table's key (or declared unique),
    with unique sampled values, in a table that holds people."""
    out = []
    for ds, record in sorted(graph.datasets.items(), key=lambda x: (x[1].name, x[1].location)):
        if not holds_people(graph, ds):
            continue
        keys = [(ds, c.name) for c in record.columns
                if (names_own(graph, (ds, c.name)) or (ds, c.name) in unique)
                and c.unique and (ds, c.name) in sketches
                and not VETO_TYPES.search(c.type or "")]
        if len(keys) == 1:
            out.append(keys[0])
    return out


def _contained(graph: IdentityGraph, sketches: dict, a: Column, b: Column) -> float:
    """The share of a's sampled values found in b's, when b's sketch holds all of b's sampled
    values and covers its table; else 0 (too little to judge)."""
    ha, hb = sketches[a][1], sketches[b][1]
    rows_b = graph.datasets[b[0]].row_count or len(hb)
    if not ha or len(hb) < COVERAGE * rows_b:
        return 0.0
    return len(ha & hb) / len(ha) / min(1.0, len(hb) / max(rows_b, 1))


def _named_references(graph: IdentityGraph, sketches: dict, unique: set[Column]) -> set[Column]:
    """Columns no classifier called a key that reference a table of people by name and value:
    `encounters.PATIENT` (UUIDs all in `patients.Id`), `tickets.requester_id` (a person's role,
    all in `users.id`). Both sides become person keys; the links follow from containment.
    Returns the people tables' keys so referenced."""
    people = _people_keys(graph, sketches, unique)
    linked = _components({c for x in graph.links for c in (x.a, x.b)}, graph.links)
    kinds = _row_kinds(graph)
    referenced = set()
    for a in sorted(sketches):
        # a reference's values need not look like keys (`ALFKI`): being another table's is
        # the key structure; a type that cannot hold a key still vetoes it
        if a[0] not in graph.datasets or a in people or (
                a in graph.vetoed and graph.vetoed[a] != SHAPELESS):
            continue
        role = role_reference(graph, a, kinds)
        if a in graph.columns and graph.columns[a].entity == "PERSON_ID" and not role:
            continue
        record = graph.datasets[a[0]]
        base = record.column(a[1])
        if base is None or base.free_text or (a in graph.columns and graph.columns[a].entity
                                              not in (RECORD, "PERSON_ID")):
            continue
        held = [b for b in people if b[0] != a[0]
                and (names_compatible(graph, a, b) or role)
                and _contained(graph, sketches, a, b) >= CONTAINMENT]
        named = _distinct(graph, [b for b in held if names_compatible(graph, a, b)], a, linked)
        held = _distinct(graph, held, a, linked)
        target = named if len(named) == 1 else held if len(held) == 1 else []
        if not target:
            continue
        b = target[0]
        if not named:
            graph.role_targets[a] = b
        why = f"its values are {graph.name(b)}'s, and its name says so"
        graph.vetoed.pop(a, None)
        if graph.columns.get(b) is None or graph.columns[b].entity != "PERSON_ID":
            if b in graph.columns:
                graph.columns[b] = dataclasses.replace(graph.columns[b], entity="PERSON_ID",
                                                       pii=True)
            elif not _as_key(graph, b, "PERSON_ID", "the key of a table of people"):
                continue
        if a in graph.columns:
            graph.columns[a] = dataclasses.replace(graph.columns[a], entity="PERSON_ID", pii=True)
        elif not _as_key(graph, a, "PERSON_ID", why):
            continue
        referenced.add(b)
    return referenced


def _distinct(graph: IdentityGraph, keys: list[Column], near: Column,
              linked: dict[Column, Column]) -> list[Column]:
    """One key per set of keys already linked (`linked`: a seed, its table and its staging
    view hold one key), preferring a key in `near`'s namespace."""
    here = namespace(graph.datasets[near[0]])
    out: dict[object, Column] = {}
    for b in sorted(keys, key=lambda b: (namespace(graph.datasets[b[0]]) != here,
                                         graph.datasets[b[0]].kind == "view", b)):
        out.setdefault(linked.get(b, b), b)
    return list(out.values())


def refers(graph: IdentityGraph, a: Column, b: Column) -> bool:
    """a's name says it holds b's keys: the same row kind, or a person's role (`assignee_id`,
    `requester_id`) pointing at the one table of people whose key holds all its values
    (found by `_named_references`), when the name names no table of its own."""
    return names_compatible(graph, a, b) or graph.role_targets.get(a) == b


def _row_kinds(graph: IdentityGraph) -> set[str]:
    """Every word that names what some table's rows are."""
    return {w for d in graph.datasets.values() for w in table_stem(d.name)}


def role_reference(graph: IdentityGraph, a: Column, kinds: set[str]) -> bool:
    """A column named for a person's role (`requester_id`, `assignee_id`) that names no row
    kind (`employee_id` names employees: a table of them, or a staff table's own key)."""
    word = role_word(a[1])
    if word is None or names_own(graph, a):
        return False
    if set(stem(glued(tokens(a[1])))) & kinds:
        return False
    base = graph.datasets[a[0]].column(a[1])
    unique = base is not None and base.unique
    return not (unique and word in PEOPLE_WORDS and holds_people(graph, a[0]))


def _containment_links(graph: IdentityGraph, sketches: dict) -> None:
    """Links between person keys whose sampled values are contained in one another.

    A sketch covers only the sampled share of a large table's keys, so the containment
    expected when A ⊆ B is that share of B; the observed overlap is judged against it. When
    B's sketch covers too little of B to judge, keys with compatible names are linked on
    their names alone, and the evidence says so. Below MIN_SKETCH values only full
    containment of every value seen in a fully sampled B links, as weaker evidence. Across
    namespaces an inferred link is only ever a candidate.
    """
    keys = sorted(c for c, f in graph.columns.items()
                  if f.entity == "PERSON_ID" and c in sketches and sketches[c][1])
    declared = {frozenset((x.a, x.b)) for x in graph.links}
    # a column whose foreign key is declared references what it declares, nothing else
    referencing = {x.a for x in graph.links if x.kind == "foreign_key"}
    for a in keys:
        for b in keys:
            if (a[0] == b[0] or (a > b and sketches[a][1] == sketches[b][1])
                    or frozenset((a, b)) in declared or a in referencing):
                continue
            ha, hb = sketches[a][1], sketches[b][1]
            if len(ha) < MIN_SKETCH and not names_compatible(graph, a, b):
                continue  # a role's few values prove nothing
            rows_b = graph.datasets[b[0]].row_count or len(hb)
            covered = min(1.0, len(hb) / max(rows_b, 1))
            compatible = refers(graph, a, b)
            same_space = namespace(graph.datasets[a[0]]) == namespace(graph.datasets[b[0]])
            status = "accepted" if compatible and same_space else "candidate"
            if len(ha) < MIN_SKETCH:
                if covered >= 1.0 and ha <= hb and len(hb) >= len(ha):
                    graph.links.append(Link(a, b, "containment", (
                        f"weak: all {len(ha)} values of {graph.name(a)} are in "
                        f"{graph.name(b)} (too few to prove more)"), status, 1.0))
                continue
            if covered < COVERAGE:
                if compatible and len(ha) <= rows_b:
                    graph.links.append(Link(a, b, "name", (
                        f"names agree; sampled keys cover {covered:.1%} of {graph.name(b)}, "
                        "too few to compare values"), "accepted" if same_space else "candidate"))
                continue
            ratio = len(ha & hb) / len(ha) / covered
            if ratio < CONTAINMENT or (len(ha) > len(hb) and ratio < 1.0):
                continue
            evidence = (f"{min(ratio, 1.0):.0%} of {len(ha)} sampled values of {graph.name(a)} "
                        f"are in {graph.name(b)}")
            if not same_space:
                evidence += " (another namespace)"
            graph.links.append(Link(a, b, "containment", evidence, status,
                                    round(min(ratio, 1.0), 4)))


def _column_ref(ref: str, by_name: dict[str, list[DatasetRecord]],
                what: str = "identity link") -> Column:
    """`dataset:column` or `LOCATION#NAME:column` → the column (`what`: the config entry, for
    its error)."""
    name, column = ref.rsplit(":", 1)
    if "#" in name:
        location, _, short = name.rpartition("#")
        matches = [d for d in by_name.get(short, []) if d.location == location]
    else:
        matches = by_name.get(name, [])
    if not matches:
        raise EngineError(f"{what} '{ref}': no dataset named '{name}' in the catalog")
    if len(matches) > 1:
        raise EngineError(f"{what} '{ref}': {len(matches)} datasets are named '{name}' ("
                          + ", ".join(sorted(f"{d.location}#{d.name}" for d in matches))
                          + "): name one as LOCATION#NAME:column")
    if column not in {c.name for c in matches[0].columns}:
        raise EngineError(f"{what} '{ref}': dataset '{name}' has no column '{column}'")
    return (matches[0].id, column)


def _declared_links(graph: IdentityGraph, config: Config,
                    by_name: dict[str, list[DatasetRecord]]) -> None:
    rejected = set()
    for link in config.identity.reject:
        a, b = (_column_ref(r, by_name) for r in link.columns)
        rejected |= {(a, b), (b, a)}
    graph.links = [
        Link(x.a, x.b, x.kind, x.evidence, "rejected", x.ratio) if (x.a, x.b) in rejected else x
        for x in graph.links]
    for link in config.identity.links:
        a, b = (_column_ref(r, by_name) for r in link.columns)
        for col in (a, b):
            if col not in graph.columns:  # the project says it is a person key
                record = graph.datasets[col[0]]
                base = next(c for c in record.columns if c.name == col[1])
                graph.columns[col] = ColumnFinding(
                    name=base.name, type=base.type, pii=True, entity="PERSON_ID", score=1.0,
                    identifier=True, signals={**base.signals, "declared": True})
        existing = [x for x in graph.links if {x.a, x.b} == {a, b}]
        for x in existing:
            graph.links.remove(x)
        graph.links.append(Link(a, b, "declared", "declared in the project config"))


def _components(columns: Any, links: list[Link]) -> dict[Column, Column]:
    """Column → the smallest column it is joined to by accepted links (among `columns`)."""
    parent: dict[Column, Column] = {c: c for c in columns}

    def find(c: Column) -> Column:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for link in links:
        if link.status == "accepted" and link.a in parent and link.b in parent:
            ra, rb = find(link.a), find(link.b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return {c: find(c) for c in parent}


def _domains(graph: IdentityGraph) -> None:
    root = _components(graph.columns, graph.links)
    groups: dict[Column, list[Column]] = {}
    for c, f in graph.columns.items():
        if f.entity in ("PERSON_ID", RECORD):
            groups.setdefault(root[c], []).append(c)
        else:
            graph.domains[c] = f.entity or "UNKNOWN"
    for members in groups.values():
        # Named after a primary-key-like column (`id`) the others point at, so the domain reads
        # `key customers:id`.
        inbound = {m: sum(1 for x in graph.links if x.status == "accepted" and x.b == m)
                   for m in members}
        root = max(sorted(members), key=lambda m: (
            graph.datasets[m[0]].kind != "view", tokens(m[1]) == ["id"], names_own(graph, m),
            inbound[m]))
        prefix = "key" if any(graph.columns[m].entity == "PERSON_ID" for m in members) \
            else "record"
        for m in members:
            graph.domains[m] = f"{prefix} {graph.name(root)}"


def names_own(graph: IdentityGraph, column: Column) -> bool:
    """`customers.id`, `customer.customer_id`: a column named as its own table's key."""
    toks = tokens(column[1])
    return toks == ["id"] or stem(toks) == table_stem(graph.datasets[column[0]].name)


def _roles(graph: IdentityGraph, referenced: set[Column]) -> None:
    """Each match key's role in its dataset (see the module docstring).

    Of a row's references to people, the one whose name says whose row it is owns it: a
    subject word (`requester_id`, `customer_id`, `PATIENT`) before an actor word (`author_id`,
    `created_by`); agent words (`assignee_id`, `support_rep_id`) never own. Two references of
    the same best rank leave it open: each is then only a reference. In a table of people, a
    key lineage copies from another people table's own key is the row's own identity
    (`person.person_source_value`), not another person."""
    by_dataset: dict[str, list[Column]] = {}
    for column in sorted(graph.columns):
        by_dataset.setdefault(column[0], []).append(column)
    for ds, columns in by_dataset.items():
        keys = [c for c in columns if graph.columns[c].entity in ("PERSON_ID", RECORD)]
        own = _own_key(graph, keys, referenced)
        if own is not None:
            graph.roles[own] = "own"
            table = graph.person_tables if graph.columns[own].entity == "PERSON_ID" \
                else graph.record_tables
            table[ds] = own
    copied_own = _copied_own_keys(graph)
    one_to_one = _identity_references(graph)
    graph.exclusive = _exclusive_references(graph)
    for ds, columns in by_dataset.items():
        own = graph.person_tables.get(ds) or graph.record_tables.get(ds)
        person_table = ds in graph.person_tables
        people: dict[int, list[Column]] = {}
        for c in columns:
            if c == own:
                continue
            f = graph.columns[c]
            word = role_word(c[1])
            agent = word in AGENT_WORDS
            if f.entity not in ("PERSON_ID", RECORD):
                graph.roles[c] = "agent" if agent else "attribute"
            elif person_table and (c in copied_own or c in one_to_one):
                graph.roles[c] = "attribute"  # the row's own identity under another key
            elif f.entity == RECORD:
                graph.roles[c] = "agent" if person_table else "owner"
            elif person_table or agent:
                graph.roles[c] = "agent"  # a person table's rows are its own people's
            else:
                people.setdefault(1 if word in ACTOR_WORDS else 0, []).append(c)
        best = people.get(min(people)) if people else []
        for rank in people.values():
            for c in rank:
                graph.roles[c] = "owner" if rank is best and len(best) == 1 else "agent"
    _person_owned(graph)


def _identity_references(graph: IdentityGraph) -> set[Column]:
    """Declared references to a people table's own key whose values are unique where they
    are (`sales.customer.personid`, `employee.businessentityid` → `person`): one row per
    person, the row's own identity in a table of another role (a reference to a firm, a
    shared manager or a support rep is not)."""
    out = set()
    for x in graph.links:
        if x.kind != "foreign_key" or x.b != graph.person_tables.get(x.b[0]):
            continue
        base = graph.datasets[x.a[0]].column(x.a[1])
        if (base is not None and base.unique
                and holds_people(graph, x.b[0])):
            out.add(x.a)
    return out


def _exclusive_references(graph: IdentityGraph) -> set[Column]:
    """Declared foreign keys to a record table whose values are unique where they are: each
    record is pointed at by one row only (a card, an address of one person)."""
    out = set()
    for x in graph.links:
        if x.kind != "foreign_key" or graph.columns.get(x.a) is None or \
                graph.columns[x.a].entity != RECORD or x.b != graph.record_tables.get(x.b[0]):
            continue
        base = graph.datasets[x.a[0]].column(x.a[1])
        if base is not None and base.unique:
            out.add(x.a)
    return out


def _copied_own_keys(graph: IdentityGraph) -> set[Column]:
    """Columns lineage copies from a people table's own key (`person_source_value` from
    `stg_patients.patient_id`)."""
    owns = set(graph.person_tables.values())
    return {b for a, b, _ in _copies(graph) if a in owns}


def _person_owned(graph: IdentityGraph) -> None:
    """Tables of people, tables with an owner reference to a person, and tables with an owner
    record reference to a table that is itself person-owned, to a fixed point."""
    parent = {graph.domains[col]: ds for ds, col in graph.record_tables.items()}
    people = {graph.domains[col] for col in graph.person_tables.values()}
    owned = set(graph.person_tables)
    changed = True
    while changed:
        changed = False
        for column, role in graph.roles.items():
            if role != "owner" or column[0] in owned:
                continue
            domain = graph.domains[column]
            if domain in people or parent.get(domain) in owned:
                owned.add(column[0])
                changed = True
    graph.person_owned = owned


def record_parent(graph: IdentityGraph, column: Column) -> str | None:
    """The dataset a record-key reference points at (`invoice_line.invoice_id` → invoice)."""
    domain = graph.domains.get(column)
    return next((ds for ds, col in graph.record_tables.items()
                 if graph.domains[col] == domain), None)


def _own_key(graph: IdentityGraph, keys: list[Column], referenced: set[Column]) -> Column | None:
    """The key of a dataset's own rows: the column a declared foreign key references, else one
    named as the table's key whose sampled values are unique."""
    pointed = [c for c in keys if c in referenced]
    if len(pointed) == 1:
        return pointed[0]
    named = [c for c in keys if names_own(graph, c)
             and graph.columns[c].unique]
    return named[0] if len(named) == 1 else None


def kind_of_column(graph: IdentityGraph, column: Column) -> str:
    """The normalization kind of an identifier column."""
    return kind_of(graph.columns[column].entity)
