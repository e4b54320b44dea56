"""The web console for privacy staff: server-rendered HTML, no script. A login takes a token
and sets an HttpOnly, SameSite=Strict session cookie; every page re-authenticates the token
it stands for and is authorized and audited like the API; every form carries the session's
CSRF token; failed logins are limited per client. Pages: requests (overdue first), a request
with its plan's dry run and Approve / Reject, its signed report with a verify badge, the
catalog's PII columns with evidence, the lineage picture; and the status page of the person
who asked (an unguessable link, no identifier)."""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from optout.engine.lifecycle import (
    UnknownRequest,
    queue,
    request_of_status_token,
    timestamp,
)
from optout.model.errors import EngineError
from optout.scanner.access import AccessDenied, AuthError
from optout.server.auth import RequestId
from optout.server.lineage_svg import lineage_svg
from optout.server.plans_api import plan_summary, record_approval, waiting_plan
from optout.server.problems import Problem
from optout.server.reports_api import signature_check
from optout.server.submission import request_row
from optout.session import Session

router = APIRouter()
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
COOKIE = "optout_console"
#: a console session lasts this long without a new login
SESSION_SECONDS = 8 * 3600
#: failed logins a client may make per minute
LOGIN_TRIES = 5


@dataclass
class Login:
    token: str
    csrf: str
    expires: float


class Logins:
    """Console sessions (in this process's memory only) and the failed-login limiter."""

    def __init__(self) -> None:
        self._sessions: dict[str, Login] = {}
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def open(self, token: str) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[sid] = Login(token, secrets.token_urlsafe(32),
                                        time.monotonic() + SESSION_SECONDS)
        return sid

    def get(self, sid: str | None) -> Login | None:
        with self._lock:
            login = self._sessions.get(sid or "")
            if login is not None and login.expires < time.monotonic():
                del self._sessions[sid]
                return None
            return login

    def close(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)

    def limited(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < 60]
            self._failures[client] = recent
            return len(recent) >= LOGIN_TRIES

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, []).append(time.monotonic())


class LoggedOut(Exception):
    """No valid console session: the page sends the browser to the login."""


def _logins(request: Request) -> Logins:
    return request.app.state.logins


def _session(request: Request) -> tuple[Session, Login]:
    login = _logins(request).get(request.cookies.get(COOKIE))
    if login is None:
        raise LoggedOut
    route = getattr(request.scope.get("route"), "path", "(console)")
    try:
        return Session.login(request.app.state.session.catalog, login.token,
                             operation=f"console {request.method} {route}"), login
    except AuthError:  # the token was revoked or expired since the login
        _logins(request).close(request.cookies.get(COOKIE))
        raise LoggedOut from None


def _csrf(login: Login, given: str) -> None:
    if not hmac.compare_digest(login.csrf, given or ""):
        raise Problem(403, "the form's CSRF token does not match this session")


def _page(request: Request, template: str, title: str, login: Login | None,
          session: Session | None, status: int = 200, **context) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, template, {
        "title": title, "who": session.principal.name if session else None,
        "csrf": login.csrf if login else "", **context}, status_code=status)


def install(app) -> None:
    """The console's routes, its login store and its redirect to the login."""
    app.state.logins = Logins()

    @app.exception_handler(LoggedOut)
    async def _to_login(_: Request, __: LoggedOut) -> Response:
        return RedirectResponse("/console/login", status_code=303)

    app.include_router(router)


@router.get("/console/static/console.css")
def stylesheet() -> Response:
    return Response((Path(__file__).parent / "static" / "console.css").read_text(),
                    media_type="text/css")


@router.get("/console/login", response_class=HTMLResponse)
def login_page(request: Request) -> HTMLResponse:
    return _page(request, "login.html", "Log in", None, None)


@router.post("/console/login")
def login(request: Request, token: str = Form(max_length=200)) -> Response:
    client = request.client.host if request.client else "?"
    if _logins(request).limited(client):
        return _page(request, "login.html", "Log in", None, None, status=429,
                     error="Too many failed logins: wait a minute.")
    try:
        Session.login(request.app.state.session.catalog, token.strip(),
                      operation="console login")
    except (AuthError, AccessDenied):
        _logins(request).failed(client)
        return _page(request, "login.html", "Log in", None, None, status=401,
                     error="That token is not valid.")
    response = RedirectResponse("/console/", status_code=303)
    response.set_cookie(COOKIE, _logins(request).open(token.strip()), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https",
                        path="/", max_age=SESSION_SECONDS)
    return response


@router.post("/console/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    login = _logins(request).get(request.cookies.get(COOKIE))
    if login is not None:
        _csrf(login, csrf)
        _logins(request).close(request.cookies.get(COOKIE))
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/console/", response_class=HTMLResponse)
def requests_page(request: Request) -> HTMLResponse:

    session, login = _session(request)
    shown = [{"id": r["id"], "status": r["status"], "received": r["received_at"],
              "jurisdiction": (r["clock"] or {}).get("jurisdiction"),
              "due": (r["clock"] or {}).get("deadline"),
              "overdue": bool((r["clock"] or {}).get("overdue"))}
             for r in session.request_status(limit=500)]
    return _page(request, "requests.html", "Requests", login, session, requests=shown)


@router.get("/console/requests/{rid}", response_class=HTMLResponse)
def request_page(rid: RequestId, request: Request, error: str | None = None) -> HTMLResponse:
    session, login = _session(request)
    try:
        row = session.request_status(rid)
    except UnknownRequest:
        raise Problem(404, "no such request") from None
    plan = None
    if row["status"] == "awaiting_approval":
        try:
            plan = plan_summary(session, rid, waiting_plan(request, session, rid)[0])
        except Problem:
            plan = None
    return _page(request, "request.html", f"Request {rid}", login, session, row=row,
                 clock=row["clock"], events=row["events"], plan=plan, error=error)


@router.post("/console/requests/{rid}/approve")
def approve(rid: RequestId, request: Request, csrf: str = Form("")) -> Response:
    session, login = _session(request)
    _csrf(login, csrf)
    try:
        record_approval(request, session, rid)
    except (EngineError, AccessDenied, Problem) as exc:
        return request_page(rid, request, error=getattr(exc, "detail", str(exc)))
    return RedirectResponse(f"/console/requests/{rid}", status_code=303)


@router.post("/console/requests/{rid}/reject")
def reject(rid: RequestId, request: Request, csrf: str = Form(""),
           reason: str = Form(min_length=3, max_length=500)) -> Response:
    from optout.server.plans_api import Reject
    from optout.server.plans_api import reject as reject_plan

    session, login = _session(request)
    _csrf(login, csrf)
    try:
        reject_plan(rid, Reject(reason=reason), request, session)
    except (EngineError, AccessDenied, Problem) as exc:
        return request_page(rid, request, error=getattr(exc, "detail", str(exc)))
    return RedirectResponse(f"/console/requests/{rid}", status_code=303)


@router.get("/console/requests/{rid}/report", response_class=HTMLResponse)
def report_page(rid: RequestId, request: Request) -> HTMLResponse:
    from optout.engine.report_render import report_html

    session, login = _session(request)
    report = session.report(rid)
    valid = not isinstance(signature_check(session, json.dumps(report).encode()), str)
    html = report_html(report)
    body = html.split("<body>", 1)[-1].split("</body>", 1)[0]
    return _page(request, "report.html", f"Report of {rid}", login, session, report=report,
                 valid=valid, body=body)


@router.get("/console/catalog", response_class=HTMLResponse)
def catalog_page(request: Request) -> HTMLResponse:
    session, login = _session(request)
    found = session.datasets(pii_only=True)
    datasets = [{"name": d.name, "columns": [c for c in d.columns if c.pii]} for d in found]
    return _page(request, "catalog.html", "Catalog: personal data", login, session,
                 datasets=datasets)


@router.get("/console/lineage", response_class=HTMLResponse)
def lineage_page(request: Request) -> HTMLResponse:
    from optout.session.operations import Operation

    session, login = _session(request)
    with session.operation(Operation.LINEAGE_SHOW, {"console": "lineage"}):
        records = session.catalog.datasets()
        edges = [(e["upstream"], e["downstream"]) for e in session.catalog.lineage()]
    svg = lineage_svg([(d.name, any(c.pii for c in d.columns)) for d in records], edges)
    return _page(request, "lineage.html", "Lineage", login, session, svg=svg)


#: what the person who asked reads of each status
PLAIN = {"received": "received", "awaiting_verification": "waiting for you to confirm your "
         "email", "verified": "confirmed, being prepared", "planned": "being prepared",
         "awaiting_approval": "being reviewed", "approved": "approved, being carried out",
         "blocked": "being worked on",
         "needs_review": "being reviewed", "applied": "complete", "denied": "declined",
         "failed": "could not be completed", "revoked": "withdrawn"}


@router.get("/status/{token}", response_class=HTMLResponse)
def status_page(token: str, request: Request) -> HTMLResponse:
    """The person's own page: their request's state and the report's summary, no
    identifier, behind a link with an unguessable token (an unknown one is a plain 404)."""
    server: Session = request.app.state.session
    rid = request_of_status_token(server.catalog, token[:100]) if len(token) <= 100 else None
    if rid is None:
        raise Problem(404, "no such page")
    row = request_row(server, rid)
    [(_, clock, _)] = queue(server.catalog, [rid])
    summary = None
    if row["status"] == "applied":
        from optout.engine.erasure_report import build_report

        summary = build_report(server.catalog, rid, server.principal)["summary"]
    return _page(request, "status.html", "Your request", None, None,
                 state=PLAIN.get(row["status"], "being worked on"),
                 received=row["received_at"], due=timestamp(clock.deadline) if clock else None,
                 summary=summary)
