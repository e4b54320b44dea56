"""The audit log: append-only, in the catalog, hash-chained.

Every entry holds a sequence number, a UTC timestamp, the principal and its roles, the
command, its arguments (subject identifiers replaced by keyed hashes), the outcome, and an
HMAC under a key derived from the catalog secret that covers the entry and the previous
entry's HMAC. Editing, deleting, inserting or reordering entries breaks the chain at the first
entry touched; `verify` names it. The newest entry's number and HMAC are also kept in a
head file beside the catalog, so cutting entries off the end is seen too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optout.model.errors import ScannerError
from optout.model.matching import TEXT_EMAIL
from optout.model.redaction import redact, redact_uri_passwords
from optout.scanner.catalog import Catalog
from optout.scanner.catalog.seal import verify_all

_EMAIL = re.compile(TEXT_EMAIL, re.IGNORECASE)
COLUMNS = "seq, logged_at, principal, roles, command, args, outcome, detail, mac"


class AuditError(ScannerError):
    """The audit log does not verify."""


@dataclass(frozen=True)
class Entry:
    """One audit entry."""

    seq: int
    at: dt.datetime
    principal: str
    roles: str
    command: str
    args: str  # canonical JSON
    outcome: str  # allowed, denied, ok, failed
    detail: str | None
    mac: str

    def as_json(self) -> dict[str, Any]:
        """The entry as an exported JSON object."""
        return {"seq": self.seq, "at": self.at.isoformat() + "Z", "principal": self.principal,
                "roles": self.roles.split(",") if self.roles else [],
                "command": self.command, "args": json.loads(self.args),
                "outcome": self.outcome, "detail": self.detail, "mac": self.mac}


def _key(catalog: Catalog) -> bytes:
    """The audit chain's key: derived from the catalog secret, used for nothing else."""
    return hmac.new(catalog.secret(), b"optout audit log v1", hashlib.sha256).digest()


def _mac(key: bytes, previous: str, seq: int, at: dt.datetime, principal: str, roles: str,
         command: str, args: str, outcome: str, detail: str | None) -> str:
    body = json.dumps([previous, seq, at.isoformat(), principal, roles, command, args, outcome,
                       detail], separators=(",", ":"))
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


#: arguments that carry a subject's identifiers: their values are never kept
SUBJECT_ARGS = ("subjects", "subject", "identifier", "identifiers")


def safe_args(catalog: Catalog, args: dict[str, Any]) -> str:
    """Arguments as canonical JSON with nothing of a subject or a secret in clear: a subject
    (`KEY=VALUE`, or anything given where a subject goes) becomes `KEY=hmac:...`, every e-mail
    address inside a value its keyed hash, a URI's password `***`."""
    hasher = catalog.hasher()

    def clean(key: str, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [clean(key, v) for v in value]
        if not isinstance(value, str):
            return value
        if key in SUBJECT_ARGS:
            k, sep, v = value.partition("=")
            name, text = (k.strip()[:40], v) if sep else ("?", value)
            return f"{name}=hmac:{hasher(text.strip().lower())[:32]}"
        return redact_uri_passwords(_EMAIL.sub(
            lambda m: f"hmac:{hasher(m.group().lower())[:32]}", value))

    return json.dumps({k: clean(k, v) for k, v in sorted(args.items())}, sort_keys=True,
                      default=str)


def append(catalog: Catalog, principal: str, roles: frozenset[str] | tuple[str, ...],
           command: str, args: dict[str, Any], outcome: str, detail: str | None = None) -> int:
    """Append one entry; returns its sequence number."""
    key = _key(catalog)
    role_text = ",".join(sorted(roles))
    text = safe_args(catalog, args)
    detail = redact(detail, catalog.hasher()) if detail else detail
    at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with catalog.connect() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            last = con.execute("SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1"
                               ).fetchall()
            seq, previous = (last[0][0] + 1, last[0][1]) if last else (1, "")
            head = _read_head(catalog)
            # A head that is missing (on a log with entries) or not sealed is left as it is,
            # for `audit verify` to report; a sealed one ahead of the log keeps the gap visible.
            keep_head = bool(last) and (head is None or not head.sealed)
            if head is not None and head.sealed and head.seq >= seq:
                seq, previous = head.seq + 1, head.mac
            mac = _mac(key, previous, seq, at, principal, role_text, command, text, outcome,
                       detail)
            con.execute(f"INSERT INTO audit_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [seq, at, principal, role_text, command, text, outcome, detail, mac])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    if not keep_head:
        _write_head_file(head_path(catalog), catalog.secret(), seq, mac)
    return seq


def head_path(catalog: Catalog) -> str:
    """Where the newest entry's sequence number and HMAC are kept outside the catalog, so
    deleting the newest entries (which leaves the chain consistent) is still seen."""
    return catalog.path + ".audit-head"


@dataclass(frozen=True)
class Head:
    """The head file: the newest entry's number and HMAC, sealed under the head key (so a
    head rewritten after cutting entries off the end does not verify)."""

    seq: int
    mac: str
    sealed: bool  # the head's own MAC holds


def _head_mac(secret: bytes, seq: int, mac: str) -> str:
    key = hmac.new(secret, b"optout audit head v1", hashlib.sha256).digest()
    return hmac.new(key, f"{seq} {mac}".encode(), hashlib.sha256).hexdigest()


def _write_head_file(path: str, secret: bytes, seq: int, mac: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{seq} {mac} {_head_mac(secret, seq, mac)}\n")
    os.replace(tmp, path)


def _read_head(catalog: Catalog) -> Head | None:
    """The head file, or None when there is none."""
    try:
        text = Path(head_path(catalog)).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return Head(0, "", False)
    parts = text.split()
    try:
        seq, mac = int(parts[0]), parts[1]
    except (IndexError, ValueError):
        return Head(0, "", False)
    sealed = len(parts) == 3 and hmac.compare_digest(
        parts[2], _head_mac(catalog.secret(), seq, mac))
    return Head(seq, mac, sealed)


def entries(catalog: Catalog, since: dt.datetime | None = None) -> Iterator[Entry]:
    """The entries in log order (by sequence number, then as stored)."""
    where, params = ("WHERE logged_at >= ?", [since]) if since else ("", [])
    with catalog.connect() as con:
        rows = con.execute(f"SELECT {COLUMNS} FROM audit_log {where} ORDER BY seq, rowid",
                           params).fetchall()
    for row in rows:
        yield Entry(*row)


def verify(catalog: Catalog) -> int:
    """Check the whole chain; returns the number of entries. Raises AuditError naming the
    first bad sequence number (an edited, missing, inserted or reordered entry)."""
    key = _key(catalog)
    previous, expected = "", 1
    for e in entries(catalog):
        if e.seq != expected:
            bad = min(e.seq, expected)
            what = "missing" if e.seq > expected else "duplicated or out of order"
            raise AuditError(f"audit log broken at entry {bad}: {what} (found {e.seq} where "
                             f"{expected} was expected)")
        mac = _mac(key, previous, e.seq, e.at, e.principal, e.roles, e.command, e.args,
                   e.outcome, e.detail)
        if not hmac.compare_digest(mac, e.mac):
            raise AuditError(f"audit log broken at entry {e.seq}: its content or its place in "
                             "the chain was altered")
        previous, expected = e.mac, expected + 1
    head = _read_head(catalog)
    count = expected - 1
    if head is None:
        if count:
            raise AuditError(f"audit log: its head file {head_path(catalog)} is missing (the "
                             f"log has {count} entries): entries may have been cut off the end")
        return count
    if not head.sealed:
        raise AuditError(f"audit log: its head file {head_path(catalog)} does not carry this "
                         "catalog's seal: it was rewritten outside optout")
    if head.seq > count:
        raise AuditError(f"audit log broken at entry {count + 1}: missing (the log ends at "
                         f"{count}, its head file records {head.seq})")
    if head.seq >= 1 and not hmac.compare_digest(head.mac, _mac_at(catalog, head.seq)):
        raise AuditError(f"audit log broken at entry {head.seq}: it differs from the one "
                         "its head file records")
    return count


def verify_records(catalog: Catalog) -> dict[str, int]:
    """Check the seal of every principal, token, approval, plan and journal row; returns
    the rows checked per table (SealError names the first forged or edited one)."""
    secret = catalog.secret()
    with catalog.connect(read_only=True) as con:
        return verify_all(con, secret)


def _mac_at(catalog: Catalog, seq: int) -> str:
    with catalog.connect(read_only=True) as con:
        rows = con.execute("SELECT mac FROM audit_log WHERE seq = ?", [seq]).fetchall()
    return rows[0][0] if rows else ""
