"""Terminal rendering of scan results and catalog entries (rich tables); no logic lives here.

Everything that comes from the data (dataset, column and file names, error texts, examples) is
shown as plain text: never read as rich markup (`e-mail[/x]` is a name, not a closing tag), and
with control characters shown as `\\x..` rather than sent to the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from optout.engine.graph import IdentityGraph
from optout.model.redaction import printable
from optout.scanner.catalog import DatasetRecord
from optout.scanner.scan import ScanReport


def _t(value: object, style: str = "") -> Text:
    """Data as text: no markup, no control characters."""
    return Text(printable(str(value)), style=style)


def scan_summary(console: Console, report: ScanReport) -> None:
    """The table printed at the end of `optout scan`."""
    table = Table(title=f"scan {report.run_id}", title_justify="left")
    for col in ("dataset", "kind", "rows", "status", "PII columns"):
        table.add_column(col, overflow="fold")
    for r in report.results:
        pii = ", ".join(
            f"{f.name} ({f.entity}{', free text' if f.free_text else ''})" for f in r.pii_columns
        )
        status = _t(r.status) if r.status != "failed" else Text.assemble(
            ("failed", "red"), ": ", _t(r.error))
        rows = "" if r.row_count is None else f"{r.row_count:,}"
        table.add_row(_t(r.ref.name), _t(f"{r.ref.format} {r.ref.kind}"), rows, status,
                      _t(pii or "-"))
    console.print(table)
    s = report.stats()
    console.print(
        f"{s['scanned']} scanned, {s['skipped']} unchanged (skipped), "
        f"{s['failed']} failed; {s['pii_columns']} PII columns; "
        f"{s['rows_sampled']:,} rows sampled in {report.seconds:.1f}s"
    )


def dataset_list(console: Console, records: list[DatasetRecord]) -> None:
    """`optout catalog list`."""
    table = Table()
    for col in ("id", "dataset", "format", "rows", "PII columns", "special categories",
                "location"):
        table.add_column(col, overflow="fold")
    for d in records:
        pii = ", ".join(f"{c.name}:{c.entity}" for c in d.columns if c.pii)
        special = Text(", ".join(f"{c.name}:{c.category}" for c in d.columns
                                 if c.pii and c.category), style="bold red")
        rows = "" if d.row_count is None else f"{d.row_count:,}"
        name = _t(d.name) if d.status == "ok" else Text.assemble(_t(d.name), " ",
                                                                   ("(failed)", "red"))
        table.add_row(d.id, name, _t(f"{d.format} {d.kind}"), rows, _t(pii or "-"),
                      special, _t(d.location))
    console.print(table)


def dataset_detail(console: Console, d: DatasetRecord) -> None:
    """`optout catalog show DATASET`: columns, findings and their evidence."""
    console.print(Text.assemble(_t(d.name, "bold"), f"  id {d.id}  ",
                                _t(f"{d.format} {d.kind}  {d.location}")))
    rows = "unknown" if d.row_count is None else f"{d.row_count:,}"
    console.print(_t(f"rows {rows}; scanned {d.scanned_at}; status {d.status}"
                     + (f" ({d.error})" if d.error else "")))
    table = Table()
    for col in (
        "column",
        "type",
        "PII",
        "entity",
        "score",
        "identifier",
        "sensitivity",
        "evidence",
        "free text",
        "entities (hit rate)",
        "signals",
        "examples (masked)",
    ):
        table.add_column(col, overflow="fold")
    for c in d.columns:
        entities = ", ".join(
            f"{e} {r:.2f}" for e, r in sorted(c.entities.items(), key=lambda kv: -kv[1])
        )
        fired = [k for k in ("name", "patterns", "ner") if c.signals.get(k)]
        table.add_row(
            _t(c.name),
            _t(c.type),
            "yes" if c.pii else "",
            c.entity or "",
            f"{c.score:.2f}" if c.pii else "",
            "yes" if c.identifier else "",
            Text(f"{c.sensitivity}: {c.category}", style="bold red") if c.category
            else (c.sensitivity or ""),
            _t(c.evidence or ""),
            "yes" if c.free_text else "",
            entities,
            ", ".join(fired),
            _t("; ".join(c.examples)),
        )
    console.print(table)


def identity_graph(console: Console, graph: IdentityGraph, show_all: bool = False) -> None:
    """`optout graph`: domains with their columns (and each column's role), then links with
    their evidence, then the identifier columns that are not match keys and why."""
    domains: dict[str, list[str]] = {}
    for column, domain in sorted(graph.domains.items()):
        role = graph.roles.get(column)
        domains.setdefault(domain, []).append(
            graph.name(column) + (f" ({role})" if role else ""))
    table = Table(title="identifier domains", title_justify="left")
    table.add_column("domain")
    table.add_column("columns", overflow="fold")
    for domain, columns in sorted(domains.items()):
        table.add_row(_t(domain), _t(", ".join(columns)))
    console.print(table)
    links = Table(title="links", title_justify="left")
    for col in ("from", "to", "kind", "status", "evidence"):
        links.add_column(col, overflow="fold")
    for link in graph.links:
        if link.status == "rejected" and not show_all:
            continue
        links.add_row(_t(graph.name(link.a)), _t(graph.name(link.b)), link.kind, link.status,
                      _t(link.evidence))
    console.print(links)
    if graph.vetoed:
        vetoed = Table(title="not match keys (PII, never used to find a subject)",
                       title_justify="left")
        vetoed.add_column("column")
        vetoed.add_column("why", overflow="fold")
        for column, why in sorted(graph.vetoed.items()):
            vetoed.add_row(_t(graph.name(column)), _t(why))
        console.print(vetoed)
    console.print("Roles: own (the table's key), attribute (its row's email, phone, ...), owner "
                  "(whose row it is), agent (another person named in the row: never learned).")
    console.print("Accept a candidate or add a link in the deployment's configuration (identity.links, `optout config set`); "
                  "reject one under identity.reject.")


def lineage(console: Console, record: DatasetRecord, edges: list[dict]) -> None:
    """`optout lineage show DATASET`."""
    console.print(Text.assemble(_t(record.name, "bold"), f"  id {record.id}  ",
                                _t(record.location)))
    for title, mine, other in (("upstream", "downstream_id", "upstream"),
                               ("downstream", "upstream_id", "downstream")):
        table = Table(title=title, title_justify="left")
        for col in ("dataset", "kind", "origin", "columns"):
            table.add_column(col, overflow="fold")
        for e in edges:
            if e[mine] == record.id:
                cols = "; ".join(f"{out} <- {', '.join(spec['from']) or '*'} ({spec['kind']})"
                                 for out, spec in sorted(e["columns"].items()))
                table.add_row(_t(e[other]), e["kind"],
                              _t(f"{e['origin']} {e['origin_ref'] or ''}"), _t(cols))
        console.print(table)
