"""Who produced a message: request messages are signed by their producer.

A producer is a principal of the catalog with the requester role. Its signing key is derived
from the catalog secret and its name (domain-separated from every other use of the secret), so
the stream never holds a secret: `optout request submit` signs as the calling principal, and
`optout producer-key NAME` (admin) prints the key for a producer that publishes by itself. The
signature is HMAC-SHA256 of the message body, in the `Optout-Signature` header as
`sha256=<hex>`, with the producer's name in `Optout-Producer`. A message without a valid
signature, or from a principal without the requester role, is dead-lettered.
"""

from __future__ import annotations

import hashlib
import hmac

from optout.scanner.access import Principal
from optout.scanner.access.principals import list_principals, producer_key
from optout.scanner.catalog import Catalog
from optout.session import Operation, Session
from optout.worker.messages import MessageError

PRODUCER_HEADER = "Optout-Producer"
SIGNATURE_HEADER = "Optout-Signature"


def signed_headers(catalog: Catalog, name: str, body: bytes) -> dict[str, str]:
    """The headers that sign `body` as the producer `name`."""
    mac = hmac.new(producer_key(catalog, name), body, hashlib.sha256).hexdigest()
    return {PRODUCER_HEADER: name, SIGNATURE_HEADER: f"sha256={mac}"}


def producers(catalog: Catalog) -> dict[str, tuple[str, ...]]:
    """Principal name → roles: who may sign (read once for a delivery of messages)."""
    return {n: tuple(r) for n, r, _, _ in list_principals(catalog)}


def producer_of(catalog: Catalog, headers: dict[str, str] | None, body: bytes,
                principals: dict[str, tuple[str, ...]] | None = None) -> Principal:
    """The principal that signed a message; MessageError (one line) when none did.
    `principals`: what `producers` read, when the caller holds it already."""
    headers = headers or {}
    name, signature = headers.get(PRODUCER_HEADER), headers.get(SIGNATURE_HEADER)
    if not name or not signature:
        raise MessageError(f"unauthenticated: no {PRODUCER_HEADER}/{SIGNATURE_HEADER} headers "
                           "(publish with `optout request submit` or sign the body)")
    roles = (producers(catalog) if principals is None else principals).get(name)
    if roles is None:
        raise MessageError(f"unauthenticated: no producer named {name!r}")
    expected = signed_headers(catalog, name, body)[SIGNATURE_HEADER]
    if not hmac.compare_digest(expected, signature):
        raise MessageError(f"unauthenticated: the signature of {name!r} does not match the body")
    producer = Principal(name, frozenset(roles))
    if not Session(catalog, producer).may(Operation.REQUEST_SUBMIT):
        raise MessageError(f"not authorized: producer {name!r} does not hold the role "
                           "'requester'")
    return producer
