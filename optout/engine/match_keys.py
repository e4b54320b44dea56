"""What makes an identifier column a match key: values that support it (a validated pattern
in most sampled values, or key structure), never its name alone, and never a type that cannot
hold the entity. The identity graph (optout/engine/graph.py) asks this of every column."""

from __future__ import annotations

import re

from optout.model.dataset import ColumnFinding

#: column types that cannot hold an identifier, whatever the column's name says: floating
#: point, booleans, money, and decimals with a fractional part (`numeric(10,0)` may be a key)
VETO_TYPES = re.compile(r"float|double|real|bool|money|(?:decimal|numeric)\(\s*\d+\s*,\s*[1-9]",
                         re.I)
#: value evidence needed for a pattern entity to be a match key: share of sampled values
VALUE_EVIDENCE = 0.5
RECORD = "RECORD_KEY"  # the entity of record keys (not people)
SHAPELESS = "values are not key-shaped"  # a key column's veto that references can lift


def match_veto(finding: ColumnFinding, keyed: bool = False) -> str | None:
    """Why an identifier column cannot be a match key, or None when its values support it.

    `keyed`: the column takes part in a declared foreign key (key structure the database
    itself states)."""
    if finding.signals.get("declared") or finding.signals.get("lineage"):
        return None
    if VETO_TYPES.search(finding.type or ""):
        return f"type {finding.type} cannot hold {finding.entity}"
    if finding.entity in ("PERSON_ID", RECORD):
        profile = finding.signals.get("profile") or {}
        if keyed or max(profile.get("key", 0.0), profile.get("uuid", 0.0)) >= 0.9 or finding.unique:
            return None
        return SHAPELESS
    rate = (finding.entities or {}).get(finding.entity or "", 0.0)
    if finding.entity in (finding.signals.get("patterns") or []) and rate >= VALUE_EVIDENCE:
        return None
    return f"name only: {rate:.0%} of sampled values are {finding.entity}"
