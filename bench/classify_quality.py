"""Classification quality per labelled set: precision, recall, F1, entity accuracy, special
categories found, scan time, and every misclassified column.

    python bench/classify_quality.py [--sets company,chinook,northwind,pagila,mixed] [--quiet]
    python bench/classify_quality.py --baseline cca0548 [--repeat 2]
    python bench/classify_quality.py --domains [--quiet] [--tuning-errors]
    python bench/classify_quality.py --domains --baseline 56b6e03

With `--baseline REF`, the same bench runs from a git worktree of REF and from this tree, each
in its own process, alternating, `--repeat` times; it prints both tables, then each set's best
scan seconds before and after and their ratio (machines are noisy: the ratio is what counts).

Sets: `company` (the fixture company, fixtures/generate.py), `chinook`, `northwind`, `pagila`
(the real worlds of ../shared/worlds, loaded into throwaway PostgreSQL databases, labelled in
tests/worlds/classify/), `mixed` (fixtures/mixed.py: other locales, obscure names, wide and
numeric tables, look-alikes and special categories), `desk` and `health` (the seed CSVs of the
support-desk and clinic dbt fixtures). `--domains` scores the same corpus per domain
(fixtures/domains.py), on its tuning and held-back parts; with `--baseline REF` it scores
REF's classifier on this tree's corpus (copied into REF's worktree) beside this tree's.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.domains import DOMAINS, domain_of, held_back  # noqa: E402
from fixtures.sets import SETS, expand_partitions, findings_of, special_recall  # noqa: E402
from optout.scanner.catalog import Catalog  # noqa: E402
from optout.scanner.classify.column import Classifier  # noqa: E402
from optout.scanner.quality import Quality, score  # noqa: E402


def scanned(name: str, classifier: Classifier) -> tuple[dict, dict, float]:
    """Scan one set into a throwaway catalog: its truth, findings and scan seconds."""
    labelled = SETS[name]
    with tempfile.TemporaryDirectory() as tmp, labelled.sources(Path(tmp)) as (sources, truth):
        catalog = Catalog(f"{tmp}/q.duckdb")
        start = time.perf_counter()
        from optout.scanner.scan import scan

        report = scan(sources, catalog, classifier=classifier)
        seconds = time.perf_counter() - start
        findings = findings_of(report)
        return expand_partitions(truth, findings), findings, seconds


def run(name: str, classifier: Classifier) -> tuple[Quality, float, tuple[int, int]]:
    """One set's quality, scan seconds, special categories (found, labelled)."""
    truth, findings, seconds = scanned(name, classifier)
    return score(truth, findings), seconds, special_recall(truth, findings)


def by_domain(sets: list[str], classifier: Classifier, quiet: bool,
              tuning_errors: bool = False) -> None:
    """Precision, recall and F1 per domain of the corpus, on the part thresholds may be
    fitted on and on the held-back part; special-category precision; the held-back errors."""
    groups: dict[tuple[str, str], list[Quality]] = {}
    special: dict[tuple[str, str], list[int]] = {}
    errors: list[str] = []
    for name in sets:
        truth, findings, _ = scanned(name, classifier)
        for dataset in truth:
            key = (domain_of(name, dataset), "held back" if held_back(name, dataset)
                   else "tuning")
            q = score({dataset: truth[dataset]}, findings)
            groups.setdefault(key, []).append(q)
            if key[1] == "held back" or tuning_errors:
                errors += [f"{key[1]}: {name}/{e}" for e in q.errors()]
            flagged = [f for f in findings.get(dataset, []) if getattr(f, "category", None)]
            right = sum(1 for f in flagged
                        if truth[dataset].get(f.name, {}).get("special") == f.category)
            counts = special.setdefault(key, [0, 0])
            counts[0] += right
            counts[1] += len(flagged)
    print(f"{'domain':<11} {'part':<10} {'cols':>5} {'tp':>4} {'fp':>4} {'fn':>4} "
          f"{'precision':>9} {'recall':>7} {'F1':>6} {'special P':>9}")
    for domain in DOMAINS:
        for part in ("tuning", "held back"):
            qs = groups.get((domain, part), [])
            q = Quality(tp=sum(x.tp for x in qs), fp=sum(x.fp for x in qs),
                        fn=sum(x.fn for x in qs), tn=sum(x.tn for x in qs))
            right, flagged = special.get((domain, part), [0, 0])
            sp = f"{right / flagged:.3f}" if flagged else "-"
            print(f"{domain:<11} {part:<10} {q.tp + q.fp + q.fn + q.tn:>5} {q.tp:>4} "
                  f"{q.fp:>4} {q.fn:>4} {q.precision:>9.3f} {q.recall:>7.3f} {q.f1:>6.3f} "
                  f"{sp:>9}")
    if not quiet:
        print("\nerrors (held back" + (", tuning" if tuning_errors else "") + "):")
        for line in errors:
            print("  " + line)


def _table(script: Path, sets: str) -> tuple[list[str], dict[str, float]]:
    """Run one tree's bench; its table lines and each set's scan seconds."""
    out = subprocess.run([sys.executable, str(script), "--quiet", "--sets", sets],
                         capture_output=True, text=True, check=True, cwd=script.parent.parent)
    lines = out.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("set "))
    table = lines[start:]
    return table, {line.split()[0]: float(line.split()[-1]) for line in table[1:]}


#: what a baseline tree is given of this one: the corpus, its truths and this bench, so
#: both sides are scored on the same labelled data and only the classifier differs
CORPUS = ("fixtures", "tests/worlds/classify", "bench/classify_quality.py")


def _baseline_tree(tmp: str, baseline: str) -> Path:
    """A git worktree of `baseline` with this tree's corpus (CORPUS) copied over."""
    tree = Path(tmp) / "baseline"
    if (ROOT.parent / "shared").is_dir():  # the worlds sit beside the repository
        (Path(tmp) / "shared").symlink_to(ROOT.parent / "shared")
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), baseline], cwd=ROOT,
                   check=True, capture_output=True)
    for part in CORPUS:
        source, target = ROOT / part, tree / part
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
    return tree


def _print_sides(baseline: str, tables: dict[str, list[str]]) -> None:
    for side in ("before", "after"):
        print(f"== {side} ({baseline if side == 'before' else 'this tree'})")
        print("\n".join(tables[side]))


def compare_domains(baseline: str, sets: str) -> None:
    """Per domain, before (`baseline`'s classifier) and after (this tree's), on this tree's
    corpus; the held-back F1 of each domain side by side."""
    tables: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tree = _baseline_tree(tmp, baseline)
        try:
            for side, root in (("before", tree), ("after", ROOT)):
                out = subprocess.run(
                    [sys.executable, str(root / "bench" / "classify_quality.py"), "--domains",
                     "--quiet", "--sets", sets], capture_output=True, text=True, check=True,
                    cwd=root)
                lines = out.stdout.splitlines()
                tables[side] = lines[next(i for i, line in enumerate(lines)
                                          if line.startswith("domain ")):]
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                           check=False, capture_output=True)
    _print_sides(baseline, tables)
    f1 = {side: {(line.split()[0], line.split()[1]): line.split()[-2]
                 for line in tables[side][1:] if "held" in line} for side in tables}
    print(f"\nheld-back F1 per domain\n{'domain':<11} {'before':>7} {'after':>7}")
    for (domain, _), after in f1["after"].items():
        print(f"{domain:<11} {f1['before'].get((domain, 'held'), '-'):>7} {after:>7}")


def compare(baseline: str, sets: str, repeat: int) -> None:
    """Before (a git worktree of `baseline`) and after (this tree), alternating."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = _baseline_tree(tmp, baseline)
        try:
            runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
            tables: dict[str, list[str]] = {}
            for _ in range(repeat):
                for side, root in (("before", tree), ("after", ROOT)):
                    tables[side], seconds = _table(root / "bench" / "classify_quality.py", sets)
                    runs[side].append(seconds)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                           check=False, capture_output=True)
    _print_sides(baseline, tables)
    print(f"\nscan seconds, best of {repeat} (alternating runs)")
    print(f"{'set':<10} {'before':>7} {'after':>7} {'ratio':>6}")
    for name in sets.split(","):
        before = min(r[name] for r in runs["before"])
        after = min(r[name] for r in runs["after"])
        print(f"{name:<10} {before:>7.1f} {after:>7.1f} {after / before:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--quiet", action="store_true", help="no per-column errors")
    parser.add_argument("--baseline", help="a git ref to compare with (before/after)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--tuning-errors", action="store_true",
                        help="with --domains: the tuning part's errors too")
    parser.add_argument("--domains", action="store_true",
                        help="per domain of the corpus, tuning and held-back parts")
    args = parser.parse_args()
    if args.baseline and args.domains:
        compare_domains(args.baseline, args.sets)
        return
    if args.baseline:
        compare(args.baseline, args.sets, args.repeat)
        return
    classifier = Classifier()
    if args.domains:
        by_domain(args.sets.split(","), classifier, args.quiet, args.tuning_errors)
        return
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
