"""The report of an applied request: what was erased where and when, proven, and signed.

It is built from the journal, holds no raw identifiers (subjects are keyed hashes), and carries
an HMAC-SHA256 signature under the catalog secret over its canonical JSON, so
`optout report verify FILE` tells whether anyone altered it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from optout.engine import EngineError
from optout.engine.cascade.run import steps as cascade_steps
from optout.engine.journal import RECORDED, WORKER_PREFIX, Journal
from optout.engine.physical import physical_steps
from optout.engine.verification import strength
from optout.model.plan import DatasetNote, ErasurePlan, detail_of
from optout.scanner.access import Principal, acting
from optout.scanner.catalog import Catalog
from optout.scanner.deployment import deployment_config

SIGNED_FIELDS_VERSION = 4  # 3: the physical-erasure section; 4: backups, re-erasure origins


class ReportError(EngineError):
    """A report file is unreadable or its signature does not match."""


def build_report(catalog: Catalog, request_id: str,
                 caller: Principal | None = None) -> dict[str, Any]:
    """The signed report of one request (by whom: see `acting`)."""
    acting(catalog, caller)
    return _report(catalog, request_id)


def outcome(catalog: Catalog, request_id: str, plan: ErasurePlan | None = None) -> str:
    """A request's status and summary line (what `apply` and `resume` print when done), the
    report's own, without signing a report of every subject. `plan`: the plan the request
    applied, already in memory (used when its content hash is the request's)."""
    journal = Journal(catalog)
    job = job_of(catalog, request_id)
    held = plan is not None
    request = journal.request(job, plan=not held)
    if held and plan.content_hash != request["plan_hash"]:
        request, held = journal.request(job), False
    planned = _planned(plan) if held else json.loads(request["plan"])
    status, summary, _, _ = _summary_of(catalog, journal, job, request, planned)
    return f"{status}; {summary}"


def _planned(plan: ErasurePlan) -> dict[str, Any]:
    """The parts of a plan in memory that a report reads, as its JSON would give them."""
    return {"steps": [{f: getattr(s, f) for f in ("kind", "rule", "legal_basis", "columns",
                                                  "rows")} for s in plan.steps],
            "review": [dataclasses.asdict(n) for n in plan.review]}


#: step statuses after which the dataset was read back for the subject
READ_BACK = ("verified", "residue")
#: step statuses of a change that is visible in the data
COMMITTED = ("committed", "verified", "residue")


def _step(s: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
    """One step of the report; counts and checksums only where the journal has them (a step
    that changed nothing has no after; a view is read, never written)."""
    return {
        "dataset": s["dataset"], "dataset_id": s["dataset_id"], "location": s["location"],
        "kind": planned.get("kind"), "action": s["action"], "rule": planned["rule"],
        "legal_basis": planned.get("legal_basis"), "columns": dict(planned["columns"]),
        "status": s["status"], "rows_before": s["rows_before"], "rows_after": s["rows_after"],
        "rows_changed": s["rows_changed"], "rows_planned": planned.get("rows"),
        "checksum_before": s["checksum_before"], "checksum_after": s["checksum_after"],
        "started_at": _ts(s["started_at"]), "finished_at": _ts(s["finished_at"]),
        "attempts": s["attempts"], "last_error": s["error"],
        "residue": s["residue"] if s["status"] in READ_BACK else None,
    }


def _summary(status: str, steps: list[dict[str, Any]], review: list[dict[str, str]],
             error: str | None) -> tuple[str, str | None]:
    """The summary line (what was proven, nothing more) and the next action, if any."""
    erased = [s for s in steps if s["action"] != "retain" and s["status"] == "verified"]
    retained = [s for s in steps if s["action"] == "retain"]
    read = [s for s in steps if s["status"] in READ_BACK]
    residue = sum(s["residue"] or 0 for s in read)
    unread = len(steps) - len(read) - sum(1 for s in retained if s["status"] == "retained")
    proven = (f"erased from {_n(len(erased), 'dataset')}, {len(retained)} retained under legal "
              f"basis; {residue} residue in the {_n(len(read), 'dataset')} read back")
    if unread:
        proven += f"; {unread} not read back"
    may_hold = ""
    left = [n for n in review if n.get("may_hold", True)]
    if left:
        rows = sum(n.get("rows") or 0 for n in left)
        may_hold = ((f"{_n(rows, 'row')} of the subject known to remain; " if rows else "")
                    + f"{_n(len(left), 'dataset')} may still hold the subject and "
                    f"{'was' if len(left) == 1 else 'were'} not changed: "
                    + "; ".join(f"{n['dataset']} ({n['reason']})" for n in left) + ". ")
    if status in ("complete", "complete_with_review", "incomplete_needs_review"):
        return may_hold + (proven[0].upper() + proven[1:] if may_hold else proven), ("a person decides on the datasets needing review"
                                   if review else None)
    if status == "rolled_back":
        return (f"failed before commit, nothing was changed: {error}",
                "fix the cause, then apply the plan again (`optout apply PLAN`)")
    if status == "dry_run":
        return "dry run: every change was prepared and checked, then rolled back", None
    done = [s["dataset"] for s in steps if s["status"] in COMMITTED]
    left = [s["dataset"] for s in steps if s["status"] not in (*COMMITTED, "retained")]
    text = (f"{status}: committed in {len(done)} of {len(steps)} datasets"
            + (f" ({', '.join(done)})" if done else "")
            + (f"; not committed: {', '.join(left)}" if left else "") + f"; {proven}"
            + (f"; last error: {error}" if error else ""))
    return text, "fix the cause, then `optout resume {rid}`" + (
        " (or, when the plan itself cannot be carried out, `optout apply --replan PLAN`)")


def _physical_summary(physical: list[dict[str, Any]]) -> str:
    """What the physical erasure proved, in a sentence (nothing when none ran)."""
    stores = [p for p in physical if p["store"] != "optout catalog"]
    if not stores:
        return ""
    by: dict[str, int] = {}
    for p in stores:
        by[p["status"]] = by.get(p["status"], 0) + 1
    if set(by) == {"off"}:
        return ("; physical erasure off by policy: the erased values may remain in the bytes "
                f"of {_n(len(stores), 'store')}")
    words = {"verified": "read raw: clean", "rewritten": "rewritten (keys are not text: not "
             "searched)", "unreachable": "not reachable from here",
             "residue": "STILL HOLD the subject in their raw bytes", "failed": "failed",
             "retrying": "not finished", "off": "off",
             "retained": "keep older versions that hold the subject until their retention ends "
             "(named below)"}
    return "; physically: " + ", ".join(f"{_n(n, 'store')} {words.get(k, k)}"
                                         for k, n in sorted(by.items()))


def _backups(catalog: Catalog, erased_at: Any) -> list[dict[str, Any]]:
    """The deployment's backup sets, each with the day its copies taken before the erasure
    are all gone (their retention after the erasure): until then they may hold the subject."""
    config, _ = deployment_config(catalog)
    if not config.backups or erased_at is None:
        return []
    day = erased_at.date() if hasattr(erased_at, "date") else dt.date.fromisoformat(
        str(erased_at)[:10])
    return [{"name": b.name, "kind": b.kind, "location": b.location,
             "retention_days": b.retention_days,
             "may_hold_until": (day + dt.timedelta(days=b.retention_days)).isoformat()}
            for b in config.backups]


def _reerased_by(catalog: Catalog, request_id: str) -> list[str]:
    """The later requests that erased this one's subjects again (a restore brought them
    back)."""
    with catalog.connect() as con:
        # Only a plan that re-erases names `reerases` (the field is left out when empty):
        # a substring test first, so the JSON of every large plan is not parsed per report.
        rows = con.execute(
            "WITH bodies AS (SELECT r.id, r.created_at, CASE WHEN r.plan::VARCHAR = ? THEN "
            "p.body ELSE r.plan::VARCHAR END AS body FROM requests r LEFT JOIN plans p ON "
            "p.content_hash = r.plan_hash), named AS MATERIALIZED (SELECT * FROM bodies WHERE "
            "contains(body, '\"reerases\"')) SELECT id FROM named WHERE list_contains(CAST("
            "json_extract(body, '$.reerases') AS VARCHAR[]), ?) ORDER BY created_at",
            [RECORDED, request_id]).fetchall()
    return [r[0] for r in rows]


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _report(catalog: Catalog, request_id: str) -> dict[str, Any]:
    journal = Journal(catalog)
    job = job_of(catalog, request_id)
    request = journal.request(job)
    plan = json.loads(request["plan"])
    _, summary, next_action, parts = _summary_of(catalog, journal, job, request, plan)
    steps, review, physical, backups = parts
    body = {
        "version": SIGNED_FIELDS_VERSION, "request_id": request_id,
        "status": request["status"], "policy": plan["policy"], "plan_hash": request["plan_hash"],
        "principal": request["principal"], "dry_run": request["dry_run"],
        "created_at": _ts(request["created_at"]), "updated_at": _ts(request["updated_at"]),
        "error": request["error"],
        "subjects": list(detail_of(plan, "the journal's plan").subjects),
        "needs_review": review,
        "steps": steps, "physical": physical, "backups": backups,
        "reerases": list(plan.get("reerases", [])),
        "reerased_by": _reerased_by(catalog, request_id), "summary": summary,
        "next_action": next_action.replace("{rid}", job) if next_action else None,
    }
    body["cascade"] = cascade_steps(catalog, request_id.removeprefix(WORKER_PREFIX))
    verified = strength(catalog, request_id.removeprefix(WORKER_PREFIX))
    if verified is not None:  # a request submitted over HTTP: how its subject was verified
        body["verification"] = verified
    if job.removeprefix(WORKER_PREFIX) != request_id.removeprefix(WORKER_PREFIX):
        body["batch"] = job  # applied with other requests that arrived together
    return {**body, "signature": sign(catalog, body)}


def _summary_of(catalog: Catalog, journal: Journal, job: str, request: dict[str, Any],
                plan: dict[str, Any]) -> tuple[str, str, str | None, tuple[list, ...]]:
    """(status, summary line, next action, (steps, review, physical, backups)) of a request
    as the journal and its plan say."""
    steps = [_step(s, plan["steps"][s["step_no"]]) for s in journal.steps(job)]
    review = [{"dataset": n["dataset"], "location": n["location"], "reason": n["reason"],
               "rows": n.get("rows"), "may_hold": DatasetNote(**n).may_hold}
              for n in plan["review"]]
    physical = physical_steps(catalog, job)
    summary, next_action = _summary(request["status"], steps, review, request["error"])
    summary += _physical_summary(physical)
    backups = _backups(catalog, request["updated_at"])
    if backups:
        summary += (f"; {_n(len(backups), 'backup set')} may hold the subject until "
                    f"{max(b['may_hold_until'] for b in backups)} (a restore is checked with "
                    "`optout restore-check`)")
    return request["status"], summary, next_action, (steps, review, physical, backups)


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
    """HMAC-SHA256 of the canonical JSON of a report body, under the report key (derived from
    the catalog secret for reports alone: never the key identifiers are hashed with)."""
    key = hmac.new(catalog.secret(), b"optout report signature v2", hashlib.sha256)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key.digest(), text.encode(), hashlib.sha256).hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when a key appears twice (readers that keep the first and
    readers that keep the last would see two different reports)."""
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise ReportError(f"the report has the key {twice!r} twice: refused")
    return dict(pairs)


def verify_report(catalog: Catalog, path: str, caller: Principal | None = None
                  ) -> dict[str, Any]:
    """The report at `path` if its signature is right; raises ReportError otherwise."""
    acting(catalog, caller)
    try:
        data = json.loads(Path(path).read_text(), object_pairs_hook=_no_duplicates)
    except (OSError, json.JSONDecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: not a readable JSON report: {type(exc).__name__}") from exc
    except ReportError as exc:
        raise ReportError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or "signature" not in data:
        raise ReportError(f"{path}: not a signed optout report")
    body = {k: v for k, v in data.items() if k != "signature"}
    if not hmac.compare_digest(sign(catalog, body), str(data["signature"])):
        raise ReportError(f"{path}: signature does not match: the report was altered (or "
                          "signed under another catalog's secret)")
    return data


def _ts(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None
