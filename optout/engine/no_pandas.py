"""Commands keep pandas out of their process (it costs 0.2 s each and nothing uses it)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys


def without_pandas() -> None:
    """Keep pandas out of a command's process. pyarrow imports it (0.2 s, every command)
    the first time it builds an array from Python objects, only to ask whether they are
    pandas objects; nothing optout runs uses pandas, so importing it fails at once (a
    library that only looks for it, as polars does, still finds that it is installed)."""
    if "pandas" not in sys.modules and not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())


class _NoPandas(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds pandas, and refuses to load it."""

    def find_spec(self, name: str, path: object, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(name, self) if name == "pandas" else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        raise ImportError("pandas is not loaded by optout commands")

    def exec_module(self, module: object) -> None:  # never reached: create_module refuses
        raise ImportError("pandas is not loaded by optout commands")
