"""People's names as value evidence: the given and family names of Faker's person providers in
every locale it ships (about 31,000 given names and 28,000 family names), loaded once.

A column of names need not look like one: Synthea writes `Jana548`, card embossers write
`JANA OKAFOR`, an export writes `Okafor, Jana` or `Dr. Jana Okafor`. NER reads none of those
reliably; a lexicon reads all of them once digits, case and titles are set aside. Cities,
colours and words share some names (`Paris`, `Rose`, `General`), so a column counts only when
most of its many distinct values are names (a colour column has ten values, a name column
hundreds).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re

import polars as pl

#: titles before a name (their presence alone makes a value a person's name)
HONORIFICS = frozenset({"dr", "mr", "mrs", "ms", "miss", "mx", "prof", "sir", "dame", "herr",
                        "frau", "m", "mme", "mlle", "sr", "sra", "srta", "don", "dona", "sig",
                        "sigra", "rev", "fr"})
#: words a name holds that are no name (suffixes, particles)
_SKIP = frozenset({"jr", "sr", "ii", "iii", "iv", "md", "phd", "rn", "dds", "de", "da", "di",
                   "van", "von", "der", "den", "la", "le", "del", "dos", "das", "du", "y"})
#: fewer distinct values than this say nothing (a colour or a gender column)
MIN_DISTINCT = 8
_ONE_NAME = re.compile(r"^[^\W\d_]+(?:['’-][^\W\d_]+)*\d*$")
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


@functools.cache
def names() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, family names), case-folded, from every locale of Faker's person provider."""
    import faker.providers.person as person

    given: set[str] = set()
    family: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"{person.__name__}.{module.name}").Provider
        for attr, out in (("first_names", given), ("first_names_male", given),
                          ("first_names_female", given), ("last_names", family)):
            out.update(w.casefold() for w in _listed(provider, attr))
    return frozenset(given), frozenset(family)


def _listed(provider: type, attr: str) -> list[str]:
    """A provider's word list (a list, or a dict of words to weights), inherited or its own."""
    for cls in provider.__mro__:
        value = cls.__dict__.get(attr)
        if isinstance(value, list | tuple | dict):
            return [w for w in value if isinstance(w, str)]
    return []


def is_name(text: str) -> bool:
    """A person's name as written in data: a given or family name alone (digits set aside), a
    title before a name, or a given name and a family name in either order."""
    words = [w.casefold() for w in _WORD.findall(text)]
    titled = bool(words) and words[0] in HONORIFICS and len(words) > 1
    words = [w for w in words if w not in _SKIP and w not in HONORIFICS]
    if not words or len(words) > 4:
        return False
    given, family = names()
    if titled:
        return any(w in given or w in family for w in words)
    if len(words) == 1:  # one name, maybe with digits (`Jana548`), not a code (`DEV-0042`)
        return bool(_ONE_NAME.match(text.strip())) and (words[0] in given or
                                                         words[0] in family)
    first, last = words[0], words[-1]
    return (first in given and (last in family or last in given)) or \
        (first in family and last in given and "," in text)


def name_share(values: pl.DataFrame) -> float:
    """The share of a column's distinct values that are persons' names (0 with too few)."""
    texts = values["value"].to_list()
    if len(texts) < MIN_DISTINCT:
        return 0.0
    return sum(1 for t in texts if is_name(t)) / len(texts)
