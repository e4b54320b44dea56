"""A session: one caller on one catalog. It authenticates the caller, authorizes every
operation by the role table (optout/session/operations.py), and writes the audit log: an
entry when an operation is allowed or denied, and one when it ends (`ok`, `failed`,
`denied`). Adapters (the command line, the worker, an HTTP API) hold a session and call its
operations; none of them decides who may do what."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from optout.engine.approvals import ApprovalError
from optout.model.errors import EngineError, ScannerError
from optout.model.redaction import redact
from optout.model.runtime import RUNTIMES
from optout.scanner.access import EMBEDDED, AccessDenied, AuthError, Principal, audit
from optout.scanner.access.principals import authenticate, has_principals, init_catalog
from optout.scanner.catalog import Catalog
from optout.scanner.config import Config
from optout.scanner.deployment import effective_config
from optout.session.operations import ROLE_OF, Operation, holds


class Call:
    """One operation under way: who runs it, and how it ended when it returned normally
    (`fail` records an outcome the caller must hear of, such as datasets a scan could not
    read)."""

    def __init__(self, who: Principal) -> None:
        self.who = who
        self.failure: str | None = None

    def fail(self, detail: str) -> None:
        self.failure = detail


class SessionBase:
    """The caller, the catalog, and the audited, authorized operation."""

    def __init__(self, catalog: Catalog | str, principal: Principal | None = None,
                 config_path: str | None = None) -> None:
        self.catalog = catalog if isinstance(catalog, Catalog) else Catalog(catalog)
        self.principal = principal
        self.config_path = config_path

    @classmethod
    def login(cls, catalog: Catalog | str, token: str | None, *, operation: str = "login",
              args: dict[str, Any] | None = None, config_path: str | None = None):
        """A session for the holder of `token`; a failure is logged (under `operation`, the
        call it was for) and raised as AuthError or AccessDenied."""
        catalog = catalog if isinstance(catalog, Catalog) else Catalog(catalog)
        with catalog.held():
            if not os.path.exists(catalog.path) or not has_principals(catalog):
                raise AccessDenied(f"{catalog.path}: not initialized; run `optout init` "
                                   "first (it prints the first admin token)")
            try:
                principal = authenticate(catalog, token)
            except AuthError as exc:
                audit.append(catalog, "(unauthenticated)", (), operation, args or {}, "denied",
                             str(exc))
                raise
        return cls(catalog, principal, config_path)

    @staticmethod
    def init(catalog: Catalog | str) -> str:
        """Create the catalog, its key file and the first admin; returns the admin's token
        (shown once)."""
        catalog = catalog if isinstance(catalog, Catalog) else Catalog(catalog)
        token = init_catalog(catalog)
        audit.append(catalog, "admin", ("admin",), "init", {}, "ok", "catalog initialized")
        return token

    def config(self, engine: str | None = None) -> Config:
        """The deployment's configuration (from the catalog), with the caller's own scan
        sample from their local config, and the runtime chosen for this call if one was."""
        config = effective_config(self.catalog, self.config_path)
        if engine is not None:
            if engine not in RUNTIMES:
                raise ScannerError(f"unknown engine {engine!r} (one of {', '.join(RUNTIMES)})")
            config.engine = engine
        return config

    def authorize(self, op: Operation, args: dict[str, Any] | None = None) -> Principal:
        """Check the caller may run `op`; log the call either way; raise AccessDenied."""
        role = ROLE_OF[op]
        caller = self.principal
        if caller is None:
            if not has_principals(self.catalog):
                audit.append(self.catalog, EMBEDDED.name, EMBEDDED.roles, op, args or {},
                             "allowed", "catalog without principals (embedded use)")
                return EMBEDDED
            audit.append(self.catalog, "(anonymous)", (), op, args or {}, "denied", "no caller")
            raise AccessDenied(f"{op}: this catalog has principals; an authenticated caller "
                               "is needed (OPTOUT_TOKEN)")
        if not holds(caller, role):
            audit.append(self.catalog, caller.name, caller.roles, op, args or {}, "denied",
                         f"needs role {role}")
            raise AccessDenied(f"{op}: {caller.name} does not hold the role '{role}' "
                               f"(holds: {', '.join(sorted(caller.roles))})")
        audit.append(self.catalog, caller.name, caller.roles, op, args or {}, "allowed")
        return caller

    def may(self, op: Operation) -> bool:
        """Whether the caller holds the role `op` needs (nothing is logged)."""
        if self.principal is None:
            return not has_principals(self.catalog)
        return holds(self.principal, ROLE_OF[op])

    @contextmanager
    def operation(self, op: Operation, args: dict[str, Any] | None = None) -> Iterator[Call]:
        """Authorize `op`, run the block, and log how it ended."""
        args = args or {}
        with self.catalog.held():
            call = Call(self.authorize(op, args))
        who = call.who
        try:
            yield call
        except AccessDenied as exc:
            audit.append(self.catalog, who.name, who.roles, op, args, "denied",
                         redact(str(exc), self.catalog.hasher())[:500])
            raise
        except Exception as exc:  # every way an operation can end is logged
            denied = isinstance(exc, ApprovalError)
            audit.append(self.catalog, who.name, who.roles, op, args,
                         "denied" if denied else "failed",
                         redact(failure(exc), self.catalog.hasher())[:500])
            raise
        audit.append(self.catalog, who.name, who.roles, op, args,
                     "failed" if call.failure else "ok", call.failure)


def failure(exc: BaseException) -> str:
    """A one-line reason for an error: the library's own message, or, for anything else (a
    bug, an engine's error that escaped), its type and first line (redacted)."""
    if isinstance(exc, ScannerError | EngineError):
        return str(exc)
    if hasattr(exc, "format_message"):  # a usage error of an adapter's own
        return str(exc.format_message())
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return redact(f"internal error ({type(exc).__name__}: {first[:300]}); run with --debug "
                  "for the traceback", engine=True)
