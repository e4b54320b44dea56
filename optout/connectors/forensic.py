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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from optout.model.identifiers import normalize
from optout.model.secret import KeyedHash

#: the runs a token is cut from (identifier characters)
_RUN = re.compile(rb"[A-Za-z0-9._%+@:-]{6,320}")
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

    @classmethod
    def of_keys(cls, hasher: KeyedHash, keys: Iterable[tuple[str, str, Iterable[str]]]
                ) -> Needles:
        """From plan steps' keys: (column, kind, keyed hashes)."""
        needles = cls(hasher)
        for _, kind, hashes in keys:
            needles.hashes.setdefault(kind, set()).update(hashes)
        return needles

    def add_literal(self, value: str) -> None:
        """A raw value to search for as it is written (UTF-8 and UTF-16LE, as given and
        lower-cased)."""
        value = value.strip()
        if len(value) >= 4:
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

    def _tokens(self, data: bytes, skip: int) -> Iterator[bytes]:
        kinds = {k for k, h in self.hashes.items() if h}
        found = []
        if kinds & {"email", "code"}:
            found.append(_RUN.finditer(data))
            if self.utf16:
                found.append(_RUN16.finditer(data))
        if "phone" in kinds:
            found.append(_PHONE.finditer(data))
        if "name" in kinds:
            found.append(_NAME.finditer(data))
        for matches in found:
            for m in matches:
                if m.start() < skip:
                    continue
                run = m.group()
                if run[1:2] == b"\x00":
                    run = run.decode("utf-16-le").encode()
                yield run
                if b"@" in run:
                    yield from (e.group() for e in _EMAIL.finditer(run) if e.group() != run)
                if b":" in run:
                    yield from (p for p in run.split(b":") if p)

    def count(self, data: bytes, skip: int = 0) -> int:
        """How many times the subject appears in `data` (starting at or after `skip`)."""
        hits = sum(1 for lit in self.literals for m in re.finditer(re.escape(lit), data)
                   if m.start() >= skip)
        seen: dict[bytes, bool] = {}
        for token in self._tokens(data, skip):
            hit = seen.get(token)
            if hit is None:
                hit = seen[token] = self._is_subject(token)
            hits += hit
        return hits

    def scan(self, path: str) -> int:
        """How many times the subject appears in a file's bytes (0 for an empty file)."""
        size = os.path.getsize(path)
        if not size or not self:
            return 0
        hits = 0
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for start in range(0, size, _CHUNK):
                # a token crossing a chunk's end is read whole in the next chunk's overlap
                lead = min(start, _OVERLAP)
                hits += self.count(mm[start - lead:start + _CHUNK], skip=lead)
        return hits


def scan_files(needles: Needles, paths: Iterable[str]) -> dict[str, int]:
    """Hits per existing file (a file that is gone holds nothing)."""
    return {p: needles.scan(p) for p in paths if os.path.isfile(p)}
