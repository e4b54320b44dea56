"""Masked examples: enough shape for a reviewer to recognise the data, never the value itself."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)
_DIGIT = re.compile(r"\d")


def mask_email(value: str) -> str:
    """`john.doe@example.com` → `j***@e***.com`."""
    local, _, domain = value.partition("@")
    host, dot, tld = domain.rpartition(".")
    return f"{local[:1]}***@{host[:1]}***{dot}{tld}" if dot else f"{local[:1]}***@***"


def mask_digits(value: str, keep: int = 2) -> str:
    """Every digit but the last `keep` becomes `*`: `+1 415-555-0134` → `+* ***-***-**34`."""
    total = len(_DIGIT.findall(value))
    seen = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        return m.group() if seen > total - keep else "*"

    return _DIGIT.sub(repl, value)


def mask_words(value: str) -> str:
    """Each word keeps its first character: `Maria García` → `M*** G***`."""
    return _WORD.sub(lambda m: m.group()[:1] + "***", value)


def mask(value: str, entity: str | None) -> str:
    """A masked rendering of one value for the given entity."""
    value = value.strip()
    if len(value) > 60:
        value = value[:60]
    if entity == "EMAIL_ADDRESS" or "@" in value:
        return mask_email(value) if "@" in value else mask_words(value)
    digits = len(_DIGIT.findall(value))
    if digits >= max(4, len(value) // 2):
        return mask_digits(value)
    return mask_words(value)
