"""Plain data the scanner passes around: datasets, samples and column findings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


@dataclass(frozen=True)
class DatasetRef:
    """One dataset a source can sample: a file, a folder of part files, a table or a view."""

    source_kind: str
    location: str
    name: str
    kind: str  # file | folder | table | view
    format: str  # parquet | csv | json | log | duckdb | sqlite | postgresql
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def id(self) -> str:
        """Stable id: the same dataset gets the same id on every scan."""
        digest = hashlib.sha256(f"{self.location}\x00{self.name}".encode()).hexdigest()
        return digest[:12]

    def option(self, key: str, default: Any = None) -> Any:
        """One reader option recorded when the dataset was listed (e.g. a CSV delimiter)."""
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class ForeignKey:
    """A declared foreign key: `columns` of a dataset reference `ref_columns` of `ref_table`
    (a dataset name in the same source)."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass
class Sample:
    """A bounded, seeded sample of one dataset, as Arrow, plus what the source knows of it."""

    table: pa.Table
    row_count: int
    row_count_exact: bool = True
    declared_types: dict[str, str] = field(default_factory=dict)
    #: columns the source knows to be free text whatever their values look like (log lines)
    free_text: frozenset[str] = frozenset()

    def column_types(self) -> dict[str, str]:
        """Column name → type, as declared by the source when it says, else the Arrow type."""
        return {
            name: self.declared_types.get(name, str(self.table.schema.field(name).type))
            for name in self.table.column_names
        }


@dataclass
class ColumnFinding:
    """What the classifier concluded about one column, with the evidence behind it."""

    name: str
    type: str
    pii: bool = False
    entity: str | None = None
    score: float = 0.0
    identifier: bool = False
    free_text: bool = False
    entities: dict[str, float] = field(default_factory=dict)
    signals: dict[str, Any] = field(default_factory=dict)
    sample_size: int = 0
    non_null: int = 0
    distinct: int = 0
    examples: list[str] = field(default_factory=list)  # masked, never raw
    #: special_category (with `category`), financial, identifier, contact, other; None: no PII
    sensitivity: str | None = None
    category: str | None = None  # the GDPR Art. 9 category of a special-category column
    #: what decided the finding: values, name+values, name-only, table (context), reference
    evidence: str | None = None

    @property
    def unique(self) -> bool:
        """Every sampled value is distinct (and there are some): the shape of a key."""
        return 0 < self.non_null == self.distinct

    def as_export(self) -> dict[str, Any]:
        """The stable export shape other tools read (names never change, fields may be added)."""
        return {
            "name": self.name,
            "type": self.type,
            "pii": self.pii,
            "entity": self.entity,
            "score": round(self.score, 4),
            "identifier": self.identifier,
            "free_text": self.free_text,
            "entities": {k: round(v, 4) for k, v in sorted(self.entities.items())},
            "signals": self.signals,
            "sample_size": self.sample_size,
            "examples": self.examples,
            "sensitivity": self.sensitivity,
            "category": self.category,
            "evidence": self.evidence,
        }
