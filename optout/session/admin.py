"""The session's operations on the deployment: principals and tokens, producer keys, the
configuration and the policy store, and the audit log."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from optout.engine.policy import Policy
from optout.engine.policy_store import StoredPolicy, add_policy, stored_policies
from optout.model.errors import ScannerError
from optout.scanner.access import Principal, audit, principals
from optout.scanner.config import Config
from optout.scanner.deployment import deployment_config, set_deployment_config
from optout.session.base import SessionBase
from optout.session.operations import Operation, holds


@dataclass(frozen=True)
class AuditCheck:
    """What `audit verify` read: the entries of an intact chain, and the sealed records."""

    entries: int
    records: dict[str, int]


class AdminOperations(SessionBase):
    """Principals, tokens, configuration, policies, and the audit log."""

    def add_user(self, name: str, roles: list[str]) -> list[str]:
        """Add a principal; returns its roles in the table's order."""
        with self.operation(Operation.USER_ADD, {"name": name, "roles": roles}) as call:
            principals.add_principal(self.catalog, name, list(roles), call.who.name)
            return principals.check_roles(list(roles))

    def users(self) -> list[tuple[str, list[str], dt.datetime, str]]:
        """Every principal: name, roles, created, created by."""
        with self.operation(Operation.USER_LIST):
            return principals.list_principals(self.catalog)

    def create_token(self, principal: str, days: float | None = None) -> tuple[str, str]:
        """A new token for a principal (id, token), shown once; it expires after `days`
        (None: the default 90; 0: never)."""
        with self.operation(Operation.TOKEN_CREATE, {"principal": principal, "days": days}):
            return principals.create_token(
                self.catalog, principal,
                principals.DEFAULT_EXPIRY_DAYS if days is None else (days or None))

    def revoke_token(self, token_id: str) -> None:
        with self.operation(Operation.TOKEN_REVOKE, {"token_id": token_id}):
            principals.revoke_token(self.catalog, token_id)

    def tokens(self) -> list[tuple]:
        """Every token: id, principal, created, expires, revoked (never the token)."""
        with self.operation(Operation.TOKEN_LIST):
            return principals.list_tokens(self.catalog)

    def producer_key(self, principal: str) -> bytes:
        """The key `principal` signs worker requests with; it must be allowed to submit them."""
        with self.operation(Operation.PRODUCER_KEY, {"principal": principal}):
            roles = {n: r for n, r, _, _ in principals.list_principals(self.catalog)}
            found = roles.get(principal)
            if found is None or not holds(Principal(principal, frozenset(found)),
                                          "requester"):
                raise ScannerError(f"no principal {principal!r} with the requester role "
                                   "(`optout user add NAME --role requester`)")
            return principals.producer_key(self.catalog, principal)

    def set_config(self, path: str) -> str:
        """Make the file at `path` the deployment's configuration; returns its digest."""
        with self.operation(Operation.CONFIG_SET, {"file": path}) as call:
            return set_deployment_config(self.catalog, path, call.who.name)[1]

    def deployment_config(self) -> tuple[Config, str | None]:
        """The deployment's configuration and its digest (None: defaults)."""
        with self.operation(Operation.CONFIG_SHOW):
            return deployment_config(self.catalog)

    def add_policy(self, path: str) -> Policy:
        """Store a policy file under its name."""
        with self.operation(Operation.POLICY_ADD, {"file": path}) as call:
            return add_policy(self.catalog, path, call.who.name)

    def policies(self) -> dict[str, StoredPolicy]:
        """The current policy of every name."""
        with self.operation(Operation.POLICY_LIST):
            return stored_policies(self.catalog)

    def policy(self, name: str) -> StoredPolicy:
        """One stored policy by name."""
        with self.operation(Operation.POLICY_SHOW, {"name": name}):
            found = stored_policies(self.catalog).get(name)
            if found is None:
                raise ScannerError(f"no stored policy {name!r} (`optout policy list`)")
            return found

    def verify_audit(self) -> AuditCheck:
        """Check the audit chain and the seals of principals, tokens, approvals, plans and
        the journal; raises naming the first broken one."""
        with self.operation(Operation.AUDIT_VERIFY):
            return AuditCheck(audit.verify(self.catalog), audit.verify_records(self.catalog))

    def audit_entries(self, since: dt.datetime | None = None) -> list[audit.Entry]:
        """The audit log's entries (since a UTC time)."""
        with self.operation(Operation.AUDIT_EXPORT, {"since": str(since) if since else None}):
            return list(audit.entries(self.catalog, since))

