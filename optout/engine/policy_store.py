"""The policy store: the policies of this deployment, kept in the catalog.

An admin adds a policy (`optout policy add FILE`: its text and digest, sealed under the
catalog key, audited); the policies shipped with optout (`policies/` of the installation) are
in the store too, unless the catalog holds one of the same name. A plan names a stored policy
(by name, or by a file whose content is a stored policy's) and records its digest; approve
and apply read the policy from the store again. A caller's own YAML (`approvals: 0`, no
retention rule) is not a policy of this deployment, whoever's working directory it is in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from optout.engine.policy import Policy, PolicyError, load_policy, policy_from_text
from optout.model.plan import ErasurePlan
from optout.scanner.access.principals import has_principals
from optout.scanner.catalog import Catalog
from optout.scanner.catalog.seal import read, seal

#: the policies shipped with optout (part of the installation, like its code)
SHIPPED = Path(__file__).resolve().parents[2] / "policies"
#: how a plan names a policy of the store (its `policy.path`)
PREFIX = "store:"


@dataclass(frozen=True)
class StoredPolicy:
    """One policy of the store: where it came from, and the policy."""

    policy: Policy
    origin: str  # `catalog` (added by an admin) or `shipped`
    added_by: str
    added_at: str


def add_policy(catalog: Catalog, path: str, by: str) -> Policy:
    """Validate a policy file and store it under its `name` (a newer version of a name
    replaces the older one for new plans). The caller must be an admin."""
    policy = load_policy(path)
    text = Path(path).read_text(encoding="utf-8")
    with catalog.connect() as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO stored_policies VALUES (?, ?, ?, ?, ?, NULL)",
                    [policy.name, policy.digest, text, by,
                     dt.datetime.now(dt.UTC).replace(tzinfo=None)])
        seal(con, catalog.secret(), "stored_policies", "mac IS NULL")
        con.execute("COMMIT")
    return policy


def stored_policies(catalog: Catalog) -> dict[str, StoredPolicy]:
    """The current policy of every name: the catalog's newest, else the shipped one."""
    out: dict[str, StoredPolicy] = {}
    if SHIPPED.is_dir():
        for path in sorted(SHIPPED.glob("*.yaml")):
            policy = load_policy(path)
            out[policy.name] = StoredPolicy(policy, "shipped", "optout", "")
    with catalog.connect() as con:
        rows = read(con, catalog.secret(), "stored_policies", order="ORDER BY added_at")
    for row in rows:
        policy = policy_from_text(row["body"], f"stored policy {row['name']}")
        if policy.digest != row["digest"] or policy.name != row["name"]:
            raise PolicyError(f"stored policy {row['name']}: its text does not match its "
                              "digest; refused")
        out[policy.name] = StoredPolicy(policy, "catalog", row["added_by"],
                                        f"{row['added_at']:%Y-%m-%d %H:%M}")
    return out


def stored_policy(catalog: Catalog, spec: str) -> Policy:
    """The stored policy a caller names: a name (`gdpr-erasure`), or a file whose content is
    a stored policy's (`policies/gdpr-erasure.yaml`); anything else is refused."""
    store = stored_policies(catalog)
    if "/" not in spec and not spec.endswith((".yaml", ".yml")):
        if spec not in store:
            raise PolicyError(f"policy {spec}: not in this deployment's policy store (it has: "
                              f"{', '.join(sorted(store)) or 'none'}); an admin adds one with "
                              "`optout policy add FILE`")
        return store[spec].policy
    given = load_policy(spec)
    found = store.get(given.name)
    if found is None or found.policy.digest != given.digest:
        raise PolicyError(f"policy {spec}: not a policy of this deployment (its content is not "
                          "the stored policy of that name); name a stored policy, e.g. --policy "
                          "gdpr-erasure, or an admin adds it with `optout policy add FILE`")
    return found.policy


def is_current(catalog: Catalog, policy: Policy) -> bool:
    """True when `policy` (by digest) is the store's current policy of its name."""
    found = stored_policies(catalog).get(policy.name)
    return found is not None and found.policy.digest == policy.digest


def store_ref(policy: Policy) -> str:
    """How a plan names a policy of the store (its `policy.path`)."""
    return PREFIX + policy.name


def policy_of_plan(catalog: Catalog, plan: ErasurePlan) -> Policy:
    """The policy a plan was made under, as it is now: the store's (a catalog with principals,
    or a plan naming the store), else the file an embedded caller planned under; PolicyError
    when it changed or went since."""
    path = plan.policy.get("path", "")
    if path.startswith(PREFIX) or has_principals(catalog):
        return plan_policy(catalog, plan)
    policy = load_policy(path)
    if policy.digest != plan.policy.get("digest"):
        raise PolicyError(f"policy {plan.policy.get('name')} ({path}) changed since the plan "
                          "was made: plan again")
    return policy


def plan_policy(catalog: Catalog, plan: ErasurePlan) -> Policy:
    """The stored policy a plan was made under, as the store holds it now; PolicyError when
    the store's policy of that name changed or went since (the plan must be made again)."""
    name, digest = plan.policy.get("name", ""), plan.policy.get("digest", "")
    found = stored_policies(catalog).get(name)
    if found is None:
        raise PolicyError(f"policy {name} of the plan is not in this deployment's policy store")
    if found.policy.digest != digest:
        raise PolicyError(f"policy {name} changed in the policy store since the plan was made "
                          "(or the plan was made under another policy of that name): plan again")
    return found.policy
