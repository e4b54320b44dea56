"""Rows elsewhere that point at the rows a plan erases by a key nothing declares.

Exported without its foreign keys, Chinook's `InvoiceLine` holds the `InvoiceId` of every
invoice it belongs to, and no identifier of a person: the plan erases a customer's `Invoice`
rows and, knowing no link, leaves their lines. Whether such rows are the subject's is for a
person to say (`identity.references` in optout.yaml declares the foreign key the data lost):
the plan names them for review, with how many rows hold the erased rows' keys. Found by value
— the keys of the rows the plan erases, matched in columns named after that key — never on a
name's word alone.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from optout.engine.graph import IdentityGraph, names_compatible, names_own
from optout.model.errors import ScannerError
from optout.model.matching import KeyMatch, MatchQuery
from optout.scanner.classify.names import tokens

if TYPE_CHECKING:
    from optout.engine.source_pool import SourcePool
    from optout.model.secret import KeyedHash
    from optout.scanner.catalog import DatasetRecord


def row_key(graph: IdentityGraph, record: DatasetRecord) -> str | None:
    """The column naming a dataset's own rows (`Invoice.InvoiceId`, `orders.id`): named as
    the table's key and unique in the sample; None when there is not exactly one."""
    named = [c.name for c in record.columns
             if "id" in tokens(c.name) and names_own(graph, (record.id, c.name))
             and not c.free_text and c.unique]
    return named[0] if len(named) == 1 else None


def _named_after(graph: IdentityGraph, record: DatasetRecord, key: str,
                 other: DatasetRecord) -> list[str]:
    """Columns of `other` named after `record`'s key: `invoice_id` for `Invoice.InvoiceId` or
    for `invoices.id`."""
    return [c.name for c in other.columns if "id" in tokens(c.name)
            and names_compatible(graph, (record.id, key), (other.id, c.name))]


def dangling(graph: IdentityGraph, records: list[DatasetRecord], rows: dict[str, int],
             queries: dict[str, MatchQuery], pool: SourcePool, hasher: KeyedHash
             ) -> dict[str, tuple[str, int | None, tuple[dict, ...]]]:
    """Dataset id → why it needs review and how many rows, for datasets the plan leaves whose rows hold the key
    of rows it erases, in a column no foreign key, lineage or link ties to that key."""
    planned = {d for d, n in rows.items() if n}
    linked = {e["downstream_id"] for d in planned for e in graph.downstream(d)} | {
        e["upstream_id"] for d in planned for e in graph.upstream(d)}  # rebuilt or a source
    out: dict[str, tuple[str, int | None, tuple[dict, ...]]] = {}
    for record in (r for r in records if r.id in planned):
        key = row_key(graph, record)
        if key is None or (record.id, key) in graph.domains:
            continue  # no key of its rows, or one the identity graph already follows
        others = [(o, c) for o in records
                  if o.id not in planned and o.id not in linked and o.id not in out
                  for c in _named_after(graph, record, key, o) if (o.id, c) not in graph.domains]
        if not others:
            continue
        try:
            mine = pool.match(record, dataclasses.replace(
                queries[record.id], collect=((key, "code"),), names=(), raw_collect=True),
                hasher)
            keys = KeyMatch("", "code",
                            frozenset(g.hashes[0] for g in mine.groups if g.hashes[0]),
                            frozenset(g.raw[0] for g in mine.groups if g.raw and g.raw[0]))
            for other, column in others:
                held = pool.match(other, MatchQuery((dataclasses.replace(keys, column=column),)),
                                  hasher).rows
                if held:
                    out[other.id] = (
                        f"{held} rows hold, in {column}, the {key} of {record.name} rows this "
                        "plan erases, and nothing declares the link (no foreign key, lineage "
                        "or identity link): they stay unless the foreign key is declared in "
                        f'optout.yaml (identity: references: [{{columns: ["{other.name}:{column}", '
                        f'"{record.name}:{key}"]}}]); needs review', held,
                        ({"section": "references",
                          "columns": [graph.ref((other.id, column)), graph.ref((record.id, key))],
                          "evidence": f"{held} rows hold the {key} of rows this plan erases; "
                                      "the names agree"},))
        except ScannerError as exc:
            for other, _ in others:
                out.setdefault(other.id, (f"could not be checked for rows pointing at erased "
                                          f"{record.name} rows: {exc}; needs review", None,
                                          ()))
    return out
