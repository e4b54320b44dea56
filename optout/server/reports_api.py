"""A request's signed report (JSON, Markdown, HTML), and checking one's signature."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from optout.engine.erasure_report import ReportError
from optout.server.auth import Caller, RequestId
from optout.server.problems import Problem
from optout.session import Session

router = APIRouter(prefix="/v1")


@router.get("/requests/{rid}/report")
def report(rid: RequestId, session: Caller,
           format: Literal["json", "md", "html"] = "json") -> Response:
    """The signed report of an applied request."""
    from optout.engine.report_render import report_html, report_markdown

    body = session.report(rid)
    if format == "md":
        return PlainTextResponse(report_markdown(body), media_type="text/markdown")
    if format == "html":
        return HTMLResponse(report_html(body))
    return JSONResponse(body)


def signature_check(session: Session, data: bytes) -> dict | str:
    """The report in `data` when its signature holds, else why not (the session's
    `verify_report`, which reads a file: the bytes go to a private temporary one)."""
    fd, path = tempfile.mkstemp(suffix=".json")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            return session.verify_report(path)
        except ReportError as exc:
            return str(exc).replace(path, "the report")
    finally:
        os.unlink(path)


@router.post("/reports/verify")
async def verify(request: Request, session: Caller) -> dict:
    """Whether a report's signature holds (the report as the request body)."""
    data = await request.body()
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        raise Problem(422, "the body is not a JSON report") from None
    checked = signature_check(session, data)
    if isinstance(checked, str):
        return {"valid": False, "reason": checked}
    return {"valid": True, "request_id": checked.get("request_id"),
            "status": checked.get("status")}
