"""One redaction for every text optout keeps or shows that it did not write itself: audit log
arguments and details, error messages (the terminal's `Error:` line, the catalog's error
fields, the journal, worker statuses and dead letters), replies of third parties.

URIs lose their passwords; e-mail addresses become keyed hashes (or `<email>` without a key);
what looks like an identifier — runs of digits with or without separators (phone, card, SSN,
account numbers), IBANs — becomes `<number>`; in messages from an engine (DuckDB, PostgreSQL,
Arrow, Python's csv), quoted literals are dropped, for engines quote the value they choke on.
Control characters never reach a terminal.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from optout.model.matching import TEXT_EMAIL

_URI_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*):[^\s@/]*@", re.IGNORECASE)
_EMAIL = re.compile(TEXT_EMAIL, re.IGNORECASE)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,3})?\b")
#: six or more digits, possibly split by spaces, dots, dashes, slashes or parentheses
_NUMBER = re.compile(r"(?<![A-Za-z0-9])\+?\(?\d(?:[\d \t./()-]{4,}\d)(?![A-Za-z0-9])")
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.|'')*'|\"(?:[^\"\\\n]|\\.)*\"|`[^`\n]*`")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def redact(text: str, hash_email: Callable[[str], str] | None = None,
           engine: bool = False) -> str:
    """`text` with passwords, addresses and identifier-like values taken out. `hash_email`
    turns an address into its keyed hash (else `<email>`); `engine`: the text came from an
    engine, whose quoted literals are the values themselves."""
    text = redact_uri_passwords(str(text))
    if engine:
        text = _QUOTED.sub("'…'", text)
    text = _EMAIL.sub(lambda m: f"hmac:{hash_email(m.group().lower())[:32]}" if hash_email
                      else "<email>", text)
    text = _IBAN.sub("<iban>", text)
    return _NUMBER.sub(lambda m: m.group() if _digits(m.group()) < 6 else "<number>", text)


def redact_uri_passwords(text: str) -> str:
    """`text` with the password of every URI in it replaced by `***`."""
    return _URI_PASSWORD.sub(r"\1:***@", text)


def printable(text: str) -> str:
    """A line safe to print on a terminal: control characters (escape sequences, carriage
    returns) shown as `\\x..` instead of acted on."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _digits(text: str) -> int:
    return sum(c.isdigit() for c in text)

def one_line(error: BaseException | str) -> str:
    """The first line of an error message, with anything that looks like PII taken out.

    Engines quote offending values in their messages (a CSV line, a failed cast); the catalog
    and the terminal must not receive them (this module).
    """
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return redact(text, engine=True)[:300]
