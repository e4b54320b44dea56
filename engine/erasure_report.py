"""The report of an applied request: what was erased where and when, proven, and signed.

It is built from the journal, holds no raw identifiers (subjects are keyed hashes), and carries
an HMAC-SHA256 signature under the catalog secret over its canonical JSON, so
`optout report verify FILE` tells whether anyone altered it.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
from pathlib import Path
from typing import Any

from engine import EngineError
from engine.cascade.run import steps as cascade_steps
from engine.journal import WORKER_PREFIX, Journal
from scanner.access import Principal, authorize
from scanner.catalog import Catalog

SIGNED_FIELDS_VERSION = 1


class ReportError(EngineError):
    """A report file is unreadable or its signature does not match."""


def build_report(catalog: Catalog, request_id: str,
                 caller: Principal | None = None) -> dict[str, Any]:
    """The signed report of one request (the caller needs the auditor role)."""
    authorize(catalog, caller, "report", {"request_id": request_id})
    return _report(catalog, request_id)


def outcome(catalog: Catalog, request_id: str) -> str:
    """A request's status and summary line (what `apply` and `resume` print when done)."""
    report = _report(catalog, request_id)
    return f"{report['status']}; {report['summary']}"


def _report(catalog: Catalog, request_id: str) -> dict[str, Any]:
    journal = Journal(catalog)
    job = job_of(catalog, request_id)
    request = journal.request(job)
    plan = json.loads(request["plan"])
    steps = []
    for s in journal.steps(job):
        planned = plan["steps"][s["step_no"]]
        steps.append({
            "dataset": s["dataset"], "dataset_id": s["dataset_id"], "location": s["location"],
            "action": s["action"], "rule": planned["rule"],
            "legal_basis": planned.get("legal_basis"),
            "columns": dict(planned["columns"]), "status": s["status"],
            "rows_before": s["rows_before"], "rows_after": s["rows_after"],
            "rows_changed": s["rows_changed"], "checksum_before": s["checksum_before"],
            "checksum_after": s["checksum_after"], "started_at": _ts(s["started_at"]),
            "finished_at": _ts(s["finished_at"]), "attempts": s["attempts"],
            "last_error": s["error"], "residue": s["residue"],
        })
    erased = sum(1 for s in steps if s["action"] != "retain" and s["status"] == "verified")
    retained = sum(1 for s in steps if s["action"] == "retain")
    residue = sum(s["residue"] or 0 for s in steps)
    body = {
        "version": SIGNED_FIELDS_VERSION, "request_id": request_id,
        "status": request["status"], "policy": plan["policy"], "plan_hash": request["plan_hash"],
        "principal": request["principal"], "dry_run": request["dry_run"],
        "created_at": _ts(request["created_at"]), "updated_at": _ts(request["updated_at"]),
        "error": request["error"], "subjects": plan["subjects"], "steps": steps,
        "needs_review": [n["dataset"] for n in plan["review"]],
        "summary": (f"erased from {erased} datasets, {retained} retained under legal basis, "
                    f"{residue} residue" + ("" if request["status"] == "complete"
                                            else f" (request {request['status']})")),
    }
    body["cascade"] = cascade_steps(catalog, request_id.removeprefix(WORKER_PREFIX))
    if job.removeprefix(WORKER_PREFIX) != request_id.removeprefix(WORKER_PREFIX):
        body["batch"] = job  # applied with other requests that arrived together
    return {**body, "signature": sign(catalog, body)}


def job_of(catalog: Catalog, request_id: str) -> str:
    """The journal request a request was applied in: a CLI request's own id, or, for a worker
    request (`ID` or `worker:ID`), the worker's journal request or batch it was applied in.
    An id that names both a CLI request and a worker request is refused as ambiguous."""
    worker_id = request_id.removeprefix(WORKER_PREFIX)
    with catalog.connect() as con:
        rows = con.execute("SELECT batch_id FROM worker_requests WHERE request_id = ?",
                           [worker_id]).fetchall()
    if not rows:
        return request_id
    job = rows[0][0] or worker_id  # requests of an older optout ran under their own id
    if job != request_id and not request_id.startswith(WORKER_PREFIX) and \
            Journal(catalog).find(request_id) is not None:
        raise ReportError(f"'{request_id}' names a request made with the CLI and a worker "
                          f"request: say `{WORKER_PREFIX}{request_id}` for the worker's")
    return job


def sign(catalog: Catalog, body: dict[str, Any]) -> str:
    """HMAC-SHA256 of the canonical JSON of a report body."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(catalog.hasher().secret, text.encode(), hashlib.sha256).hexdigest()


def verify_report(catalog: Catalog, path: str, caller: Principal | None = None
                  ) -> dict[str, Any]:
    """The report at `path` if its signature is right; raises ReportError otherwise."""
    authorize(catalog, caller, "report verify", {"file": path})
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a readable JSON report: {exc}") from exc
    if not isinstance(data, dict) or "signature" not in data:
        raise ReportError(f"{path}: not a signed optout report")
    body = {k: v for k, v in data.items() if k != "signature"}
    if not hmac.compare_digest(sign(catalog, body), str(data["signature"])):
        raise ReportError(f"{path}: signature does not match: the report was altered (or "
                          "signed under another catalog's secret)")
    return data


def _ts(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    out = [f"# Erasure report {report['request_id']}", "",
           f"- status: **{report['status']}**", f"- policy: {report['policy']['name']}",
           f"- plan hash: `{report['plan_hash']}`", f"- by {report['principal']}, "
           f"{report['created_at']} → {report['updated_at']}",
           "- subjects: " + ", ".join(f"{s['key']} `{s['hash'][:12]}…`"
                                       for s in report["subjects"]), "",
           f"**{report['summary']}**", "",
           "| dataset | action | rows before | after | changed | residue | attempts | "
           "checksum before → after |", "|---|---|---|---|---|---|---|---|"]
    for s in report["steps"]:
        out.append(f"| {s['dataset']} | {s['action']} | {s['rows_before']} | {s['rows_after']} "
                   f"| {s['rows_changed']} | {s['residue']} | {s['attempts']} | "
                   f"`{s['checksum_before']}` → `{s['checksum_after']}` |")
    if report.get("cascade"):
        out += ["", "| cascade target | kind | outcome | attempts | detail |", "|---|---|---|---|---|"]
        out += [f"| {c['target']} | {c['kind']} | {c['status']} | {c['attempts']} | "
                f"{c['detail'] or c['last_error'] or ''} |" for c in report["cascade"]]
    out += ["", f"signature: `{report['signature']}`"]
    return "\n".join(out) + "\n"


def report_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    e = html.escape
    rows = "".join(
        f"<tr><td><strong>{e(s['dataset'])}</strong><br><code>{e(s['location'])}</code></td>"
        f"<td>{e(s['action'])}</td><td>{s['rows_before']}</td><td>{s['rows_after']}</td>"
        f"<td>{s['rows_changed']}</td><td>{s['residue']}</td><td>{s['attempts']}</td>"
        f"<td><code>{e(str(s['checksum_before']))}</code> → "
        f"<code>{e(str(s['checksum_after']))}</code></td>"
        f"<td>{e(s['legal_basis'] or '')}</td></tr>" for s in report["steps"])
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Erasure report "
            f"{e(report['request_id'])}</title><style>body{{font:15px/1.5 system-ui,sans-serif;"
            "max-width:76rem;margin:2rem auto;padding:0 1rem}table{border-collapse:collapse;"
            "width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;"
            "vertical-align:top}code{font-size:12px}</style></head><body>"
            f"<h1>Erasure report {e(report['request_id'])}</h1>"
            f"<p>Status <strong>{e(report['status'])}</strong>; policy "
            f"{e(report['policy']['name'])}; by {e(report['principal'])}, "
            f"{e(str(report['created_at']))} → {e(str(report['updated_at']))}.</p>"
            f"<p id='summary'><strong>{e(report['summary'])}</strong></p><table><tr>"
            "<th>dataset</th><th>action</th><th>rows before</th><th>after</th><th>changed</th>"
            "<th>residue</th><th>attempts</th><th>checksum</th><th>legal basis</th></tr>"
            f"{rows}</table>{_cascade_html(report)}<p>Signature <code>{e(report['signature'])}</code></p>"
            "</body></html>\n")


def _cascade_html(report: dict[str, Any]) -> str:
    e = html.escape
    if not report.get("cascade"):
        return ""
    rows = "".join(f"<tr><td>{e(c['target'])}</td><td>{e(c['kind'])}</td><td>{e(c['status'])}"
                   f"</td><td>{c['attempts']}</td><td>{e(c['detail'] or c['last_error'] or '')}"
                   "</td></tr>" for c in report["cascade"])
    return ("<h2>Cascade</h2><table><tr><th>target</th><th>kind</th><th>outcome</th>"
            f"<th>attempts</th><th>detail</th></tr>{rows}</table>")
