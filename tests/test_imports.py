"""Every module of optout imports on its own in a fresh interpreter (no import works only
because another module happened to be imported first), and the import contract holds: the
layers, no cycles (`lint-imports`, configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def modules() -> list[str]:
    found = []
    for path in sorted((ROOT / "optout").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


@pytest.mark.slow
def test_every_module_imports_alone() -> None:
    def alone(module: str) -> tuple[str, str]:
        done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                              text=True, timeout=300, cwd=ROOT)
        return module, "" if done.returncode == 0 else done.stderr.strip().splitlines()[-1]

    names = modules()
    assert len(names) > 100
    with ThreadPoolExecutor(4) as pool:
        failed = {m: e for m, e in pool.map(alone, names) if e}
    assert failed == {}


def test_the_import_contract_holds() -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken." in done.stdout
