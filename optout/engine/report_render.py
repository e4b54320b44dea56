"""The signed erasure report for people: Markdown and one self-contained HTML page. Readers of
the report dict (`optout/engine/erasure_report.py`); they add nothing it does not say. What needs a
person comes first; counts a step does not have (nothing was changed, or a view that is only
read) are said in words, never shown as empty numbers."""

from __future__ import annotations

import html
from typing import Any

from optout.engine import markdown as md
from optout.engine.erasure_report import COMMITTED

#: how many subjects' hashes a rendered report lists (one subject's part: `--subject`)
SHOWN = 5


def _count(step: dict[str, Any], key: str) -> str:
    if step[key] is not None:
        return str(step[key])
    if step["kind"] == "view":
        return "view (read only)"
    if step["status"] == "retained":
        return "kept"
    return "not changed"


def _residue(step: dict[str, Any]) -> str:
    return "not read back" if step["residue"] is None else str(step["residue"])


def _checksums(step: dict[str, Any]) -> str:
    if step["status"] not in COMMITTED or not step["checksum_after"]:
        return "—"
    return f"{step['checksum_before']} → {step['checksum_after']}"


def _rows(report: dict[str, Any]) -> list[list[str]]:
    return [[s["dataset"], s["action"], s["status"], _count(s, "rows_before"),
             _count(s, "rows_after"), _count(s, "rows_changed"), _residue(s),
             str(s["attempts"]), _checksums(s), s["last_error"] or ""]
            for s in report["steps"]]


HEAD = ["dataset", "action", "status", "rows before", "after", "changed", "residue", "attempts",
        "checksum before → after", "error"]


def report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    out = [f"# Erasure report {report['request_id']}", "",
           f"**{report['status']}**: {md.text(report['summary'])}", ""]
    if report.get("next_action"):
        out += [f"Next: {md.text(report['next_action'])}", ""]
    if report["needs_review"]:
        out += ["## May still hold the subject (not changed)", ""]
        out += [f"- **{md.text(n['dataset'])}** ({md.code(n['location'])}): "
                f"{md.text(n['reason'])}" for n in report["needs_review"]] + [""]
    out += ["## Request", "", f"- policy: {report['policy']['name']}",
            f"- plan hash: `{report['plan_hash']}`",
            f"- by {report['principal']}, {report['created_at']} → {report['updated_at']}",
            f"- subjects: {len(report['subjects'])} (" + ", ".join(
                f"{s['key']} `{s['hash'][:12]}…`" for s in report["subjects"][:SHOWN])
            + (f", … one subject's part: `optout report {report['request_id']} --subject "
               "KEY=VALUE`" if len(report["subjects"]) > SHOWN else "") + ")"]
    if report.get("reerases"):
        out.append("- erases again the subjects of requests " + ", ".join(
            md.code(r) for r in report["reerases"]) + " (found again by the erasure ledger)")
    if report.get("reerased_by"):
        out.append("- its subjects were found again and erased again by requests " + ", ".join(
            md.code(r) for r in report["reerased_by"]))
    out += ["", "## Datasets", "",
            "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    out += ["| " + " | ".join(md.text(c) for c in row) + " |" for row in _rows(report)]
    if report.get("cascade"):
        out += ["", "## Cascade", "", "| target | kind | outcome | attempts | detail |",
                "|---|---|---|---|---|"]
        out += [f"| {md.text(c['target'])} | {c['kind']} | {c['status']} | {c['attempts']} | "
                f"{md.text(c['detail'] or c['last_error'] or '')} |" for c in report["cascade"]]
    if report.get("physical"):
        out += ["", "## Physical erasure", ""]
        for p in report["physical"]:
            out += [f"### {md.text(p['store'])} ({p['format']}): {p['status']}", ""]
            out += [f"- rewritten: {md.text(d)}" for d in p["rewritten"]]
            out += [f"- read raw: {md.code(r['file'])}: {r['hits']} occurrences of the subject"
                    for r in p["read"]]
            if p["read"]:
                out.append("- searched for: " + (", ".join(p["searched_for"]) or
                                                 "nothing searchable as text"))
            out += [f"- not reachable: {md.text(u)}" for u in p["not_reachable"]]
            out += [f"- outside optout's reach: {md.text(o)}" for o in p["outside_reach"]]
            if p["error"]:
                out.append(f"- last error: {md.text(p['error'])}")
            out.append("")
    if report.get("backups"):
        out += ["", "## Backups that may still hold the subject", ""]
        out += [f"- **{md.text(b['name'])}** ({b['kind']}, {md.code(b['location'])}): until "
                f"{b['may_hold_until']} ({b['retention_days']} days of retention); a restore "
                "is checked with `optout restore-check`" for b in report["backups"]]
    out += ["", f"signature: `{report['signature']}`"]
    return "\n".join(out) + "\n"


_CSS = ("body{font:15px/1.5 system-ui,sans-serif;max-width:80rem;margin:2rem auto;padding:0 "
        "1rem}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;"
        "padding:.3rem .5rem;text-align:left;vertical-align:top}code{font-size:12px}"
        ".review{background:#fff8c5;border:1px solid #d4a72c;padding:.6rem 1rem}"
        ".next{background:#ddf4ff;border:1px solid #54aeff;padding:.6rem 1rem}")


def report_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (inline CSS, no scripts)."""
    e = html.escape
    review = ""
    if report["needs_review"]:
        items = "".join(f"<li><strong>{e(n['dataset'])}</strong> <code>{e(n['location'])}"
                        f"</code>: {e(n['reason'])}</li>" for n in report["needs_review"])
        review = (f"<section class='review' id='review'><h2>May still hold the subject (not "
                  f"changed)</h2><ul>{items}</ul></section>")
    nxt = (f"<p class='next' id='next'>Next: {e(report['next_action'])}</p>"
           if report.get("next_action") else "")
    rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                   for row in _rows(report))
    cascade = ""
    if report.get("cascade"):
        body = "".join(f"<tr><td>{e(c['target'])}</td><td>{e(c['kind'])}</td><td>"
                       f"{e(c['status'])}</td><td>{c['attempts']}</td><td>"
                       f"{e(c['detail'] or c['last_error'] or '')}</td></tr>"
                       for c in report["cascade"])
        cascade = ("<h2>Cascade</h2><table><tr><th>target</th><th>kind</th><th>outcome</th>"
                   f"<th>attempts</th><th>detail</th></tr>{body}</table>")
    physical = ""
    for p in report.get("physical", []):
        items = ([f"rewritten: {e(d)}" for d in p["rewritten"]]
                 + [f"read raw: <code>{e(r['file'])}</code>: {r['hits']} occurrences"
                    for r in p["read"]]
                 + [f"not reachable: {e(u)}" for u in p["not_reachable"]]
                 + [f"outside optout's reach: {e(o)}" for o in p["outside_reach"]])
        physical += (f"<h3>{e(p['store'])} ({e(p['format'])}): {e(p['status'])}</h3><ul>"
                     + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
    if physical:
        cascade += f"<h2 id='physical'>Physical erasure</h2>{physical}"
    if report.get("backups"):
        cascade += ("<h2 id='backups'>Backups that may still hold the subject</h2><ul>" + "".join(
            f"<li><strong>{e(b['name'])}</strong> ({e(b['kind'])}, <code>{e(b['location'])}"
            f"</code>): until {e(b['may_hold_until'])}</li>" for b in report["backups"])
            + "</ul>")
    if report.get("reerases"):
        nxt += ("<p id='reerases'>Erases again the subjects of requests "
                + ", ".join(f"<code>{e(r)}</code>" for r in report["reerases"]) + "</p>")
    if report.get("reerased_by"):
        nxt += ("<p id='reerased-by'>Its subjects were found again and erased again by "
                "requests " + ", ".join(f"<code>{e(r)}</code>" for r in report["reerased_by"])
                + "</p>")
    subjects = f"{len(report['subjects'])} (" + ", ".join(
        f"{e(s['key'])} <code>{e(s['hash'][:12])}…</code>"
        for s in report["subjects"][:SHOWN]) + (
        f", … one subject's part: <code>optout report {e(report['request_id'])} --subject "
        "KEY=VALUE</code>" if len(report["subjects"]) > SHOWN else "") + ")"
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Erasure report "
            f"{e(report['request_id'])}</title><style>{_CSS}</style></head><body>"
            f"<h1>Erasure report {e(report['request_id'])}</h1>"
            f"<p id='summary'>Status <strong id='status'>{e(report['status'])}</strong>: "
            f"{e(report['summary'])}</p>{nxt}{review}"
            f"<p>Policy {e(report['policy']['name'])}; plan <code>{e(report['plan_hash'])}"
            f"</code>; by {e(report['principal'])}, {e(str(report['created_at']))} → "
            f"{e(str(report['updated_at']))}; subjects {subjects}.</p>"
            "<h2>Datasets</h2><table id='steps'><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in HEAD) + f"</tr>{rows}</table>{cascade}"
            f"<p>Signature <code>{e(report['signature'])}</code></p></body></html>\n")
