"""What a caller may ask of optout, and the role each operation needs.

Operations are the library's, whatever adapter asks (the command line, the worker, an HTTP
API): their names are the `command` field of the audit log, stable across versions. Roles
nest: every role includes `viewer`, and `admin` holds every role."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from optout.model.roles import ROLES

if TYPE_CHECKING:
    from optout.scanner.access.principals import Principal


class Operation(StrEnum):
    """Everything a session does on a caller's behalf."""

    SCAN = "scan"
    LINEAGE_ADD = "lineage add"
    LINEAGE_ADD_SQL = "lineage add-sql"
    LINEAGE_ADD_DBT = "lineage add-dbt"
    LINEAGE_ADD_OPENLINEAGE = "lineage add-openlineage"
    CATALOG_LIST = "catalog list"
    CATALOG_SHOW = "catalog show"
    CATALOG_EXPORT = "catalog export"
    GRAPH = "graph"
    LINEAGE_SHOW = "lineage show"
    PLAN = "plan"
    REVIEW = "review"
    APPROVE = "approve"
    APPLY = "apply"
    RESUME = "resume"
    REPORT = "report"
    REPORT_VERIFY = "report verify"
    AUDIT_VERIFY = "audit verify"
    AUDIT_EXPORT = "audit export"
    USER_ADD = "user add"
    USER_LIST = "user list"
    TOKEN_CREATE = "token create"
    TOKEN_REVOKE = "token revoke"
    TOKEN_LIST = "token list"
    PRODUCER_KEY = "producer-key"
    WORKER = "worker"
    REQUEST_SUBMIT = "request submit"
    REQUEST_STATUS = "request status"
    REQUEST_EXTEND = "request extend"
    REQUEST_METRICS = "requests metrics"
    SERVE = "serve"
    CONFIG_SET = "config set"
    CONFIG_SHOW = "config show"
    POLICY_ADD = "policy add"
    POLICY_LIST = "policy list"
    POLICY_SHOW = "policy show"
    RESTORE_CHECK = "restore-check"
    LEDGER_SWEEP = "ledger sweep"


#: the role each operation needs
ROLE_OF: dict[Operation, str] = {
    Operation.SCAN: "scanner", Operation.LINEAGE_ADD: "scanner",
    Operation.LINEAGE_ADD_SQL: "scanner", Operation.LINEAGE_ADD_DBT: "scanner",
    Operation.LINEAGE_ADD_OPENLINEAGE: "scanner",
    Operation.CATALOG_LIST: "viewer", Operation.CATALOG_SHOW: "viewer",
    Operation.CATALOG_EXPORT: "viewer", Operation.GRAPH: "viewer",
    Operation.LINEAGE_SHOW: "viewer", Operation.CONFIG_SHOW: "viewer",
    Operation.POLICY_LIST: "viewer", Operation.POLICY_SHOW: "viewer",
    Operation.PLAN: "requester", Operation.REVIEW: "requester",
    Operation.REQUEST_SUBMIT: "requester", Operation.REQUEST_STATUS: "viewer",
    Operation.APPROVE: "approver", Operation.REQUEST_EXTEND: "approver",
    Operation.REQUEST_METRICS: "auditor",
    Operation.APPLY: "operator", Operation.RESUME: "operator", Operation.WORKER: "operator",
    Operation.SERVE: "operator",
    # an operator's: a restore check scans only the sources named, plans the ledger's subjects
    # only, and applies at once only under a policy with `reerase: auto` (an admin's opt-in)
    Operation.RESTORE_CHECK: "operator", Operation.LEDGER_SWEEP: "operator",
    Operation.REPORT: "auditor", Operation.REPORT_VERIFY: "auditor",
    Operation.AUDIT_VERIFY: "auditor", Operation.AUDIT_EXPORT: "auditor",
    Operation.USER_ADD: "admin", Operation.USER_LIST: "admin",
    Operation.TOKEN_CREATE: "admin", Operation.TOKEN_REVOKE: "admin",
    Operation.TOKEN_LIST: "admin", Operation.PRODUCER_KEY: "admin",
    Operation.CONFIG_SET: "admin", Operation.POLICY_ADD: "admin",
}

def holds(principal: Principal, role: str) -> bool:
    """True when the principal's roles include `role`: held directly, by `admin` (which
    holds every role), or `viewer`, which every role includes."""
    roles = principal.roles
    return role in roles or "admin" in roles or (role == "viewer" and bool(roles & set(ROLES)))
