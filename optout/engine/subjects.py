"""Data subjects as a request names them (`email=ana@example.com`, `customer_id=42`), checked,
normalized and turned into keyed hashes. Raw values live only in memory while planning."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import phonenumbers

from optout.engine import EngineError
from optout.model.identifiers import normalize, phone_variants
from optout.model.secret import KeyedHash
from optout.scanner.classify.masking import mask

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
#: identifier names that are an entity's (what the subject is reached by), not a key column's
ENTITY_KEYS = frozenset({"email", "phone", "ssn", "iban", "card", "passport"})
#: the policy identifier that accepts any person key the identity graph knows (`patient_id`,
#: `patient`, `stg_patients.patient_id`): which one it names is decided by the graph
PERSON_KEY = "person_key"


class SubjectError(EngineError):
    """A subject identifier is malformed or not accepted by the policy."""


@dataclass(frozen=True)
class Subject:
    """One identifier of one data subject: its name (`email`), normalized value(s) and hash."""

    key: str
    values: tuple[str, ...]  # normalized; phones have their E.164 and national forms

    def hashes(self, hasher: KeyedHash) -> frozenset[str]:
        """Keyed hashes of every normalized form."""
        return frozenset(hasher(v) for v in self.values)

    def digest(self, hasher: KeyedHash) -> str:
        """One keyed hash naming this identifier in plans and reports."""
        return hasher(f"{self.key}={self.values[0]}")


def parse_subject(text: str, accepted: list[str] | None = None) -> Subject:
    """`key=value` → Subject; errors never echo the raw value (only a masked form)."""
    key, sep, value = text.partition("=")
    key, value = key.strip().lower(), value.strip()
    if not sep or not key or not value:
        raise SubjectError(f"bad subject '{mask(text, None)}': expected KEY=VALUE, e.g. "
                           "email=ana@example.com")
    if not _KEY.match(key):
        raise SubjectError(f"bad subject key '{key[:80]}': letters, digits and _ only (or "
                           "DATASET.COLUMN)")
    if accepted is not None and key not in accepted and not (
            PERSON_KEY in accepted and key not in ENTITY_KEYS):
        raise SubjectError(f"the policy does not accept '{key}' identifiers "
                           f"(it accepts: {', '.join(accepted)})")
    if key == "email":
        if not _EMAIL.match(value):
            raise SubjectError(f"bad email '{mask(value, 'EMAIL_ADDRESS')}'")
        return Subject(key, (normalize("email", value),))
    if key == "phone":
        try:
            number = phonenumbers.parse(value, "US")
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_possible_number(number):
            raise SubjectError(f"bad phone number '{mask(value, 'PHONE_NUMBER')}'")
        return Subject(key, tuple(phone_variants(value)))
    return Subject(key, (normalize("code", value),))


def read_subjects(path: str, accepted: list[str] | None = None) -> list[Subject]:
    """One `key=value` per line; blank lines and `#` comments are skipped."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise SubjectError(f"{path}: {exc.strerror}") from exc
    subjects = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                subjects.append(parse_subject(line, accepted))
            except SubjectError as exc:
                raise SubjectError(f"{path}: line {number}: {exc}") from None
    return subjects
