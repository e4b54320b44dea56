"""Principals, their roles, and the tokens they authenticate with.

A token is `optout_<id>_<secret>`: the id finds its row, the secret is checked against a
scrypt hash (the only form it is stored in). Tokens expire and can be revoked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from optout.model.errors import ScannerError
from optout.model.roles import ROLES
from optout.scanner.catalog import Catalog
from optout.scanner.catalog.seal import read, seal

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
TOKEN = re.compile(r"^optout_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
DEFAULT_EXPIRY_DAYS = 90


class AuthError(ScannerError):
    """Not authenticated: no token, an unknown, expired or revoked one."""


class PrincipalError(ScannerError):
    """A bad principal name or role, or one that exists already / does not exist."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller (what its roles allow is the session's to say:
    optout/session/operations.py)."""

    name: str
    roles: frozenset[str]
    token_id: str | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _scrypt(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, maxmem=64 * 2**20, **SCRYPT)


def check_name(name: str) -> str:
    """A principal name: letters, digits and . _ @ -, at most 64 characters."""
    if not NAME.match(name):
        raise PrincipalError(f"bad principal name {name!r}: use letters, digits and . _ @ - "
                             "(at most 64 characters)")
    return name


def check_roles(roles: list[str] | tuple[str, ...]) -> list[str]:
    """Known roles, deduplicated, in the canonical order."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise PrincipalError(f"unknown role {', '.join(unknown) or '(none)'}: roles are "
                             f"{', '.join(ROLES)}")
    return [r for r in ROLES if r in roles]


def init_catalog(catalog: Catalog) -> str:
    """Initialize a catalog: its secret key file (mode 0600, unless OPTOUT_SECRET is set),
    its schema, and a first principal `admin` with the admin role; returns that principal's
    token, to be shown once. Refuses a catalog that has principals already."""
    catalog.hasher()
    if has_principals(catalog):
        raise PrincipalError(f"{catalog.path} is initialized already (it has principals)")
    add_principal(catalog, "admin", ["admin"], "optout init")
    return create_token(catalog, "admin")[1]


def has_principals(catalog: Catalog) -> bool:
    """True once `optout init` has created the first principal."""
    with catalog.connect() as con:
        return con.execute("SELECT count(*) FROM principals").fetchall()[0][0] > 0


def add_principal(catalog: Catalog, name: str, roles: list[str], created_by: str) -> None:
    """Create a principal."""
    check_name(name)
    roles = check_roles(roles)
    with catalog.connect() as con:
        if con.execute("SELECT 1 FROM principals WHERE name = ?", [name]).fetchall():
            raise PrincipalError(f"principal {name!r} exists already")
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO principals VALUES (?, ?, ?, ?, NULL)",
                    [name, roles, _now(), created_by])
        seal(con, catalog.secret(), "principals", "name = ?", [name])
        con.execute("COMMIT")


def list_principals(catalog: Catalog) -> list[tuple[str, list[str], dt.datetime, str]]:
    """(name, roles, created at, created by) of every principal."""
    with catalog.connect() as con:
        rows = read(con, catalog.secret(), "principals", order="ORDER BY name")
    return [(r["name"], r["roles"], r["created_at"], r["created_by"]) for r in rows]


def create_token(catalog: Catalog, principal: str, days: float | None = DEFAULT_EXPIRY_DAYS
                 ) -> tuple[str, str]:
    """A new token for a principal: (token id, the token). The token is shown once; only
    its scrypt hash is kept."""
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    expires = _now() + dt.timedelta(days=days) if days else None
    with catalog.connect() as con:
        if not con.execute("SELECT 1 FROM principals WHERE name = ?", [principal]).fetchall():
            raise PrincipalError(f"no principal {principal!r} (add it with `optout user add`)")
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                    [token_id, principal, salt, _scrypt(secret, salt), _now(), expires])
        seal(con, catalog.secret(), "tokens", "id = ?", [token_id])
        con.execute("COMMIT")
    return token_id, f"optout_{token_id}_{secret}"


def revoke_token(catalog: Catalog, token_id: str) -> None:
    """Revoke a token by its id."""
    with catalog.connect() as con:
        found = con.execute("SELECT revoked_at FROM tokens WHERE id = ?", [token_id]).fetchall()
        if not found:
            raise PrincipalError(f"no token {token_id!r}")
        read(con, catalog.secret(), "tokens", "id = ?", [token_id])
        con.execute("BEGIN TRANSACTION")
        con.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                    [_now(), token_id])
        seal(con, catalog.secret(), "tokens", "id = ?", [token_id])
        con.execute("COMMIT")


def list_tokens(catalog: Catalog) -> list[tuple]:
    """(id, principal, created, expires, revoked) of every token; never the hash."""
    with catalog.connect() as con:
        rows = read(con, catalog.secret(), "tokens", order="ORDER BY created_at")
    return [(r["id"], r["principal"], r["created_at"], r["expires_at"], r["revoked_at"])
            for r in rows]


def authenticate(catalog: Catalog, token: str | None) -> Principal:
    """The principal a token belongs to; raises AuthError naming what is wrong."""
    if not token:
        raise AuthError("no token: set OPTOUT_TOKEN (tokens come from `optout init` and "
                        "`optout token create`)")
    m = TOKEN.match(token.strip())
    if not m:
        raise AuthError("OPTOUT_TOKEN is not an optout token")
    token_id, secret = m.groups()
    key = catalog.secret()
    with catalog.connect() as con:
        # both rows are checked against their seals: rows inserted into the catalog file
        # (a principal, a token made up for it) authenticate nobody
        tokens = read(con, key, "tokens", "id = ?", [token_id])
        owners = read(con, key, "principals", "name = ?", [tokens[0]["principal"]]) \
            if tokens else []
    if not owners or not hmac.compare_digest(_scrypt(secret, tokens[0]["salt"]),
                                             tokens[0]["hash"]):
        raise AuthError(f"token {token_id} is not valid for this catalog")
    expires, revoked = tokens[0]["expires_at"], tokens[0]["revoked_at"]
    name, roles = owners[0]["name"], owners[0]["roles"]
    if revoked is not None:
        raise AuthError(f"token {token_id} was revoked")
    if expires is not None and expires <= _now():
        raise AuthError(f"token {token_id} expired on {expires:%Y-%m-%d %H:%M} UTC")
    return Principal(name, frozenset(roles), token_id)


#: who acts when a catalog `optout init` never initialized is used directly (embedded use,
#: tests): such a catalog has no principals, and the audit log records `(embedded)`
EMBEDDED = Principal("(embedded)", frozenset({"embedded"}))


class AccessDenied(ScannerError):
    """The caller may not do what they asked (CLI exit status 3)."""


def acting(catalog: Catalog, caller: Principal | None) -> Principal:
    """Who acts in a library call: the caller, or `EMBEDDED` on a catalog without principals.
    A catalog with principals is never changed by nobody: its callers come through a
    `optout.Session`, which authenticates and authorizes them."""
    if caller is not None:
        return caller
    if not has_principals(catalog):
        return EMBEDDED
    raise AccessDenied("this catalog has principals: an authenticated caller is needed "
                       "(OPTOUT_TOKEN; in Python, optout.Session)")


#: the context a producer's signing key is derived under
_PRODUCER_CONTEXT = b"optout producer signing key v1\0"


def producer_key(catalog: Catalog, name: str) -> bytes:
    """The key the producer `name` signs worker requests with (derived from the secret)."""
    return hmac.new(catalog.secret(), _PRODUCER_CONTEXT + name.encode(), hashlib.sha256).digest()
