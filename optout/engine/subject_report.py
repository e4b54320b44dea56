"""One subject's part of a request's report (`optout report ID --subject KEY=VALUE`): at
100,000 subjects the report itself says what happened to the batch; this says, for one of
them, whether the request named her, what she resolved to, and what the request did to the
datasets that held her. It names her by keyed hash only, and is signed like the report."""

from __future__ import annotations

import json
from typing import Any

from optout.engine import markdown as md
from optout.engine.erasure_report import ReportError, build_report, job_of, sign
from optout.engine.journal import Journal
from optout.engine.subjects import Subject
from optout.model.plan import detail_of
from optout.scanner.access import Principal
from optout.scanner.catalog import Catalog


def subject_report(catalog: Catalog, request_id: str, subject: Subject,
                   caller: Principal | None = None) -> dict[str, Any]:
    """The part of a request's report about one subject; ReportError when the request did not
    name her (said with her keyed hash's first digits only)."""
    report = build_report(catalog, request_id, caller)
    digest = subject.digest(catalog.hasher())
    request = Journal(catalog).request(job_of(catalog, request_id))
    detail = detail_of(json.loads(request["plan"]), "the journal's plan")
    named = [s for s in detail.subjects if s["hash"] == digest]
    if not named:
        raise ReportError(f"request {request_id} names no subject {subject.key} "
                          f"{digest[:12]}… (among its {len(detail.subjects)} subjects)")
    resolution = detail.resolution_of(digest)
    body = {
        "request_id": request_id, "status": report["status"], "summary": report["summary"],
        "subject": named[0], "subjects_in_request": len(detail.subjects),
        "resolution": None if resolution is None else {
            "status": resolution.status, "keys": dict(resolution.keys),
            "learned": list(resolution.learned), "reason": resolution.reason},
        "steps": [{k: s[k] for k in ("dataset", "location", "action", "status", "rows_changed",
                                     "residue")} for s in report["steps"]],
        "needs_review": report["needs_review"], "report_signature": report["signature"],
    }
    return {**body, "signature": sign(catalog, body)}


def subject_markdown(part: dict[str, Any]) -> str:
    """One subject's part as Markdown."""
    s = part["subject"]
    out = [f"# Subject {s['key']} `{s['hash'][:12]}…` in request {part['request_id']}", "",
           f"**{part['status']}**: {md.text(part['summary'])}", "",
           f"One of the request's {part['subjects_in_request']} subjects. Rows are counted per "
           "dataset for the whole request.", ""]
    r = part["resolution"]
    if r is None:
        out += ["- resolution: none (a subject under legal hold is not planned)", ""]
    else:
        keys = ", ".join(f"{md.text(d)} {n}" for d, n in r["keys"].items()) or "none"
        out += [f"- resolution: **{r['status']}**; keys: {keys}"]
        if r["reason"]:
            out.append(f"- stopped: {md.text(r['reason'])}")
        out += [f"- {md.text(w)}" for w in r["learned"]] + [""]
    if part["steps"]:
        out += ["## Datasets the request changed", "", "| dataset | action | status | rows "
                "changed (request) | residue |", "|---|---|---|---:|---:|"]
        out += [f"| {md.text(t['dataset'])} | {t['action']} | {t['status']} | "
                f"{'—' if t['rows_changed'] is None else t['rows_changed']} | "
                f"{'not read back' if t['residue'] is None else t['residue']} |"
                for t in part["steps"]] + [""]
    if part["needs_review"]:
        out += ["## May still hold the request's subjects (not changed)", ""]
        out += [f"- **{md.text(n['dataset'])}**: {md.text(n['reason'])}"
                for n in part["needs_review"]] + [""]
    out.append(f"Signature `{part['signature']}` (of this part; the report's is "
               f"`{part['report_signature'][:16]}…`).")
    return "\n".join(out) + "\n"
