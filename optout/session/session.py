"""The session: data, erasure and administration operations of one caller on one catalog."""

from __future__ import annotations

from optout.session.admin import AdminOperations
from optout.session.data import DataOperations
from optout.session.erasure import ErasureOperations


class Session(DataOperations, ErasureOperations, AdminOperations):
    """One caller on one catalog: every operation authorized, audited, and run here."""
