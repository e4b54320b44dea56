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
#: whitespace, as Python's `str.strip()` and `str.split()` see it (every `isspace()` character).
#: Each engine strips and splits on exactly these: its own `trim` and `\s` do not (DuckDB's
#: trim keeps tabs and newlines, RE2's `\s` is ASCII, Spark's trim strips only spaces), so
#: a stored "\tana@x.io" would normalize to another value in SQL than in Python.
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
              "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
#: lower-casing as DuckDB and PostgreSQL do it (each character's simple mapping): Python's
#: `lower()` (and Java's, so Spark's) maps "İ" to two characters and a final capital sigma
#: to "ς"; these two are the only differences, taken out before lower-casing
SIMPLE_LOWER_FROM, SIMPLE_LOWER_TO = "\u0130\u03a3", "I\u03c3"
_SIMPLE_LOWER = str.maketrans(SIMPLE_LOWER_FROM, SIMPLE_LOWER_TO)
_NOT_DIGIT = re.compile(r"[^0-9]")  # ASCII digits, as the engines' `[^0-9]` (`\D` is Unicode's)
_SEPARATORS = re.compile(f"[{WHITESPACE}\\-./]")


def kind_of(entity: str | None) -> str:
    """How values of an entity are normalized: email, phone, name, or code (everything else)."""
    return KIND_OF_ENTITY.get(entity or "", "code")


def lower(text: str) -> str:
    """`text` lower-cased character by character, as the engines' `lower` does it."""
    return text.lower() if text.isascii() else text.translate(_SIMPLE_LOWER).lower()


def normalize(kind: str, value: object) -> str:
    """The normalized text of one stored value."""
    text = str(value).strip(WHITESPACE)
    if kind == "email":
        return lower(text)
    if kind == "phone":
        return _NOT_DIGIT.sub("", text)
    if kind == "name":
        return " ".join(lower(text).split())  # split() splits on WHITESPACE
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


def sql_normalize(kind: str, expr: str, dialect: str, collation: str = "default") -> str:
    """SQL that normalizes `expr` like `normalize` (DuckDB and PostgreSQL). PostgreSQL changes
    case in `collation` (see `optout.connectors.postgres.source.case_collation`): in the C locale, a
    database's or a column's, its lower() and upper() change ASCII letters only."""
    if dialect == "duckdb":
        # trim with a set of characters is ~8x slower than trim(): only a value
        # whose first or last character is not printable ASCII (a space included) takes it
        text = f"CAST({expr} AS VARCHAR)"
        text = (f"(CASE WHEN ord({text}) BETWEEN 33 AND 126 AND ord({text}[-1]) "
                f"BETWEEN 33 AND 126 THEN {text} ELSE trim({text}, '{WHITESPACE}') END)")
        return _cased(kind, text, WHITESPACE, "lower({})", "upper({})")
    # An ASCII value (as many bytes as characters) needs neither the collation nor the
    # translation, nor the whole whitespace set: twice as fast, and most values are
    text = f"({expr})::text"
    spaces = "".join(c for c in WHITESPACE if c.isascii())
    plain = _cased(kind, f"btrim({text}, '{spaces}')", spaces, "lower({})", "upper({})")
    if kind == "phone":  # every character but a digit goes: whitespace and case do not matter
        return plain
    full = _cased(kind, f"btrim({text}, '{WHITESPACE}')", WHITESPACE,
                  pg_lower("{}", collation), f'upper(({{}}) COLLATE "{collation}")')
    return f"(CASE WHEN octet_length({text}) = char_length({text}) THEN {plain} ELSE {full} END)"


def pg_lower(expr: str, collation: str) -> str:
    """PostgreSQL lower-casing `expr` as `lower` does, in `collation` (an ICU collation maps
    "İ" and a final "Σ" as Python does: they are translated first)."""
    return (f"lower((translate({expr}, '{SIMPLE_LOWER_FROM}', '{SIMPLE_LOWER_TO}')) "
            f'COLLATE "{collation}")')


def _cased(kind: str, text: str, spaces: str, lower: str, upper: str) -> str:
    """The normalization of a trimmed text (`spaces`: the whitespace it may hold inside);
    `lower` and `upper` are templates of the engine's case changes."""
    if kind == "email":
        return lower.format(text)
    if kind == "phone":
        return f"regexp_replace({text}, '[^0-9]', '', 'g')"
    if kind == "name":
        return lower.format(f"regexp_replace({text}, '[{spaces}]+', ' ', 'g')")
    return upper.format(f"regexp_replace({text}, '[{spaces}./-]', '', 'g')")
