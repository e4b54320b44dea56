"""Subject verification: before anything is planned for a request submitted over HTTP, the
person proves they control the email the request names, with a one-time code mailed to it
(six digits from the system's CSPRNG, valid `ttl_seconds`, `tries` attempts). The catalog
keeps the code's keyed hash only, sealed with its expiry and the tries left; the signed report
names the method and when it succeeded."""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import smtplib
from email.message import EmailMessage

from optout.engine.lifecycle import utcnow
from optout.model.errors import EngineError
from optout.scanner.catalog import Catalog
from optout.scanner.catalog.seal import read, seal
from optout.scanner.config import VerificationConfig

METHOD = "email one-time code"


class VerificationError(EngineError):
    """A wrong, expired or exhausted code, or a request with nothing to verify."""


def _hash(catalog: Catalog, rid: str, code: str) -> str:
    return catalog.hasher()(f"verification\x00{rid}\x00{code}")


def send_code(config: VerificationConfig, to: str, code: str) -> None:
    """Mail the code (the message names no request detail beyond the code's validity)."""
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = to
    message["Subject"] = "Your verification code"
    message.set_content(f"Your verification code is {code}. It is valid for "
                        f"{config.ttl_seconds // 60} minutes. If you did not ask for the "
                        "erasure of your data, ignore this message.")
    try:
        with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=30) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise VerificationError(f"cannot send the verification code: mail server "
                                f"{config.smtp_host}:{config.smtp_port}: "
                                f"{type(exc).__name__}") from None


def start(catalog: Catalog, rid: str, email: str, config: VerificationConfig,
          now: dt.datetime | None = None) -> None:
    """Mail a new code to `email` and record its keyed hash."""
    now = now or utcnow()
    code = f"{secrets.randbelow(10**6):06d}"
    send_code(config, email, code)
    with catalog.connect() as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO request_verifications VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                    [rid, METHOD, _hash(catalog, rid, code), now,
                     now + dt.timedelta(seconds=config.ttl_seconds), config.tries])
        seal(con, catalog.secret(), "request_verifications", "request_id = ?", [rid])
        con.execute("COMMIT")


def attest(catalog: Catalog, rid: str, agent: str, now: dt.datetime | None = None) -> None:
    """Record that an authorized agent attests the person (the Data Rights Protocol: the
    agent verified them under the network's rules)."""
    now = now or utcnow()
    with catalog.connect() as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO request_verifications VALUES (?, ?, '', ?, ?, 0, ?, NULL)",
                    [rid, f"attested by authorized agent {agent}", now, now, now])
        seal(con, catalog.secret(), "request_verifications", "request_id = ?", [rid])
        con.execute("COMMIT")


def state(catalog: Catalog, rid: str) -> dict | None:
    """A request's verification row (seal checked), or None when none was asked."""
    with catalog.connect() as con:
        rows = read(con, catalog.secret(), "request_verifications", "request_id = ?", [rid])
    return rows[0] if rows else None


def check(catalog: Catalog, rid: str, code: str, now: dt.datetime | None = None) -> bool:
    """True when `code` verifies the request; False when it was wrong (a try is used).
    VerificationError when there is nothing left to try (expired, or no tries left, or
    verified already)."""
    now = now or utcnow()
    row = state(catalog, rid)
    if row is None:
        raise VerificationError("this request has no verification to answer")
    if row["verified_at"] is not None:
        raise VerificationError("this request is verified already")
    if row["tries_left"] <= 0:
        raise VerificationError("no tries are left")
    if now > row["expires_at"]:
        raise VerificationError("the verification code expired")
    good = hmac.compare_digest(row["code_hash"], _hash(catalog, rid, code.strip()))
    with catalog.connect() as con:
        con.execute("BEGIN TRANSACTION")
        if good:
            con.execute("UPDATE request_verifications SET verified_at = ? WHERE request_id = ?",
                        [now, rid])
        else:
            con.execute("UPDATE request_verifications SET tries_left = tries_left - 1 "
                        "WHERE request_id = ?", [rid])
        seal(con, catalog.secret(), "request_verifications", "request_id = ?", [rid])
        con.execute("COMMIT")
    return good


def strength(catalog: Catalog, rid: str) -> dict | None:
    """What the signed report says of a request's verification (None: none was asked)."""
    row = state(catalog, rid)
    if row is None:
        return None
    return {"method": row["method"], "verified": row["verified_at"] is not None,
            "verified_at": row["verified_at"].isoformat(timespec="seconds")
            if row["verified_at"] else None}
