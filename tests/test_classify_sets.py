"""Classification quality on data nobody here tuned it on: the real worlds (Chinook, Northwind,
Pagila, labelled in tests/worlds/classify/ from their documented meaning) and the mixed
generated set (other locales, obscure names, wide and numeric tables, look-alikes, special
categories). The fixture company's floor is in test_classify.py. The same figures, with every
misclassified column: `.venv/bin/python bench/classify_quality.py`."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.sets import SETS, expand_partitions, findings_of, special_recall
from optout.scanner.catalog import Catalog
from optout.scanner.classify.column import Classifier
from optout.scanner.quality import score
from optout.scanner.scan import scan


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.world)
                                  for n in ("chinook", "northwind", "pagila")] + ["mixed"])
def test_quality_on_a_set_nobody_here_wrote(name: str, classifier: Classifier,
                                            tmp_path: Path) -> None:
    with SETS[name].sources(tmp_path) as (sources, truth):
        report = scan(sources, Catalog(str(tmp_path / "q.duckdb")), classifier=classifier)
    findings = findings_of(report)
    truth = expand_partitions(truth, findings)
    q = score(truth, findings)
    assert not q.missing, q.missing
    assert q.tp + q.fn >= 25  # a set with PII to find, not a vacuous pass
    assert q.f1 >= 0.95, q.errors()
    assert q.entity_accuracy >= 0.95, q.errors()
    # a finding made from a column's name alone never becomes a key to find people by
    assert not [(d, f.name) for d, fs in findings.items() for f in fs
                if f.evidence == "name-only" and f.identifier]
    # every PII finding says how sensitive it is
    assert all(f.sensitivity for fs in findings.values() for f in fs if f.pii)
    found, labelled = special_recall(truth, findings)
    # nothing flagged special that the truth does not call special (`A`/`B` codes, 0/1 flags)
    flagged = {(d, f.name) for d, fs in findings.items() for f in fs if f.category}
    special = {(d, c) for d, cols in truth.items() for c, label in cols.items()
               if label.get("special")}
    assert flagged <= special, flagged - special
    if name == "mixed":
        assert labelled >= 8 and found / labelled >= 0.95, (found, labelled)
