"""optout: find personal data across a data team's tables and files, and erase a person from
all of it on request. `Session` is the library's front door; `Catalog` the catalog file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optout.scanner.catalog import Catalog
    from optout.session import Session

__all__ = ["Catalog", "Session"]


def __getattr__(name: str) -> Any:
    # imported on first use: `optout --help` and commands that touch no data stay fast
    if name == "Session":
        from optout.session import Session

        return Session
    if name == "Catalog":
        from optout.scanner.catalog import Catalog

        return Catalog
    raise AttributeError(name)
