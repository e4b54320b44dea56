"""What every cascade target shares: the moves apply's targets make, the subject's
identifiers (in memory only), and template filling."""

from __future__ import annotations

import string
from abc import ABC, abstractmethod

from optout.connectors.target import Staged
from optout.engine.cascade.spec import CascadeError
from optout.model.identifiers import normalize
from optout.model.secret import KeyedHash

KINDS = {"email": "email", "phone": "phone"}


class CascadeTarget(ABC):
    """One system outside the scanned data that holds copies of the subject."""

    def __init__(self, spec, identifiers: dict[str, str], hasher: KeyedHash,
                 request_id: str) -> None:
        self.spec = spec
        self.identifiers = identifiers  # raw, from the request; never stored
        self.hasher = hasher
        self.request_id = request_id

    @abstractmethod
    def prepare(self) -> Staged:
        """Find what is to be removed; nothing changes."""

    def check(self, staged: Staged) -> None:  # noqa: B027 - most targets have nothing staged
        """Nothing is staged outside the target system."""

    @abstractmethod
    def commit(self, staged: Staged) -> str:
        """Remove it; returns what was done, for the report."""

    def rollback(self, staged: Staged) -> None:  # noqa: B027 - nothing was made visible
        """Nothing to undo before commit."""

    @abstractmethod
    def residue(self) -> int:
        """How many copies of the subject the target still holds."""

    # -- physical erasure (the spec's `physical`) ----------------------------------------------

    def physical(self) -> str:
        """Make the committed deletion physical; returns what was done ("" when the system
        keeps no copy a deletion leaves)."""
        return ""

    def forensic(self) -> tuple[int, str]:
        """(occurrences of the subject in the system's files read raw, what was read or why
        nothing could be)."""
        return 0, "nothing to read: the system keeps no files optout can reach"

    # -- the subject's values ----------------------------------------------------------------

    def _raw(self, key: str) -> str:
        if key not in self.identifiers:
            raise CascadeError(f"{self.spec.name}: needs the identifier '{key}', which the "
                               "request does not carry")
        return str(self.identifiers[key]).strip()

    def value(self, key: str) -> str:
        """One identifier as the target stores it (its spec's `values`: as the request carries
        it, by default), or a clear error when the request lacks it."""
        form = getattr(self.spec, "values", "raw")
        raw = self._raw(key)
        if form == "raw":
            return raw
        return raw.lower() if form == "lower" else normalize(form, raw)

    def digest(self, key: str) -> str:
        """The keyed hash of one identifier (normalized as optout hashes it everywhere)."""
        return self.hasher(normalize(KINDS.get(key, "code"), self._raw(key)))

    def fill(self, template: str, escape=lambda v: v) -> str:
        """A template with `{key}` and `{key_hash}` filled from the request (each value passed
        through `escape`)."""
        out = []
        for literal, field, _, _ in string.Formatter().parse(template):
            out.append(literal)
            if field is None:
                continue
            if field.endswith("_hash") and field not in self.identifiers:
                out.append(self.digest(field.removesuffix("_hash")))
            else:
                out.append(escape(self.value(field)))
        return "".join(out)
