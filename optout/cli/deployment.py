"""The deployment's commands: `optout config set|show` and `optout policy add|list|show`.

The configuration and the policy store live in the catalog, sealed under its key; an admin
changes them (audited), anyone with the viewer role reads them. They register on the `optout`
group of `optout.cli.main`, which imports this module."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click
import yaml

from optout.cli.base import cli, format_option, say, session_command
from optout.session.operations import Operation

if TYPE_CHECKING:
    from optout.session import Session


@cli.group("config")
def config_group() -> None:
    """The deployment's configuration, kept in the catalog (an admin sets it)."""


@config_group.command("set")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@session_command(Operation.CONFIG_SET)
def config_set(session: Session, file: str) -> None:
    """Make FILE (an optout.yaml) the deployment's configuration: identity links and bounds,
    dataset tags, the dbt rebuild, the engine and Spark settings, the scan's classifier.
    Plans made under the previous one are refused by apply."""
    digest = session.set_config(file)
    say(f"deployment configuration set from {file} (digest {digest[:12]}); plans made under "
        "the previous one must be made again")


@config_group.command("show")
@session_command(Operation.CONFIG_SHOW)
def config_show(session: Session) -> None:
    """Print the deployment's configuration (YAML) and its digest."""
    config, digest = session.deployment_config()
    say(f"# digest: {digest or '(none set: defaults)'}")
    say(yaml.safe_dump(json.loads(config.model_dump_json()), sort_keys=True).rstrip("\n"))


@cli.group("policy")
def policy_group() -> None:
    """The deployment's policy store, kept in the catalog (an admin adds policies)."""


@policy_group.command("add")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@session_command(Operation.POLICY_ADD)
def policy_add(session: Session, file: str) -> None:
    """Store the policy FILE under its name (a newer version replaces the older one for new
    plans; plans made under the older one are refused by apply)."""
    policy = session.add_policy(file)
    click.echo(f"policy {policy.name} stored (digest {policy.digest[:12]}, {policy.approvals} "
               "approval(s) required)")


@policy_group.command("list")
@format_option
@session_command(Operation.POLICY_LIST)
def policy_list(session: Session, fmt: str) -> None:
    """List the stored policies: name, digest, approvals, where it came from."""
    stored = sorted(session.policies().items())
    if fmt == "json":
        click.echo(json.dumps([{"name": n, "digest": f.policy.digest,
                                "approvals": f.policy.approvals, "origin": f.origin,
                                "added_by": f.added_by or None, "added_at": f.added_at or None}
                               for n, f in stored], indent=2))
        return
    for name, found in stored:
        by = f"added by {found.added_by} {found.added_at}" if found.origin == "catalog" \
            else "shipped with optout"
        click.echo(f"{name}\t{found.policy.digest[:12]}\t{found.policy.approvals} approval(s)"
                   f"\t{by}")


@policy_group.command("show")
@click.argument("name")
@session_command(Operation.POLICY_SHOW)
def policy_show(session: Session, name: str) -> None:
    """Print a stored policy (as validated, YAML)."""
    found = session.policy(name)
    data = found.policy.model_dump(mode="json", exclude={"digest"})
    click.echo(f"# {name}: digest {found.policy.digest}")
    say(yaml.safe_dump(data, sort_keys=False).rstrip("\n"))
