"""Errors as `application/problem+json` (RFC 9457): a status, a title, one line of detail;
never a traceback, never a value the caller sent."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from optout.engine.approvals import ApprovalError
from optout.model.errors import EngineError, ScannerError
from optout.model.redaction import redact
from optout.scanner.access import AccessDenied, AuthError

PROBLEM = "application/problem+json"
TITLES = {400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 413: "Request body too large",
          415: "Unsupported media type", 422: "Unprocessable request", 429: "Too many requests",
          500: "Internal error"}


class Problem(Exception):
    """An error the API answers with its status and one line of detail."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A problem response."""
    return JSONResponse({"type": "about:blank", "title": TITLES.get(status, "Error"),
                         "status": status, "detail": detail}, status_code=status,
                        media_type=PROBLEM, headers=headers)


def _validation(exc: RequestValidationError) -> str:
    """The first validation error: where and what, without the value that was sent."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "(body)"
    return f"{where}: {first.get('msg', 'invalid')}"


def install(app: FastAPI) -> None:
    """The API's exception handlers."""

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem(exc.status, exc.detail)

    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError) -> JSONResponse:
        return problem(401, str(exc), {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(AccessDenied)
    async def _denied(_: Request, exc: AccessDenied) -> JSONResponse:
        return problem(403, str(exc))

    @app.exception_handler(ApprovalError)
    async def _approval(_: Request, exc: ApprovalError) -> JSONResponse:
        return problem(403, str(exc))

    @app.exception_handler(EngineError)
    @app.exception_handler(ScannerError)
    async def _engine(_: Request, exc: Exception) -> JSONResponse:
        return problem(422, redact(str(exc))[:500])

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, _validation(exc))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail) if exc.status_code != 404
                       else "no such resource")

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        return problem(500, f"internal error ({type(exc).__name__}); see the server's log")
