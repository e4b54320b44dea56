"""Forensic reading: the raw bytes of a file searched for a subject's identifiers, as an
examiner with the file (and no database engine) would search it.

optout holds no raw identifiers after planning, only keyed hashes per normalization kind. So
the bytes are cut into identifier-shaped tokens (text runs of UTF-8, or of UTF-16LE where the store
uses it: e-mail addresses, phone numbers, codes and UUIDs), each token normalized as optout normalizes stored
values, keyed-hashed, and looked up among the subject's hashes. Where the raw values are known
(a cascade target, which receives them with the request) they are searched for literally too.
A hit is counted, never shown. Numeric keys are stored as binary integers, which no text search
can tell from other numbers: they are not searched (`Needles.blind` says so).
"""

from __future__ import annotations

import mmap
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from ahocorasick_rs import BytesAhoCorasick

from optout.model.identifiers import normalize
from optout.model.secret import KeyedHash

#: the runs a token is cut from (identifier characters)
_TOKEN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+@:-")
#: identifier characters kept, every other byte a space (for `bytes.split`)
_SEPARATE = bytes(c if c in _TOKEN else 0x20 for c in range(256))
#: runs of at least 6 identifier characters once the others are spaces (shorter runs are no
#: identifier: found by the regex engine, never cut into millions of small tokens first)
_LONG_RUN = re.compile(rb"[^ ]{6,}")
_RUN16 = re.compile(rb"(?:[A-Za-z0-9._%+@:-]\x00){6,320}")
_PHONE = re.compile(rb"\+?[0-9(][0-9 ().-]{5,22}[0-9]")
_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_NAME = re.compile(rb"[A-Za-z][A-Za-z'-]+(?: [A-Za-z][A-Za-z'-]+){1,3}")
_CHUNK = 64 << 20  # bytes read at a time (a token never spans more than the overlap)
_OVERLAP = 1024


@dataclass
class Needles:
    """What a raw read looks for: keyed hashes per normalization kind, and raw values."""

    hasher: KeyedHash
    hashes: dict[str, set[str]] = field(default_factory=dict)  # kind → keyed hashes
    literals: set[bytes] = field(default_factory=set)
    #: the store keeps text as UTF-16 (a SQLite database of that encoding)
    utf16: bool = False
    #: the literals' automaton, and how many literals it was built from
    _searcher: tuple[int, BytesAhoCorasick] | None = field(default=None, init=False,
                                                           repr=False, compare=False)

    def add_literal(self, value: str) -> None:
        """A raw value to search for as it is written (UTF-8 and UTF-16LE, as given and
        lower-cased)."""
        value = value.strip()
        if len(value) >= 6:
            for form in {value, value.lower()}:
                self.literals.update({form.encode(), form.encode("utf-16-le")})

    def __bool__(self) -> bool:
        return bool(self.literals) or any(self.hashes.values())

    def _is_subject(self, token: bytes) -> bool:
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            return False
        for kind, hashes in self.hashes.items():
            if not hashes or (kind == "email") != ("@" in text):
                continue
            if kind == "code" and (text.isdigit() or len(text) < 6):
                continue  # numbers are stored as binary integers: not searched as text
            value = normalize(kind, text)
            if value and self.hasher(value) in hashes:
                return True
        return False

    def _tokens(self, data: bytes, skip: int, stop: int) -> Counter[bytes]:
        """The candidate tokens of `data` that start in [skip, stop), with their counts."""
        kinds = {k for k, h in self.hashes.items() if h}
        tokens: Counter[bytes] = Counter()
        if kinds & {"email", "code"}:
            # identifier-character runs, cut at C speed: the first separator at or after each
            # bound decides which chunk a run straddling it belongs to
            table = data.translate(_SEPARATE)
            lo = table.find(b" ", skip) if skip else 0
            hi = table.find(b" ", stop)
            runs = Counter(_LONG_RUN.findall(table, lo if lo >= 0 else len(table),
                                             hi if hi >= 0 else len(table)))
            for run, n in runs.items():
                if b"@" in run or b":" in run:
                    for part in _parts(run):
                        tokens[part] += n
                else:
                    tokens[run] += n
        found = []
        if self.utf16 and kinds & {"email", "code"}:
            found.append(_RUN16.finditer(data))
        if "phone" in kinds:
            found.append(_PHONE.finditer(data))
        if "name" in kinds:
            found.append(_NAME.finditer(data))
        for matches in found:
            for m in matches:
                if skip <= m.start() < stop:
                    run = m.group()
                    for part in _parts(run.decode("utf-16-le").encode()
                                       if run[1:2] == b"\x00" else run):
                        tokens[part] += 1
        return tokens

    def _literal_search(self) -> BytesAhoCorasick:
        """One automaton over every literal (built again only when literals were added): the
        data is read once however many values a batch erased, not once per value."""
        built = self._searcher
        if built is None or built[0] != len(self.literals):
            built = self._searcher = (len(self.literals),
                                      BytesAhoCorasick(sorted(self.literals)))
        return built[1]

    def count(self, data: bytes, skip: int = 0, stop: int | None = None) -> int:
        """How many times the subject appears in `data` (what starts in [skip, stop))."""
        stop = len(data) if stop is None else stop
        hits = 0
        if self.literals:
            hits = sum(1 for _, start, _ in self._literal_search().find_matches_as_indexes(
                data, overlapping=True) if skip <= start < stop)
        return hits + sum(n for token, n in self._tokens(data, skip, stop).items()
                          if self._is_subject(token))

    def scan(self, path: str) -> int:
        """How many times the subject appears in a file's bytes (0 for an empty file)."""
        size = os.path.getsize(path)
        if not size or not self:
            return 0
        hits = 0
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for start in range(0, size, _CHUNK):
                # what starts in this chunk is read whole: the slice runs on past its end
                lead = min(start, _OVERLAP)
                data = mm[start - lead:start + _CHUNK + _OVERLAP]
                hits += self.count(data, skip=lead, stop=lead + _CHUNK)
        return hits


def _parts(run: bytes) -> set[bytes]:
    """A run and the identifiers inside it (an address in a longer run, `key:value` parts)."""
    parts = {run}
    if b"@" in run:
        parts.update(e.group() for e in _EMAIL.finditer(run))
    if b":" in run:
        parts.update(p for p in run.split(b":") if p)
    return parts


def scan_files(needles: Needles, paths: Iterable[str]) -> dict[str, int]:
    """Hits per existing file (a file that is gone holds nothing)."""
    return {p: needles.scan(p) for p in paths if os.path.isfile(p)}
