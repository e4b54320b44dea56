"""The library's front door: a `Session` is one caller on one catalog. It authenticates the
caller, authorizes every operation by the role table, writes the audit log, and runs the
workflows (scan, plan, review, approve, apply, resume, report, and the deployment's
administration). The command line and the worker are thin adapters over it.

    from optout import Session

    session = Session.login("optout.duckdb", token)
    session.scan(["data/"])
    plan = session.plan(["email=ana@example.org"], policy="gdpr-erasure")

Its parts load on first use (`optout --help` needs only the operations' names).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from optout.session.operations import ROLE_OF, Operation, holds

if TYPE_CHECKING:
    from optout.session.admin import AuditCheck
    from optout.session.base import Call, failure
    from optout.session.data import Scanned
    from optout.session.erasure import Applied, BadProposal, NothingToPlan, Reviewed, numbered
    from optout.session.session import Session

#: name → the module of the session package that defines it
_PARTS = {"Session": "session", "AuditCheck": "admin", "Call": "base", "failure": "base",
          "Scanned": "data", "Applied": "erasure", "BadProposal": "erasure", "NothingToPlan": "erasure",
          "Reviewed": "erasure", "numbered": "erasure"}

__all__ = ["ROLE_OF", "Applied", "AuditCheck", "BadProposal", "Call", "NothingToPlan", "Operation",
           "Reviewed", "Scanned", "Session", "failure", "holds", "numbered"]


def __getattr__(name: str) -> Any:
    if name not in _PARTS:
        raise AttributeError(name)
    return getattr(importlib.import_module(f"optout.session.{_PARTS[name]}"), name)
