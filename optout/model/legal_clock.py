"""The clock the law sets on a data subject's request, by jurisdiction and kind.

- **GDPR** (Art. 12(3)): answer without undue delay and at the latest within one month of
  receipt; extendable by two further months where necessary, the person told of the
  extension, with the reasons, within the first month. A month runs to the same day of the
  next month, or that month's last day when it has none (EDPB). No separate acknowledgment.
- **CCPA** (Cal. Civ. Code §1798.130(a)(2); CCPA regulations §7021, §7026(f)): acknowledge a
  request to delete or to know within 10 business days; answer within 45 calendar days,
  extendable once by 45 more (90 in all) with notice and the reason; act on a request to opt
  out of sale or sharing within 15 business days (no extension).

Business days are Monday to Friday here: public holidays are not counted out (a due date is
never later than the law's, only sometimes earlier).
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, replace

from optout.model.errors import EngineError

JURISDICTIONS = ("gdpr", "ccpa")
KINDS = ("erasure", "opt-out", "access")


class ClockError(EngineError):
    """An unknown jurisdiction or kind, or an extension the law does not allow."""


@dataclass(frozen=True)
class Clock:
    """A request's deadlines (naive UTC datetimes)."""

    jurisdiction: str
    kind: str
    received: dt.datetime
    acknowledge_by: dt.datetime | None
    due: dt.datetime
    extended_due: dt.datetime | None = None
    extension_reason: str | None = None

    @property
    def deadline(self) -> dt.datetime:
        """When the answer is due now (the extended date once extended)."""
        return self.extended_due or self.due

    def overdue(self, now: dt.datetime, closed: bool) -> bool:
        return not closed and now > self.deadline


def add_months(when: dt.datetime, months: int) -> dt.datetime:
    """The same day `months` later, or that month's last day when it has none."""
    month = when.month - 1 + months
    year, month = when.year + month // 12, month % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def add_business_days(when: dt.datetime, days: int) -> dt.datetime:
    """`days` Monday-to-Friday days after `when`."""
    out = when
    while days > 0:
        out += dt.timedelta(days=1)
        if out.weekday() < 5:
            days -= 1
    return out


def clock_for(jurisdiction: str, kind: str, received: dt.datetime) -> Clock:
    """The deadlines of a request received at `received`."""
    if jurisdiction not in JURISDICTIONS:
        raise ClockError(f"unknown jurisdiction {jurisdiction[:40]!r} (one of "
                         f"{', '.join(JURISDICTIONS)})")
    if kind not in KINDS:
        raise ClockError(f"unknown kind {kind[:40]!r} (one of {', '.join(KINDS)})")
    if jurisdiction == "gdpr":
        return Clock(jurisdiction, kind, received, None, add_months(received, 1))
    if kind == "opt-out":
        return Clock(jurisdiction, kind, received, None, add_business_days(received, 15))
    return Clock(jurisdiction, kind, received, add_business_days(received, 10),
                 received + dt.timedelta(days=45))


def extended(clock: Clock, reason: str, now: dt.datetime) -> Clock:
    """The clock extended as the law allows, once, with the reason, while the first period
    runs (the person is told within it)."""
    if now > clock.due:
        raise ClockError("the first period has run out: an extension is told within it")
    if clock.extended_due is not None:
        raise ClockError("the request was extended already (the law allows one extension)")
    if not reason.strip():
        raise ClockError("an extension needs its reason (the person is told it)")
    if clock.jurisdiction == "gdpr":
        until = add_months(clock.received, 3)
    elif clock.kind == "opt-out":
        raise ClockError("a CCPA opt-out cannot be extended (15 business days)")
    else:
        until = clock.received + dt.timedelta(days=90)
    return replace(clock, extended_due=until, extension_reason=reason.strip())
