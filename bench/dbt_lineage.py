"""Lineage edges optout finds on the dbt test project against the manifest's own, per kind of
edge (what reads what), and how many carry a column map.

    python bench/dbt_lineage.py

Builds fixtures/dbt_shop with dbt-duckdb in a temporary folder, scans it, and compares.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from optout.scanner.catalog import Catalog  # noqa: E402
from optout.scanner.scan import scan  # noqa: E402


def kind_of(node: dict) -> str:
    return node["resource_type"] if node["resource_type"] != "model" else \
        node["config"]["materialized"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "shop"
        shutil.copytree(ROOT / "fixtures" / "dbt_shop", project,
                        ignore=shutil.ignore_patterns("target", "logs", "*.duckdb"))
        env = {**os.environ, "SHOP_DUCKDB": str(project / "shop.duckdb"),
               "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
        subprocess.run([str(Path(sys.executable).with_name("dbt")), "build", "--profiles-dir",
                        str(project)], cwd=project, env=env, check=True, capture_output=True)
        manifest = json.loads((project / "target" / "manifest.json").read_text())
        nodes = manifest["nodes"]
        expected: Counter[str] = Counter()
        for node in nodes.values():
            if node["resource_type"] not in ("model", "seed"):
                continue
            for up in node.get("depends_on", {}).get("nodes", []):
                expected[f"{kind_of(node)} <- {kind_of(nodes[up])}"] += 1
        catalog = Catalog(str(Path(tmp) / "catalog.duckdb"))
        report = scan([str(project)], catalog)
        by_name = {n["name"]: kind_of(n) for n in nodes.values()
                   if n["resource_type"] in ("model", "seed")}
        found: Counter[str] = Counter()
        columns: Counter[str] = Counter()
        for e in catalog.lineage():
            if e["origin"] != "dbt":
                continue
            up = catalog.find(e["upstream_id"])
            down = by_name.get(e["downstream"], "?")
            label = f"{down} <- {'seed CSV' if up.kind == 'file' else by_name.get(up.name, '?')}"
            found[label] += 1
            columns[label] += bool(e["columns"])
        print(f"{'edge kind':<28} {'manifest':>8} {'optout':>6} {'with column map':>15}")
        for label in sorted(set(expected) | set(found)):
            print(f"{label:<28} {expected.get(label, 0):>8} {found.get(label, 0):>6} "
                  f"{columns.get(label, 0):>15}")
        print(f"{'total':<28} {sum(expected.values()):>8} {sum(found.values()):>6} "
              f"{sum(columns.values()):>15}")
        print(f"lineage warnings: {len(report.lineage_errors)}")
        print("(the manifest's `table <- ephemeral` and `ephemeral <- view` edges are one "
              "`table <- view` edge for optout: an ephemeral model builds no relation)")


if __name__ == "__main__":
    main()
