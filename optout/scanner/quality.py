"""Scoring a scan against a labelled truth file: column-level F1 for "is PII" and entity
accuracy. Used by the test suite's floors and by `bench/classify_quality.py`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from optout.model.dataset import ColumnFinding


@dataclass
class Quality:
    """Confusion counts and per-column outcomes."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    entity_right: int = 0
    rows: list[tuple[str, str, bool, object, bool, str | None]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        """Share of columns flagged PII that are PII."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """Share of PII columns that were flagged."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def entity_accuracy(self) -> float:
        """Share of true PII columns whose entity was named right."""
        return self.entity_right / (self.tp + self.fn) if self.tp + self.fn else 0.0

    def errors(self) -> list[str]:
        """One line per misclassified column."""
        out = []
        for ds, col, pii, entity, got_pii, got_entity in self.rows:
            wanted = entity if isinstance(entity, list) else [entity]
            if pii != got_pii or (pii and got_entity not in wanted):
                out.append(
                    f"{ds}.{col}: expected {'PII ' + str(entity) if pii else 'not PII'}, "
                    f"got {'PII ' + str(got_entity) if got_pii else 'not PII'}"
                )
        return out


def load_truth(path: Path) -> dict[str, dict[str, dict]]:
    """A truth file: the fixture's JSON (`{"pii": bool, "entity": ...}` per column) or a
    world's YAML (`column: ENTITY | no | [ENTITY, ...]`), as dataset → column → label."""
    if path.suffix == ".json":
        return json.loads(path.read_text())
    import yaml

    out: dict[str, dict[str, dict]] = {}
    for table, columns in yaml.safe_load(path.read_text()).items():
        out[table] = {str(c): _label(v) for c, v in columns.items()}
    return out


def _label(value: object) -> dict:
    """`ENTITY`, `no`, `[ENTITY, ...]`, or `{entity: ENTITY, special: CATEGORY}` (a GDPR
    Art. 9 special category)."""
    if isinstance(value, dict):
        return {"pii": True, "entity": value["entity"], "special": value.get("special")}
    return {"pii": value is not False and value != "no", "entity": value}


def score(truth: Path | dict, findings: dict[str, list[ColumnFinding]]) -> Quality:
    """Compare findings (dataset name → columns) with a truth file (or its loaded labels)."""
    truth = load_truth(truth) if isinstance(truth, Path) else truth
    q = Quality()
    for ds, columns in truth.items():
        got = {f.name: f for f in findings.get(ds, [])}
        for col, t in columns.items():
            f = got.get(col)
            if f is None:
                q.missing.append(f"{ds}.{col}")
                got_pii, got_entity = False, None
            else:
                got_pii, got_entity = f.pii, f.entity
            pii, entity = t["pii"], t["entity"]
            q.rows.append((ds, col, pii, entity, got_pii, got_entity))
            if pii and got_pii:
                q.tp += 1
                wanted = entity if isinstance(entity, list) else [entity]
                q.entity_right += got_entity in wanted
            elif pii:
                q.fn += 1
            elif got_pii:
                q.fp += 1
            else:
                q.tn += 1
    return q
