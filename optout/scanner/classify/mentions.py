"""Person mentions in prose: which of spaCy's PERSON spans name somebody.

A small English model reads any run of capitals as a name (`Great Product`, `Mad Scientist`,
`Monday Morning`). In prose a span counts as a person's name only when it has at least two
tokens, each Capitalized (not an acronym in capitals, not a lower-case word), none of them a
stop word, a calendar word or a title-case filler (`The Art of ...`). A single capitalized
word, at a sentence start or not, never counts: `Nancy is a member` names somebody to a human,
but so does `Battle is near` to the model.
"""

from __future__ import annotations

import re

from spacy.lang.en.stop_words import STOP_WORDS

#: capitalized words that are not names (calendar words, courtesy titles kept apart)
NOT_NAMES = frozenset({
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "today", "tomorrow", "yesterday", "mr", "mrs", "ms",
    "dr", "prof", "sir", "madam", "dear", "hi", "hello", "thanks", "regards", "customer",
    "support", "team", "product", "order", "great", "good", "bad", "excellent", "amazing",
    "university", "college", "school", "street", "road", "avenue", "inc", "ltd", "gmbh",
})
_TOKEN = re.compile(r"[^\W\d_][\w'’.-]*", re.UNICODE)


def is_name(span: str) -> bool:
    """True when a PERSON span from prose looks like a person's name."""
    words = _TOKEN.findall(span)
    if len(words) < 2:
        return False
    for word in words:
        core = word.strip(".'’-")
        if not core or not core[0].isupper() or (len(core) > 1 and core.isupper()):
            return False
        if core.lower() in STOP_WORDS or core.lower() in NOT_NAMES:
            return False
    return True


def named(texts: list[str], spans: dict[int, list[tuple[str, int, int]]]) -> set[int]:
    """Indexes of texts with at least one PERSON span that passes `is_name`."""
    return {i for i, found in spans.items()
            if any(e == "PERSON" and is_name(texts[i][a:b]) for e, a, b in found)}
