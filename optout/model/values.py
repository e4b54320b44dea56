"""Column actions on single values: null, keyed hash, mask, generalize, redact.

A changed value keeps its column's type where it can: the keyed hash of an integer is an
integer derived from the HMAC, a generalized date stays a date.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from optout.model.identifiers import normalize
from optout.model.matching import redact
from optout.model.secret import KeyedHash

_DATE = re.compile(r"^(\d{4})-\d{2}-\d{2}")


def change(action: str, value: Any, kind: str, params: dict[str, Any], hasher: KeyedHash,
           text_hashes: frozenset[str] = frozenset(), bits: int = 64) -> Any:
    """The new value of one matched cell; `bits`: the width of an integer column (its keyed
    hash is reduced into the column's positive range, so an INT32 key stays an INT32)."""
    if value is None or action == "null":
        return None
    if action == "hash":
        digest = hasher(normalize(kind, value))
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return int(digest[:16], 16) % ((1 << (max(bits, 8) - 1)) - 1)
        if isinstance(value, str):
            return digest[:32]
        return None
    if action == "mask":
        if not isinstance(value, str):
            return None
        keep = int(params.get("keep_last", 4))
        return "*" * max(0, len(value) - keep) + (value[-keep:] if keep else "")
    if action == "generalize":
        return _generalize(value, params)
    if action == "redact":
        return redact(str(value), text_hashes, hasher)[0] if isinstance(value, str) else value
    raise ValueError(f"unknown column action '{action}'")


def _generalize(value: Any, params: dict[str, Any]) -> Any:
    to = params.get("generalize_to", "year")
    if isinstance(value, dt.datetime):
        return dt.datetime(value.year, 1, 1, tzinfo=value.tzinfo)
    if isinstance(value, dt.date):
        return dt.date(value.year, 1, 1)
    if isinstance(value, int | float) and not isinstance(value, bool):
        width = int(params.get("band_width", 10))
        return type(value)((value // width) * width)
    text = str(value)
    if to == "prefix":
        return text[: int(params.get("prefix_length", 3))]
    m = _DATE.match(text)
    return m.group(1) if m else text[: int(params.get("prefix_length", 3))]
