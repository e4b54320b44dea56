"""Classification quality per labelled set: precision, recall, F1, entity accuracy, special
categories found, scan time, and every misclassified column.

    python bench/classify_quality.py [--sets company,chinook,northwind,pagila,mixed] [--quiet]

Sets: `company` (the fixture company, fixtures/generate.py), `chinook`, `northwind`, `pagila`
(the real worlds of ../shared/worlds, loaded into throwaway PostgreSQL databases, labelled in
tests/worlds/classify/), `mixed` (fixtures/mixed.py: other locales, obscure names, wide and
numeric tables, look-alikes and special categories).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.sets import SETS, expand_partitions, findings_of, special_recall  # noqa: E402
from scanner.catalog import Catalog  # noqa: E402
from scanner.classify.column import Classifier  # noqa: E402
from scanner.quality import Quality, score  # noqa: E402


def run(name: str, classifier: Classifier) -> tuple[Quality, float, tuple[int, int]]:
    """Scan one set into a throwaway catalog; its quality, scan seconds, special categories
    (found, labelled)."""
    labelled = SETS[name]
    with tempfile.TemporaryDirectory() as tmp, labelled.sources(Path(tmp)) as (sources, truth):
        catalog = Catalog(f"{tmp}/q.duckdb")
        start = time.perf_counter()
        from scanner.scan import scan

        report = scan(sources, catalog, classifier=classifier)
        seconds = time.perf_counter() - start
        findings = findings_of(report)
        truth = expand_partitions(truth, findings)
        return score(truth, findings), seconds, special_recall(truth, findings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--quiet", action="store_true", help="no per-column errors")
    args = parser.parse_args()
    classifier = Classifier()
    rows = []
    for name in args.sets.split(","):
        q, seconds, (found, labelled) = run(name, classifier)
        rows.append((name, q, seconds, found, labelled))
        if not args.quiet:
            print(f"== {name}")
            for line in q.errors():
                print("  " + line)
            for col in q.missing:
                print(f"  missing from scan: {col}")
    print(f"{'set':<10} {'cols':>5} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7} "
          f"{'F1':>6} {'entity acc':>10} {'special':>8} {'scan s':>7}")
    for name, q, seconds, found, labelled in rows:
        special = f"{found}/{labelled}" if labelled else "-"
        print(f"{name:<10} {q.tp + q.fp + q.fn + q.tn:>5} {q.tp:>4} {q.fp:>4} {q.fn:>4} "
              f"{q.precision:>9.3f} {q.recall:>7.3f} {q.f1:>6.3f} {q.entity_accuracy:>10.3f} "
              f"{special:>8} {seconds:>7.1f}")


if __name__ == "__main__":
    main()
