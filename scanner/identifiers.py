"""Normalizing identifier values, the same way in Python and inside each engine's SQL.

A subject's `email=Ana@Example.com ` and a column's `ana@example.com` must hash alike, so both
sides go through one normalization per kind before the keyed hash.
"""

from __future__ import annotations

import re

import phonenumbers

#: entity → normalization kind
KIND_OF_ENTITY = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "PERSON": "name",
}
#: every normalization kind (a plan naming another is refused)
KINDS = frozenset({"email", "phone", "name", "code"})
DEFAULT_REGION = "US"
_NOT_DIGIT = re.compile(r"\D")
_SEPARATORS = re.compile(r"[\s\-./]")


def kind_of(entity: str | None) -> str:
    """How values of an entity are normalized: email, phone, name, or code (everything else)."""
    return KIND_OF_ENTITY.get(entity or "", "code")


def normalize(kind: str, value: object) -> str:
    """The normalized text of one stored value."""
    text = str(value).strip()
    if kind == "email":
        return text.lower()
    if kind == "phone":
        return _NOT_DIGIT.sub("", text)
    if kind == "name":
        return " ".join(text.lower().split())
    return _SEPARATORS.sub("", text).upper()


def phone_variants(value: str, region: str = DEFAULT_REGION) -> list[str]:
    """Digit strings a stored phone number of this subject may normalize to: E.164 digits and
    the national number (stored numbers often lack the country code)."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        digits = _NOT_DIGIT.sub("", value)
        return [digits] if digits else []
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")
    national = str(number.national_number)
    return sorted({e164, national})


def sql_normalize(kind: str, expr: str, dialect: str) -> str:
    """SQL that normalizes `expr` like `normalize` (DuckDB and PostgreSQL)."""
    text = f"trim(CAST({expr} AS VARCHAR))" if dialect == "duckdb" else f"trim(({expr})::text)"
    flags = ", 'g'"
    if kind == "email":
        return f"lower({text})"
    if kind == "phone":
        return f"regexp_replace({text}, '[^0-9]', ''{flags})"
    if kind == "name":
        return f"lower(regexp_replace({text}, '\\s+', ' '{flags}))"
    return f"upper(regexp_replace({text}, '[\\s./-]', ''{flags}))"
