"""Key sketches: keyed hashes of a key column's distinct sampled values.

They let the identity graph test whether `orders.customer_id` values are contained in
`customers.id` without the catalog ever holding a value: only truncated HMACs are stored.

Which values a sketch keeps when a column has more than SKETCH_SIZE is chosen by an unkeyed
hash of the value, never by the keyed one: two catalogs (two secrets) keep the same values,
so the links inferred from them, and the plans, are the same.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from optout.model.dataset import ColumnFinding, Sample
from optout.model.identifiers import kind_of, normalize
from optout.model.secret import KeyedHash
from optout.scanner.classify.names import tokens

SKETCH_SIZE = 2000
HASH_CHARS = 16  # 64 bits: collisions are negligible at sketch sizes


def is_key_column(finding: ColumnFinding) -> bool:
    """Identifiers, person keys, columns named like keys (`id`, `*_id`, `*_key`), and columns
    whose values are keys whatever their name (`PATIENT` holding UUIDs)."""
    if finding.free_text:
        return False
    toks = tokens(finding.name)
    profile = (finding.signals or {}).get("profile") or {}
    shaped = max(profile.get("uuid", 0.0), profile.get("key", 0.0)) >= 0.9
    return finding.identifier or shaped or (
        bool(toks) and (toks[-1] in {"id", "key", "uuid", "no", "nr"}
                        or toks[-1].endswith("id")))


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
        values = {normalize(kind, v) for v in sample.table.column(f.name).to_pylist()
                  if v is not None and str(v).strip()}
        kept = sorted(values, key=lambda v: hashlib.sha256(v.encode()).digest())[:SKETCH_SIZE]
        out[f.name] = (kind, sorted(hasher(v)[:HASH_CHARS] for v in kept))
    return out
