"""`optout serve` on a database nobody here wrote: the shipped Chinook SQLite file, against
the truths tests/worlds/chinook_sqlite.yaml wrote from Chinook's documented meaning (a
customer's rows are their Customer row, their Invoices and those invoices' InvoiceLines).
A request submitted over HTTP, approved by a second person, applied: exactly those rows are
gone and every other row of every table is as it was; a subject the truths say is stopped
(an employee who is the support rep of other customers) ends `needs_review` with nothing
changed."""

from __future__ import annotations

from collections import Counter

import pytest
from test_server import Server
from world_db import Snapshot, copy_sqlite, truths

pytestmark = pytest.mark.world


def test_a_request_over_http_erases_exactly_the_truths_rows_in_chinook(tmp_path,
                                                                      classifier) -> None:
    truth = truths("chinook_sqlite")
    location = str(copy_sqlite(truth["load"], tmp_path))
    snapshot = Snapshot("sqlite", location)
    (tmp_path / "srv").mkdir()
    server = Server(tmp_path / "srv", classifier, location=location)
    try:
        case = next(c for c in truth["subjects"] if not c.get("stopped"))
        stopped = next(c for c in truth["subjects"] if c.get("stopped"))
        before = snapshot.tables()
        gone = {t: snapshot.selected(t, cond) for t, cond in case["rows"].items()}
        assert all(gone.values()), gone
        key, _, value = case["subject"].partition("=")
        rid = server.post("alice", "/v1/requests", json={
            "identifiers": {key: value}, "policy": "gdpr-erasure"}).json()["id"]
        assert server.wait_for(rid, ("awaiting_approval", "failed", "needs_review"))[
            "status"] == "awaiting_approval"
        assert server.post("bob", f"/v1/plans/{rid}/approve").status_code == 200
        assert server.wait_for(rid, ("applied", "failed"))["status"] == "applied"
        after = snapshot.tables()
        for table, rows in before.items():
            assert after[table] == rows - gone.get(table, Counter()), table
        assert sum(sum(g.values()) for g in gone.values()) > 1
        # the stopped subject: a person decides; nothing changes
        key, _, value = stopped["subject"].partition("=")
        other = server.post("alice", "/v1/requests", json={
            "identifiers": {key: value}, "policy": "gdpr-erasure"}).json()["id"]
        assert server.wait_for(other, ("needs_review", "awaiting_approval", "failed"))[
            "status"] == "needs_review"
        assert snapshot.tables() == after
    finally:
        server.stop()
