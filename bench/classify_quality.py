"""Classification quality on the fixture company: the confusion table, F1 and entity accuracy.

    python bench/classify_quality.py [--data fixtures/data]

Generates the fixtures when missing, scans them into a throwaway catalog, and prints every
misclassified column.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.generate import generate  # noqa: E402
from scanner.catalog import Catalog  # noqa: E402
from scanner.quality import score  # noqa: E402
from scanner.scan import scan  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT / "fixtures" / "data")
    args = parser.parse_args()
    if not (args.data / "truth.json").exists():
        generate(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        report = scan([str(args.data / "company")], Catalog(f"{tmp}/q.duckdb"))
    findings = {r.ref.name: r.findings for r in report.results}
    q = score(args.data / "truth.json", findings)
    print("                 predicted PII   predicted not PII")
    print(f"actually PII     {q.tp:>13}   {q.fn:>17}")
    print(f"actually not PII {q.fp:>13}   {q.tn:>17}")
    print(
        f"precision {q.precision:.3f}  recall {q.recall:.3f}  F1 {q.f1:.3f}  "
        f"entity accuracy {q.entity_accuracy:.3f} ({q.entity_right}/{q.tp + q.fn})"
    )
    for line in q.errors():
        print("  " + line)
    for col in q.missing:
        print(f"  missing from scan: {col}")


if __name__ == "__main__":
    main()
