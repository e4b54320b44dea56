"""The legal clock of a request (issue 33), and the lifecycle rows behind the API's queue and
`optout requests metrics`. Truths are from the texts, written before the code ran: GDPR Art.
12(3) (one month, +2 with notice within the first), CCPA §1798.130(a)(2) (45 days, +45 once),
regulations §7021 (acknowledge within 10 business days) and §7026(f) (opt-out within 15
business days)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from optout.engine.lifecycle import extend_clock, metrics, queue, record_event, start_clock
from optout.model.legal_clock import ClockError, clock_for, extended
from optout.scanner.access.principals import add_principal, create_token, init_catalog
from optout.scanner.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent
D = dt.datetime


def test_gdpr_one_month_and_its_last_day() -> None:
    assert clock_for("gdpr", "erasure", D(2026, 3, 4, 9)).due == D(2026, 4, 4, 9)
    # 31 January: February has no 31st, so its last day (2028 is a leap year)
    assert clock_for("gdpr", "erasure", D(2027, 1, 31)).due == D(2027, 2, 28)
    assert clock_for("gdpr", "erasure", D(2028, 1, 31)).due == D(2028, 2, 29)
    assert clock_for("gdpr", "erasure", D(2026, 12, 15)).due == D(2027, 1, 15)
    assert clock_for("gdpr", "erasure", D(2026, 3, 4)).acknowledge_by is None


def test_gdpr_extension_two_more_months_told_within_the_first() -> None:
    clock = clock_for("gdpr", "erasure", D(2026, 3, 4))
    longer = extended(clock, "complex request across 40 systems", D(2026, 3, 20))
    assert longer.extended_due == D(2026, 6, 4) and longer.deadline == D(2026, 6, 4)
    with pytest.raises(ClockError, match="one extension"):
        extended(longer, "again", D(2026, 3, 21))
    with pytest.raises(ClockError, match="first period"):
        extended(clock, "too late", D(2026, 4, 5))
    with pytest.raises(ClockError, match="reason"):
        extended(clock, "  ", D(2026, 3, 5))


def test_ccpa_deadlines() -> None:
    friday = D(2026, 12, 4, 10)  # a Friday
    clock = clock_for("ccpa", "erasure", friday)
    # ten business days after a Friday: the Friday two weeks later
    assert clock.acknowledge_by == D(2026, 12, 18, 10)
    assert clock.due == D(2027, 1, 18, 10)  # 45 calendar days
    assert extended(clock, "volume", D(2026, 12, 10)).extended_due == D(2027, 3, 4, 10)  # 90
    opt_out = clock_for("ccpa", "opt-out", friday)
    assert opt_out.due == D(2026, 12, 25, 10)  # 15 business days
    with pytest.raises(ClockError, match="cannot be extended"):
        extended(opt_out, "volume", D(2026, 12, 7))
    with pytest.raises(ClockError, match="unknown jurisdiction"):
        clock_for("lgpd", "erasure", friday)


@pytest.fixture()
def catalog(tmp_path: Path) -> tuple[Catalog, dict[str, str]]:
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    tokens = {"admin": init_catalog(catalog)}
    for name, role in (("alice", "approver"), ("dora", "auditor")):
        add_principal(catalog, name, [role], "admin")
        tokens[name] = create_token(catalog, name)[1]
    return catalog, tokens


def _seed(catalog: Catalog) -> None:
    """2026: three erasures (one applied after 10 days, one denied after 3, one open and
    overdue), one opt-out applied after 2 days; one 2025 erasure that does not count."""
    for rid, jur, kind, received in (
            ("r-applied", "gdpr", "erasure", D(2026, 1, 5)),
            ("r-denied", "gdpr", "erasure", D(2026, 2, 1)),
            ("r-late", "gdpr", "erasure", D(2026, 3, 1)),
            ("r-optout", "ccpa", "opt-out", D(2026, 4, 1)),
            ("r-2025", "gdpr", "erasure", D(2025, 12, 30))):
        start_clock(catalog, rid, jur, kind, received, "alice")
        record_event(catalog, rid, "received", at=received)
    record_event(catalog, "r-applied", "awaiting_approval", at=D(2026, 1, 6))
    record_event(catalog, "r-applied", "applied", at=D(2026, 1, 15))
    record_event(catalog, "r-denied", "denied", "rejected by bob: not verified",
                 at=D(2026, 2, 4))
    record_event(catalog, "r-optout", "applied", at=D(2026, 4, 3))
    record_event(catalog, "r-2025", "applied", at=D(2026, 1, 2))


def test_the_queue_puts_overdue_requests_first(catalog) -> None:
    catalog, _ = catalog
    _seed(catalog)
    start_clock(catalog, "r-new", "gdpr", "erasure", D(2026, 12, 1), "alice")
    now = D(2026, 12, 6)
    ordered = queue(catalog, ["r-new", "r-applied", "r-late", "r-denied"], now)
    assert [(rid, late) for rid, _, late in ordered] == [
        ("r-late", True), ("r-new", False), ("r-applied", False), ("r-denied", False)]
    # control: before r-late's deadline it is open but not overdue, still first by deadline
    early = queue(catalog, ["r-new", "r-late"], D(2026, 3, 2))
    assert [(rid, late) for rid, _, late in early] == [("r-late", False), ("r-new", False)]


def test_an_extension_moves_the_deadline_once(catalog) -> None:
    catalog, _ = catalog
    start_clock(catalog, "r-x", "gdpr", "erasure", D(2026, 12, 1), "alice")
    clock = extend_clock(catalog, "r-x", "complex request", "alice", now=D(2026, 12, 6))
    assert clock.extended_due == D(2027, 3, 1)
    assert queue(catalog, ["r-x"], D(2027, 2, 1))[0][2] is False  # not overdue: extended
    with pytest.raises(ClockError, match="one extension"):
        extend_clock(catalog, "r-x", "again", "alice", now=D(2026, 12, 7))


def test_metrics_from_the_sealed_rows_and_the_command(catalog) -> None:
    catalog, tokens = catalog
    _seed(catalog)
    found = metrics(catalog, 2026)
    assert found == {
        "erasure": {"received": 3, "complied": 1, "denied": 1, "other_or_open": 1,
                    "median_days": 6.5},
        "opt-out": {"received": 1, "complied": 1, "denied": 0, "other_or_open": 0,
                    "median_days": 2.0}}
    cli = [sys.executable, "-m", "optout.cli.main", "--catalog", catalog.path, "requests",
           "metrics", "--year", "2026", "--format", "json"]
    env = {**os.environ, "OPTOUT_TOKEN": tokens["dora"], "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cli, env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"year": 2026, "kinds": found}
    # an approver is not an auditor
    denied = subprocess.run(cli, env={**env, "OPTOUT_TOKEN": tokens["alice"]},
                            capture_output=True, text=True, cwd=ROOT)
    assert denied.returncode != 0 and "auditor" in denied.stderr
    # tamper-evident: a denial edited into a compliance is refused, not counted
    con = duckdb.connect(catalog.path)
    con.execute("UPDATE request_events SET status = 'applied' WHERE request_id = 'r-denied' "
                "AND status = 'denied'")
    con.close()
    edited = subprocess.run(cli, env=env, capture_output=True, text=True, cwd=ROOT)
    assert edited.returncode != 0 and "request_events" in edited.stderr
