"""The identity graph: identifier columns, the links between them, and their key domains.

A *domain* is a set of columns whose values name the same people: every email column is one
domain, every phone column another; person keys (`customers.id`, `orders.customer_id`,
`tickets.customer.id`) form domains through links — declared foreign keys, lineage that copies
a key, key sketches of one contained in another (with compatible names), and links the project
declares. Values never cross domains: customer 42 is not employee 42.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine import EngineError
from scanner.catalog import Catalog, DatasetRecord
from scanner.classify.names import tokens
from scanner.config import Config
from scanner.identifiers import kind_of
from scanner.model import ColumnFinding

CONTAINMENT = 0.9  # share of a key's sampled values found in another key to infer a link
MIN_SKETCH = 5  # fewer distinct sampled values than this prove nothing
COVERAGE = 0.5  # below this share of a key's values in its sketch, values cannot be compared
_KEY_WORDS = {"id", "key", "no", "nr", "fk", "number", "num", "uuid"}
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

    def name(self, column: Column) -> str:
        """`dataset:column` for display."""
        return f"{self.datasets[column[0]].name}:{column[1]}"

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
        """Domains a subject identifier named `key` (`email`, `customer_id`, ...) looks in."""
        entity = SUBJECT_ENTITIES.get(key.lower())
        if entity:
            return [entity] if entity in self.domains.values() else []
        wanted = _stem(tokens(key))
        found = set()
        for (ds, col), finding in self.columns.items():
            if finding.entity != "PERSON_ID":
                continue
            own = _stem(tokens(col)) or _table_stem(self.datasets[ds].name)
            if own == wanted:
                found.add(self.domains[(ds, col)])
        return sorted(found)


#: subject identifier names that are an entity's, not a key column's
SUBJECT_ENTITIES = {"email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER", "ssn": "US_SSN",
                    "iban": "IBAN_CODE", "card": "CREDIT_CARD", "passport": "US_PASSPORT"}


def _stem(toks: list[str]) -> tuple[str, ...]:
    return tuple(t[:-1] if t.endswith("s") and len(t) > 3 else t
                 for t in toks if t not in _KEY_WORDS)


def _table_stem(dataset: str) -> tuple[str, ...]:
    return _stem(tokens(dataset.rsplit(".", 1)[-1]))[-1:]


def names_compatible(graph: IdentityGraph, a: Column, b: Column) -> bool:
    """`orders.customer_id` and `customers.id` may be one key; `employee_id` and `customers.id`
    may not, however well their values overlap."""
    sa = _stem(tokens(a[1])) or _table_stem(graph.datasets[a[0]].name)
    sb = _stem(tokens(b[1])) or _table_stem(graph.datasets[b[0]].name)
    return bool(sa) and sa == sb


def build_graph(catalog: Catalog, config: Config | None = None) -> IdentityGraph:
    """The identity graph of everything the catalog knows."""
    config = config or Config()
    records = {d.id: d for d in catalog.datasets() if d.status == "ok"}
    graph = IdentityGraph(records, {}, catalog.lineage())
    _effective_findings(graph)
    by_name = _names(records)
    _foreign_key_links(graph, catalog, by_name)
    _lineage_links(graph)
    _containment_links(graph, catalog)
    _declared_links(graph, config, by_name)
    _domains(graph)
    return graph


def _names(records: dict[str, DatasetRecord]) -> dict[str, list[DatasetRecord]]:
    out: dict[str, list[DatasetRecord]] = {}
    for d in records.values():
        out.setdefault(d.name, []).append(d)
    return out


def _effective_findings(graph: IdentityGraph) -> None:
    """Identifier columns, with PII flowing along lineage into derived columns."""
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
    graph.columns = {k: f for k, f in findings.items()
                     if f.pii and f.identifier and not f.free_text}


def _foreign_key_links(graph: IdentityGraph, catalog: Catalog,
                       by_name: dict[str, list[DatasetRecord]]) -> None:
    for ds, cols, ref_table, ref_cols in catalog.foreign_keys():
        if ds not in graph.datasets:
            continue
        here = graph.datasets[ds].location
        targets = [d for d in by_name.get(ref_table, []) if d.location == here]
        for target in targets[:1]:
            for a, b in zip(cols, ref_cols, strict=False):
                if (ds, a) in graph.columns or (target.id, b) in graph.columns:
                    graph.links.append(Link((ds, a), (target.id, b), "foreign_key",
                                            f"declared foreign key {ref_table}({b})"))


def _lineage_links(graph: IdentityGraph) -> None:
    for edge in graph.lineage:
        for out, spec in edge["columns"].items():
            if spec["kind"] != "copied" or len(spec["from"]) != 1:
                continue
            a, b = (edge["upstream_id"], spec["from"][0]), (edge["downstream_id"], out)
            if a in graph.columns and b in graph.columns:
                graph.links.append(Link(a, b, "lineage", f"copied by {edge['origin']} lineage"))


def _containment_links(graph: IdentityGraph, catalog: Catalog) -> None:
    """Links between person keys whose sampled values are contained in one another.

    A sketch covers only the sampled share of a large table's keys, so the containment
    expected when A ⊆ B is that share of B; the observed overlap is judged against it. When
    B's sketch covers too little of B to judge, keys with compatible names are linked on
    their names alone, and the evidence says so.
    """
    sketches = catalog.sketches()
    keys = [c for c, f in graph.columns.items()
            if f.entity == "PERSON_ID" and c in sketches and len(sketches[c][1]) >= MIN_SKETCH]
    for a in keys:
        for b in keys:
            if a[0] == b[0] or (a > b and sketches[a][1] == sketches[b][1]):
                continue
            ha, hb = sketches[a][1], sketches[b][1]
            rows_b = graph.datasets[b[0]].row_count or len(hb)
            covered = min(1.0, len(hb) / max(rows_b, 1))
            compatible = names_compatible(graph, a, b)
            if covered < COVERAGE:
                if compatible and len(ha) <= rows_b:
                    graph.links.append(Link(a, b, "name", (
                        f"names agree; sampled keys cover {covered:.1%} of {graph.name(b)}, "
                        "too few to compare values")))
                continue
            ratio = len(ha & hb) / len(ha) / covered
            if ratio < CONTAINMENT or (len(ha) > len(hb) and ratio < 1.0):
                continue
            evidence = (f"{min(ratio, 1.0):.0%} of {len(ha)} sampled values of {graph.name(a)} "
                        f"are in {graph.name(b)}")
            graph.links.append(Link(a, b, "containment", evidence,
                                    "accepted" if compatible else "candidate",
                                    round(min(ratio, 1.0), 4)))


def _column_ref(ref: str, by_name: dict[str, list[DatasetRecord]]) -> Column:
    name, column = ref.rsplit(":", 1)
    matches = by_name.get(name, [])
    if len(matches) != 1:
        what = "no dataset" if not matches else f"{len(matches)} datasets"
        raise EngineError(f"identity link '{ref}': {what} named '{name}' in the catalog")
    if column not in {c.name for c in matches[0].columns}:
        raise EngineError(f"identity link '{ref}': dataset '{name}' has no column '{column}'")
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


def _domains(graph: IdentityGraph) -> None:
    parent: dict[Column, Column] = {c: c for c in graph.columns}

    def find(c: Column) -> Column:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for link in graph.links:
        if link.status == "accepted" and link.a in parent and link.b in parent:
            ra, rb = find(link.a), find(link.b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[Column, list[Column]] = {}
    for c, f in graph.columns.items():
        if f.entity == "PERSON_ID":
            groups.setdefault(find(c), []).append(c)
        else:
            graph.domains[c] = f.entity or "UNKNOWN"
    for members in groups.values():
        # Named after a primary-key-like column (`id`) the others point at, so the domain reads
        # `key customers:id`.
        inbound = {m: sum(1 for x in graph.links if x.status == "accepted" and x.b == m)
                   for m in members}
        root = max(sorted(members), key=lambda m: (tokens(m[1]) == ["id"], inbound[m]))
        for m in members:
            graph.domains[m] = f"key {graph.name(root)}"


def kind_of_column(graph: IdentityGraph, column: Column) -> str:
    """The normalization kind of an identifier column."""
    return kind_of(graph.columns[column].entity)
