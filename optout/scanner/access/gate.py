"""Who may run what: every command names the role it needs, and every call — allowed or
denied — goes into the audit log before data is touched.

A catalog that `optout init` never initialized has no principals: the Python library may
use it directly (embedded use, tests), while the command line refuses it. Once it has
principals, every entry point needs an authenticated caller with the role.
"""

from __future__ import annotations

from typing import Any

from optout.model.errors import ScannerError
from optout.scanner.access import audit
from optout.scanner.access.principals import Principal, has_principals
from optout.scanner.catalog import Catalog

#: the role each command needs (admins hold every role)
COMMAND_ROLES = {
    "scan": "scanner", "lineage add": "scanner", "lineage add-sql": "scanner",
    "lineage add-dbt": "scanner", "lineage add-openlineage": "scanner",
    "catalog list": "viewer", "catalog show": "viewer", "catalog export": "viewer",
    "graph": "viewer", "lineage show": "viewer",
    "plan": "requester", "approve": "approver",
    "apply": "operator", "resume": "operator",
    "report": "auditor", "report verify": "auditor",
    "audit verify": "auditor", "audit export": "auditor",
    "user add": "admin", "user list": "admin",
    "token create": "admin", "token revoke": "admin", "token list": "admin",
    "producer-key": "admin",
    "worker": "operator", "request submit": "requester",
    "config set": "admin", "config show": "viewer", "review": "requester",
    "policy add": "admin", "policy list": "viewer", "policy show": "viewer",
}
EMBEDDED = Principal("(embedded)", frozenset({"embedded"}))


class AccessDenied(ScannerError):
    """The caller lacks the role a command needs (CLI exit status 3)."""


def authorize(catalog: Catalog, caller: Principal | None, command: str,
              args: dict[str, Any] | None = None) -> Principal:
    """Check the caller may run `command`; log the call either way; raise AccessDenied."""
    role = COMMAND_ROLES[command]
    if caller is None:
        if not has_principals(catalog):
            audit.append(catalog, EMBEDDED.name, EMBEDDED.roles, command, args or {}, "allowed",
                         "catalog without principals (embedded use)")
            return EMBEDDED
        audit.append(catalog, "(anonymous)", (), command, args or {}, "denied", "no caller")
        raise AccessDenied(f"{command}: this catalog has principals; an authenticated caller "
                           "is needed (OPTOUT_TOKEN)")
    if not caller.holds(role):
        audit.append(catalog, caller.name, caller.roles, command, args or {}, "denied",
                     f"needs role {role}")
        raise AccessDenied(f"{command}: {caller.name} does not hold the role '{role}' "
                           f"(holds: {', '.join(sorted(caller.roles))})")
    audit.append(catalog, caller.name, caller.roles, command, args or {}, "allowed")
    return caller
