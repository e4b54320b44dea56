"""Words glued together in a column or table name (`businessentityid`, `phonenumbertypeid`,
`jobcandidate`, `billtoaddressid`), split by wordninja's English unigram model.

A split is kept only when every part is a common word, not a syllable: two letters only for
the short words names use (`id`, `no`, `to`), otherwise among the model's COMMON most frequent
words; `kdnr`, `rowguid` and German or Spanish names (`konfession` → `kon fess ion`,
`strasse` → `stra sse`) stay whole.
"""

from __future__ import annotations

import math

import wordninja

#: two-letter parts a split may hold
SHORT = frozenset({"id", "no", "nr", "to", "of", "by", "ip", "at", "on", "in", "pk", "fk"})
#: shorter names are never split (`email`, `phone`, `kdnr`)
MIN_LENGTH = 6
#: a part must be among this many most frequent words of the model (`login` is 20,281st,
#: `kon` 30,823rd, `fess` 61,986th)
COMMON = 25_000
_MODEL = wordninja.DEFAULT_LANGUAGE_MODEL
#: the model's cost of a word is log((rank + 1) * log(words)): the cost of the COMMON-th word
_MAX_COST = math.log((COMMON + 1) * math.log(len(_MODEL._wordcost)))


def unglue(token: str) -> list[str]:
    """The words of one lower-case token: itself, or the parts it was glued from."""
    if len(token) < MIN_LENGTH or not token.isalpha() or _word(token):
        return [token]  # short, a code, or a word itself (`android`, `username`)
    if token.endswith("id") and len(token) > 4:  # `PROVIDERID`: a key of words
        stem = unglue(token[:-2])
        if len(stem) > 1 or _word(stem[0]):
            return [*stem, "id"]
    parts = [w for p in _MODEL.split(token) for w in _halves(p)]
    if len(parts) < 2 or not all(_word(p) for p in parts):
        return [token]
    return parts


def _word(part: str) -> bool:
    return part in SHORT or (len(part) >= 3 and _cost(part) <= _MAX_COST)


def _halves(part: str) -> list[str]:
    """A rare compound the model keeps whole (`salesperson`) as its two common halves."""
    if _word(part):
        return [part]
    for k in range(4, len(part) - 3):
        if _word(part[:k]) and _word(part[k:]):
            return [part[:k], part[k:]]
    return [part]


def _cost(word: str) -> float:
    return _MODEL._wordcost.get(word, math.inf)
