"""The session: data, erasure and administration operations of one caller on one catalog
(erasure operations include the data ones: replanning scans again)."""

from __future__ import annotations

from optout.session.admin import AdminOperations
from optout.session.restore import RestoreOperations


class Session(RestoreOperations, AdminOperations):
    """One caller on one catalog: every operation authorized, audited, and run here."""
