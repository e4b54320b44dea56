"""Renderings of a plan for people: Markdown, and a self-contained HTML page (the dry-run
report auditors read). Both are readers of the same plan object; neither computes anything."""

from __future__ import annotations

import html

from optout.engine import markdown as md
from optout.engine.plan_settings import settings_lines
from optout.model.plan import DatasetNote, ErasurePlan, PlanStep

ACTION_WORDS = {
    "delete_rows": "delete rows", "retain": "retain", "recompute": "recompute",
    "null": "set to null", "hash": "replace with keyed hash", "mask": "mask",
    "generalize": "generalize", "redact": "redact mentions",
}


def summary_line(plan: ErasurePlan) -> str:
    """One sentence: what the plan would do."""
    s = plan.summary
    changed = [f"{n} {ACTION_WORDS.get(a, a)}" for a, n in sorted(s.items())
               if a in ACTION_WORDS]
    rows = s["rows"]
    blocked = (f"CANNOT BE APPLIED: {len(plan.unexecutable)} step(s) cannot be carried out ("
               + "; ".join(f"{n.dataset}: {n.reason}" for n in plan.unexecutable[:3])
               + "). " if plan.unexecutable else "")
    return (f"{blocked}{len(plan.steps)} datasets hold the subject "
            f"({', '.join(changed) or 'none'}); "
            f"{rows} rows would be deleted; {s['needs_review']} need review"
            f"{f' (including {stopped} subjects stopped)' if (stopped := s['stopped']) else ''}; "
            f"{s['searched_no_match']} searched without a match; {s['exempt']} exempt.")


#: what the physical erasure after the commit does to a store, and what it costs
#: (bench/physical_cost.py; docs/physical.md)
PHYSICAL_WORDS = {
    "duckdb": "the database file is rewritten whole into a fresh one (about the time of "
              "copying the file; no other writer meanwhile)",
    "sqlite": "erased with secure_delete, then VACUUMed (the whole file rebuilt)",
    "postgresql": "VACUUM FULL of the touched tables (an exclusive lock on each while it is "
                  "rewritten), CHECKPOINT and a WAL switch",
}


def physical_lines(plan: ErasurePlan) -> list[str]:
    """What the physical erasure after the commit will do, per store the plan changes (the
    policy's `physical` decides whether it runs)."""
    stores: dict[tuple[str, str], list[str]] = {}
    for s in plan.steps:
        if s.kind != "view" and not (s.action == "retain" and not s.columns):
            stores.setdefault((s.format, s.location), []).append(s.dataset)
    return [f"{fmt} {', '.join(sorted(set(names)))}: "
            + PHYSICAL_WORDS.get(fmt, "already replaced by a new version; read raw")
            for (fmt, _), names in stores.items()]


def special_columns(plan: ErasurePlan) -> list[tuple[PlanStep, str, str, str]]:
    """Every special-category column (GDPR Art. 9) the plan touches: (step, column,
    category, what happens to it)."""
    return [(s, c, cat, fate) for s in plan.steps for c, cat, fate in s.special]


def special_line(plan: ErasurePlan) -> str:
    """One sentence on the special categories, or '' when the plan meets none."""
    found = special_columns(plan)
    if not found:
        return ""
    kept = [f"{s.dataset}.{c} ({cat})" for s, c, cat, fate in found if fate == "kept"]
    return (f"Special categories (GDPR Art. 9): {len(found)} column(s) in "
            f"{len({s.dataset_id for s, *_ in found})} dataset(s)"
            + (f"; KEPT IN CLEAR by the policy: {', '.join(kept)}." if kept else
               "; none kept in clear."))


def _rows(step: PlanStep) -> str:
    return "derived" if step.rows is None else str(step.rows)


def _columns(step: PlanStep) -> str:
    return ", ".join(f"{c}: {ACTION_WORDS.get(a, a)}" for c, a in step.columns) or "—"


def _md_columns(step: PlanStep) -> str:
    return md.text(_columns(step))


def to_markdown(plan: ErasurePlan) -> str:
    """The plan as Markdown."""
    out = [f"# Erasure plan {plan.request_id}", "",
           f"- policy: **{plan.policy['name']}** (`{plan.policy['digest'][:12]}`)",
           f"- created: {plan.created_at} by {plan.created_by}",
           f"- subjects: {len(plan.subjects)} (" + ", ".join(
               f"{s['key']} `{s['hash'][:12]}…`" for s in plan.subjects[:5])
           + (", …" if len(plan.subjects) > 5 else "") + ")",
           f"- catalog state: `{plan.catalog_state[:16]}`",
           f"- content hash: `{plan.content_hash}`", "", "## Summary", "",
           summary_line(plan), *(["", f"**{md.text(special_line(plan))}**"]
                                  if special_line(plan) else []), "", "## Steps", "",
           "| dataset | location | action | rows | columns | rule |",
           "|---|---|---|---|---|---|"]
    for s in plan.steps:
        out.append(f"| {md.text(s.dataset)} | {md.code(s.location)} | "
                   f"{ACTION_WORDS.get(s.action, s.action)} | {_rows(s)} | {_md_columns(s)} | "
                   f"{md.text(s.rule)} |")
    for s in plan.steps:
        out += ["", f"### {md.text(s.dataset)}", ""]
        out += [f"- matched by: {md.text(m)}" for m in s.match]
        out += [f"- reached: {md.text(v)}" for v in s.via]
        if s.legal_basis:
            out.append(f"- legal basis: {md.text(s.legal_basis)}")
        out += [f"- **special category** {md.text(cat)}: {md.code(c)}, {md.text(fate)}"
                for c, cat, fate in s.special]
    if physical_lines(plan):
        out += ["", "## Physical erasure after the commit (unless the policy says off)", ""]
        out += [f"- {md.text(line)}" for line in physical_lines(plan)]
    out += ["", "## Configuration in force", "",
            *(f"- {md.text(line)}" for line in settings_lines(plan.settings))]
    if special_columns(plan):
        out += ["", "## Special categories (GDPR Art. 9)", "",
                "| dataset | column | category | what happens |", "|---|---|---|---|"]
        out += [f"| {md.text(s.dataset)} | {md.code(c)} | {md.text(cat)} | "
                f"{'**KEPT IN CLEAR**' if fate == 'kept' else md.text(fate)} |"
                for s, c, cat, fate in special_columns(plan)]
    out += ["", "## Who the subjects resolved to", ""]
    for r in plan.resolution[:50]:
        keys = ", ".join(f"{n} in {d}" for d, n in r.keys) or "nothing"
        out.append(f"- `{r.subject[:12]}…` **{r.status}**: {md.text(keys)}"
                   + (f" — {md.text(r.reason)}" if r.reason else ""))
        out += [f"  - learned {md.text(w)}" for w in r.learned]
    if len(plan.resolution) > 50:
        out.append(f"- … and {len(plan.resolution) - 50} more (in the JSON plan)")
    for title, notes in (("Cannot be applied", plan.unexecutable),
                         ("Needs review", plan.review), ("Exempt", plan.exempt),
                         ("Searched, no match", plan.searched)):
        if title == "Cannot be applied" and not notes:
            continue
        out += ["", f"## {title}", ""]
        out += [f"- **{md.text(n.dataset)}** ({md.code(n.location)}): {md.text(n.reason)}"
                for n in notes] or ["- none"]
    return "\n".join(out) + "\n"


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;margin:2rem auto;
max-width:72rem;padding:0 1rem}h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2rem;
border-bottom:1px solid #d0d7de;padding-bottom:.3rem}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#f6f8fa}code{font:13px ui-monospace,monospace;background:#f6f8fa;padding:0 .2rem}
.meta{color:#59636e}.summary{background:#ddf4ff;border:1px solid #54aeff;padding:.8rem 1rem;
border-radius:6px}.action{font-weight:600}.delete_rows{color:#cf222e}.retain{color:#1a7f37}
.review{background:#fff8c5}.special{background:#ffebe9;border:1px solid #ff8182;
padding:.8rem 1rem;border-radius:6px}.kept{color:#cf222e;font-weight:700}ul.details{margin:.2rem 0;padding-left:1.1rem;color:#59636e}
"""


def to_html(plan: ErasurePlan) -> str:
    """The plan as one self-contained HTML page (inline CSS, no scripts, no external assets)."""
    e = html.escape
    rows = []
    for s in plan.steps:
        details = "".join(f"<li>matched by {e(m)}</li>" for m in s.match)
        details += "".join(f"<li>reached: {e(v)}</li>" for v in s.via)
        if s.legal_basis:
            details += f"<li>legal basis: {e(s.legal_basis)}</li>"
        details += "".join(f"<li class=kept>special category {e(cat)}: {e(c)}, {e(fate)}</li>"
                           for c, cat, fate in s.special)
        rows.append(
            f"<tr><td><strong>{e(s.dataset)}</strong><br><code>{e(s.location)}</code>"
            f"<ul class=details>{details}</ul></td><td class='action {e(s.action)}'>"
            f"{e(ACTION_WORDS.get(s.action, s.action))}</td><td>{e(_rows(s))}</td>"
            f"<td>{e(_columns(s))}</td><td>{e(s.rule)}</td></tr>")

    def notes(items: tuple[DatasetNote, ...], cls: str = "") -> str:
        if not items:
            return "<p>None.</p>"
        body = "".join(f"<tr class='{cls}'><td><strong>{e(n.dataset)}</strong></td>"
                       f"<td><code>{e(n.location)}</code></td><td>{e(n.reason)}</td></tr>"
                       for n in items)
        return f"<table><tr><th>dataset</th><th>location</th><th>why</th></tr>{body}</table>"

    resolved = "".join(
        f"<tr class='{'review' if r.status == 'stopped' else ''}'><td><code>{e(r.subject[:12])}"
        f"…</code></td><td>{e(r.status)}</td><td>"
        f"{e(', '.join(f'{n} in {d}' for d, n in r.keys) or 'nothing')}"
        f"<ul class=details>{''.join(f'<li>learned {e(w)}</li>' for w in r.learned)}</ul>"
        f"{e(r.reason or '')}</td></tr>" for r in plan.resolution[:50])
    subjects = ", ".join(f"{e(s['key'])} <code>{e(s['hash'][:12])}…</code>"
                         for s in plan.subjects[:5]) + (" …" if len(plan.subjects) > 5 else "")
    special = "".join(
        f"<tr class='{'review' if fate == 'kept' else ''}'><td>{e(s.dataset)}</td>"
        f"<td><code>{e(c)}</code></td><td>{e(cat)}</td><td class='{'kept' if fate == 'kept' else ''}'>"
        f"{e('KEPT IN CLEAR' if fate == 'kept' else fate)}</td></tr>"
        for s, c, cat, fate in special_columns(plan))
    special_html = (
        f"<h2>Special categories (GDPR Art. 9)</h2><p class=special id=special>"
        f"{e(special_line(plan))}</p><table id=special-columns><tr><th>dataset</th>"
        f"<th>column</th><th>category</th><th>what happens</th></tr>{special}</table>"
        if special else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Erasure plan {e(plan.request_id)}</title><style>{_CSS}</style></head>
<body>
<h1>Erasure plan {e(plan.request_id)}</h1>
<p class="meta">Dry run: nothing has been changed. Policy <strong>{e(plan.policy['name'])}</strong>
(<code>{e(plan.policy['digest'][:12])}</code>), created {e(plan.created_at)} by
{e(plan.created_by)}; {len(plan.subjects)} subject(s): {subjects}.
Catalog state <code>{e(plan.catalog_state[:16])}</code>; content hash
<code>{e(plan.content_hash)}</code>.</p>
<h2>Summary</h2>
<p class="summary" id="summary">{e(summary_line(plan))}</p>
{special_html}
<h2>Steps</h2>
<table id="steps"><tr><th>dataset</th><th>action</th><th>rows</th><th>columns</th><th>rule</th></tr>
{''.join(rows)}</table>
<h2>Configuration in force</h2>
<ul id="settings">{''.join(f"<li>{e(line)}</li>" for line in settings_lines(plan.settings))}</ul>
<h2>Who the subjects resolved to</h2>
<table id="resolution"><tr><th>subject</th><th>status</th><th>keys, and where they came from</th>
</tr>{resolved}</table>
{f"<h2>Cannot be applied</h2>{notes(plan.unexecutable, 'review')}" if plan.unexecutable else ""}
<h2>Needs review</h2>
{notes(plan.review, 'review')}
<h2>Exempt</h2>
{notes(plan.exempt)}
<h2>Searched, no match</h2>
{notes(plan.searched)}
</body></html>
"""
