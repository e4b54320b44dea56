"""Who calls: every route's caller is the session of its bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from optout.scanner.access import AuthError, audit
from optout.session import Session


def caller(request: Request) -> Session:
    """The session of the call's bearer token (a failure is audited and answered 401)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        token = ""
    server: Session = request.app.state.session
    # the route, not the path: a path may carry anything a caller typed
    route = getattr(request.scope.get("route"), "path", "(unknown route)")
    operation = f"http {request.method} {route}"[:200]
    if not token:
        audit.append(server.catalog, "(unauthenticated)", (), operation, {}, "denied",
                     "no bearer token")
        raise AuthError("an `Authorization: Bearer TOKEN` header is needed")
    return Session.login(server.catalog, token.strip(), operation=operation)


#: a route's caller: the session of its bearer token
Caller = Annotated[Session, Depends(caller)]


#: a request id in a path (never an identifier: no `@`, no spaces)
RequestId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
