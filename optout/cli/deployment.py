"""The deployment's commands: `optout config set|show` and `optout policy add|list|show`.

The configuration and the policy store live in the catalog, sealed under its key; an admin
changes them (audited), anyone with the viewer role reads them. They register on the `optout`
group of `optout.cli.main`, which imports this module."""

from __future__ import annotations

import json

import click
import yaml

from optout.cli.base import Context, cli, errors_to_exit, guarded
from optout.engine.policy_store import add_policy, stored_policies
from optout.model.redaction import printable
from optout.scanner.deployment import deployment_config, set_deployment_config


@cli.group("config")
def config_group() -> None:
    """The deployment's configuration, kept in the catalog (an admin sets it)."""


@config_group.command("set")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.pass_obj
@errors_to_exit
@guarded("config set")
def config_set(obj: Context, file: str) -> None:
    """Make FILE (an optout.yaml) the deployment's configuration: identity links and bounds,
    dataset tags, the dbt rebuild, the engine and Spark settings, the scan's classifier.
    Plans made under the previous one are refused by apply."""
    _, digest = set_deployment_config(obj.catalog, file, obj.caller.name)
    click.echo(f"deployment configuration set from {printable(file)} (digest {digest[:12]}); "
               "plans made under the previous one must be made again")


@config_group.command("show")
@click.pass_obj
@errors_to_exit
@guarded("config show")
def config_show(obj: Context) -> None:
    """Print the deployment's configuration (YAML) and its digest."""
    config, digest = deployment_config(obj.catalog)
    click.echo(f"# digest: {digest or '(none set: defaults)'}")
    click.echo(printable(yaml.safe_dump(json.loads(config.model_dump_json()),
                                        sort_keys=True)), nl=False)


@cli.group("policy")
def policy_group() -> None:
    """The deployment's policy store, kept in the catalog (an admin adds policies)."""


@policy_group.command("add")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.pass_obj
@errors_to_exit
@guarded("policy add")
def policy_add(obj: Context, file: str) -> None:
    """Store the policy FILE under its name (a newer version replaces the older one for new
    plans; plans made under the older one are refused by apply)."""
    policy = add_policy(obj.catalog, file, obj.caller.name)
    click.echo(f"policy {policy.name} stored (digest {policy.digest[:12]}, {policy.approvals} "
               "approval(s) required)")


@policy_group.command("list")
@click.pass_obj
@errors_to_exit
@guarded("policy list")
def policy_list(obj: Context) -> None:
    """List the stored policies: name, digest, approvals, where it came from."""
    for name, found in sorted(stored_policies(obj.catalog).items()):
        by = f"added by {found.added_by} {found.added_at}" if found.origin == "catalog" \
            else "shipped with optout"
        click.echo(f"{name}\t{found.policy.digest[:12]}\t{found.policy.approvals} approval(s)"
                   f"\t{by}")


@policy_group.command("show")
@click.argument("name")
@click.pass_obj
@errors_to_exit
@guarded("policy show")
def policy_show(obj: Context, name: str) -> None:
    """Print a stored policy (as validated, YAML)."""
    found = stored_policies(obj.catalog).get(name)
    if found is None:
        raise click.ClickException(f"no stored policy {name!r} (`optout policy list`)")
    data = found.policy.model_dump(mode="json", exclude={"digest"})
    click.echo(f"# {name}: digest {found.policy.digest}")
    click.echo(printable(yaml.safe_dump(data, sort_keys=False)), nl=False)
