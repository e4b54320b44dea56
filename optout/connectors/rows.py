"""Deciding, row by row, what a step does to a record read in Python (text file targets)."""

from __future__ import annotations

from typing import Any

from optout.model.matching import MatchQuery, PythonMatcher
from optout.model.secret import KeyedHash
from optout.model.values import change


class RowEditor:
    """Matches records against a step's keyed hashes and computes their new field values."""

    def __init__(self, query: MatchQuery, hasher: KeyedHash, deletes: bool,
                 actions: dict[str, str], kinds: dict[str, str], params: dict[str, Any]) -> None:
        self.matcher = PythonMatcher(query, hasher)
        self.query = query
        self.hasher = hasher
        self.deletes = deletes
        self.actions = actions
        self.kinds = kinds
        self.params = params

    def matches(self, record: dict[str, Any]) -> bool:
        """True when any key column's keyed hash or any free-text mention is the subject's."""
        for i, k in enumerate(self.query.keys):
            if self.matcher.member(i, record.get(k.column)):
                return True
        return any(self.matcher.text_hit(record.get(t)) for t in self.query.texts)

    def edit(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """None to delete; the changed fields otherwise (empty: unchanged)."""
        if self.deletes:
            return None
        return {column: change(action, record.get(column), self.kinds.get(column, "code"),
                               self.params, self.hasher, self.query.text_hashes)
                for column, action in self.actions.items() if column in record}


def get_path(record: dict[str, Any], dotted: str) -> Any:
    """A flattened column (`customer.id`) of a nested record."""
    if dotted in record:
        return record[dotted]
    node: Any = record
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def set_path(record: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a flattened column in a nested record."""
    if dotted in record or "." not in dotted:
        record[dotted] = value
        return
    node = record
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


class Flat(dict):
    """A nested record seen through flattened column names (for RowEditor)."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__()
        self.record = record

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        value = get_path(self.record, key)
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and get_path(self.record, key) is not None
