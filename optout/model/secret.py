"""The per-catalog secret and the keyed hash built on it.

Subject identifiers and sampled key values are only ever kept as HMAC-SHA256 under this
secret. The secret lives outside the catalog file: in `<catalog>.key` (mode 0600, created on
first use) or in the `OPTOUT_SECRET` environment variable (hex).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from typing import Any

from optout.model.errors import CatalogError

SECRET_ENV = "OPTOUT_SECRET"
SECRET_BYTES = 32
BLOCK = 64  # SHA-256 block size, for the HMAC pads engines compute with
#: the identifier-key scheme of catalogs made since the sealed catalog state: identifiers are
#: keyed with a key derived from the secret (scheme 1, older catalogs: the secret itself)
DERIVED_SCHEME = 2


def identifier_key(secret: bytes) -> bytes:
    """The key identifiers are hashed under: derived from the catalog secret for that purpose
    alone, so an engine that computes identifier hashes (Spark) never holds the secret that
    seals rows, plans and the audit log."""
    return hmac.new(secret, b"optout identifier hash v1", hashlib.sha256).digest()


def key_path(catalog_path: str) -> str:
    """Where the key file of a catalog lives."""
    return catalog_path + ".key"


def load_secret(catalog_path: str, create: bool = True) -> bytes:
    """The catalog's secret; creates the key file when missing and `create` is set."""
    env = os.environ.get(SECRET_ENV)
    if env:
        try:
            value = bytes.fromhex(env.strip())
        except ValueError:
            raise CatalogError(f"{SECRET_ENV}: not a hex string") from None
        if len(value) < 16:
            raise CatalogError(f"{SECRET_ENV}: at least 16 bytes (32 hex digits) are needed")
        return value
    path = key_path(catalog_path)
    if os.path.exists(path):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            raise CatalogError(f"{path}: key file is readable by others (mode {mode:o}); "
                               "chmod 600 it")
        try:
            return bytes.fromhex(open(path).read().strip())
        except ValueError:
            raise CatalogError(f"{path}: not a key file") from None
    if not create:
        raise CatalogError(f"{path}: the catalog's key file is missing (and {SECRET_ENV} is not "
                           "set); restore it: a new key would match nothing the catalog holds")
    value = secrets.token_bytes(SECRET_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value.hex() + "\n")
    return value


@dataclass(frozen=True)
class KeyedHash:
    """HMAC-SHA256 under the identifier key, in Python and as pads engines can use in SQL."""

    secret: bytes  # the identifier key (derived from the catalog secret, or an old catalog's)
    derived: bool = True  # False: an old catalog's identifiers are keyed with the secret itself

    def __call__(self, value: str) -> str:
        """The keyed hash of a (normalized) value, as hex."""
        inner, outer = self._keyed  # the key's pads hashed once, not per value
        inner = inner.copy()
        inner.update(value.encode())
        outer = outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    @functools.cached_property
    def _keyed(self) -> tuple[Any, Any]:
        """SHA-256 states after the inner and the outer pad (RFC 2104): HMAC(m) is
        sha256(outer || sha256(inner || m)); copying them is faster than `hmac.HMAC.copy`."""
        inner, outer = self.pads
        return hashlib.sha256(inner), hashlib.sha256(outer)

    def __getstate__(self) -> dict:
        """What a pickle (a Spark task, a worker process) carries: the key, not its HMAC
        state (which cannot be pickled; it is rebuilt on first use)."""
        return {k: v for k, v in self.__dict__.items() if k != "_keyed"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    @property
    def pads(self) -> tuple[bytes, bytes]:
        """(inner, outer) pads: HMAC(m) = sha256(outer || sha256(inner || m))."""
        key = self.secret if len(self.secret) <= BLOCK else hashlib.sha256(self.secret).digest()
        key = key.ljust(BLOCK, b"\0")
        return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)
