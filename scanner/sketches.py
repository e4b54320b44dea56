"""Key sketches: keyed hashes of a key column's distinct sampled values.

They let the identity graph test whether `orders.customer_id` values are contained in
`customers.id` without the catalog ever holding a value: only truncated HMACs are stored.
"""

from __future__ import annotations

import pyarrow as pa

from scanner.catalog.secret import KeyedHash
from scanner.classify.names import tokens
from scanner.identifiers import kind_of, normalize
from scanner.model import ColumnFinding, Sample

SKETCH_SIZE = 2000
HASH_CHARS = 16  # 64 bits: collisions are negligible at sketch sizes


def is_key_column(finding: ColumnFinding) -> bool:
    """Identifiers, person keys, and columns named like keys (`id`, `*_id`, `*_key`)."""
    if finding.free_text:
        return False
    toks = tokens(finding.name)
    return finding.identifier or (bool(toks) and toks[-1] in {"id", "key", "uuid", "no", "nr"})


def key_sketches(sample: Sample, findings: list[ColumnFinding],
                 hasher: KeyedHash) -> dict[str, tuple[str, list[str]]]:
    """column → (normalization kind, sorted truncated keyed hashes of its distinct values)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for f in findings:
        if not is_key_column(f) or f.name not in sample.table.column_names:
            continue
        if pa.types.is_nested(sample.table.schema.field(f.name).type):
            continue  # a list or an object is no key
        kind = kind_of(f.entity)
        values = {v for v in sample.table.column(f.name).to_pylist() if v is not None}
        hashes = sorted({hasher(normalize(kind, v))[:HASH_CHARS] for v in values
                         if str(v).strip()})
        out[f.name] = (kind, hashes[:SKETCH_SIZE])
    return out
