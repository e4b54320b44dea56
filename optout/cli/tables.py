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
    """`optout catalog list`: one row per dataset (its location under its name), its PII
    columns one per line; special categories only when a dataset has any."""
    special = any(c.pii and c.category for d in records for c in d.columns)
    table = Table()
    for col in ("id", "dataset", "format", "rows", "PII columns",
                *(("special categories",) if special else ())):
        # a column's `name:ENTITY` stays whole; names and locations fold around it
        table.add_column(col, overflow="fold", no_wrap=col in ("PII columns", "format"))
    for d in records:
        pii = "\n".join(f"{c.name}:{c.entity}" for c in d.columns if c.pii)
        rows = "" if d.row_count is None else f"{d.row_count:,}"
        name = Text.assemble(_t(d.name), *((" ", ("(failed)", "red")) if d.status != "ok"
                                           else ()), "\n", _t(d.location, "dim"))
        cells = [d.id, name, _t(f"{d.format} {d.kind}"), rows, _t(pii or "-")]
        if special:
            cells.append(Text("\n".join(f"{c.name}:{c.category}" for c in d.columns
                                        if c.pii and c.category), style="bold red"))
        table.add_row(*cells)
    console.print(table)


def dataset_detail(console: Console, d: DatasetRecord) -> None:
    """`optout catalog show DATASET`: each column with its findings and their evidence, one
    block per column (readable at any width)."""
    console.print(Text.assemble(_t(d.name, "bold"), f"  id {d.id}  ",
                                _t(f"{d.format} {d.kind}  {d.location}")))
    rows = "unknown" if d.row_count is None else f"{d.row_count:,}"
    console.print(_t(f"rows {rows}; scanned {d.scanned_at}; status {d.status}"
                     + (f" ({d.error})" if d.error else "")))
    for c in d.columns:
        head = Text.assemble("\n", _t(c.name, "bold"), f"  {c.type}")
        if c.pii:
            head.append(f"  PII {c.entity} (score {c.score:.2f}"
                        + (", identifier" if c.identifier else "")
                        + (", free text" if c.free_text else "") + ")")
        if c.category:
            head.append(f"  {c.sensitivity}: {c.category}", style="bold red")
        elif c.sensitivity:
            head.append(f"  sensitivity {c.sensitivity}")
        console.print(head)
        entities = ", ".join(
            f"{e} {r:.2f}" for e, r in sorted(c.entities.items(), key=lambda kv: -kv[1]))
        fired = [k for k in ("name", "patterns", "ner") if c.signals.get(k)]
        for label, value in (("evidence", c.evidence), ("signals", ", ".join(fired)),
                             ("entities (hit rate)", entities),
                             ("examples (masked)", "; ".join(c.examples))):
            if value:
                console.print(Text.assemble(f"  {label}: ", _t(value)))


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
    hidden = 0
    for link in graph.links:
        if link.status != "accepted" and not show_all:
            hidden += 1
            continue
        links.add_row(_t(graph.name(link.a)), _t(graph.name(link.b)), link.kind, link.status,
                      _t(link.evidence))
    console.print(links)
    if hidden:
        console.print(f"{hidden} candidate or rejected links not shown (`optout graph --all` "
                      "shows them; `optout review PLAN` proposes the ones a plan needs)")
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
    console.print("Accept a candidate or add a link in the deployment's configuration "
                  "(identity.links, `optout config set`); reject one under identity.reject.")


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
