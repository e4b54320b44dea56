"""The deployment's configuration: written into the catalog by an admin, read from there by
every command.

Whoever makes a plan must not choose what apply obeys (the dbt command it runs, the identity
links and bounds that decide who the subject is, Spark's settings). So the configuration that
decides anything lives in the catalog, sealed under the catalog key (`optout config set FILE`,
admin only, audited), and a caller's own `optout.yaml` (or `OPTOUT_CONFIG`) may only set what
concerns their own scans: `scan.sample_rows` and `scan.seed`. Anything else in it is an error
naming the key, never silently ignored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from optout.model.errors import ConfigError
from optout.model.yamlfile import line_of, parse_validated, read_bounded
from optout.scanner.catalog import Catalog
from optout.scanner.catalog.seal import read, seal
from optout.scanner.config import DEFAULT_FILE, Config, load_config

#: what a caller's local config may set: the sample of their own scans
LOCAL_KEYS = ("scan.sample_rows", "scan.seed")


class _LocalScan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_rows: int | None = Field(None, ge=1, le=1_000_000)
    seed: int | None = None


class LocalConfig(BaseModel):
    """A caller's own config file: only what narrows their own scans."""

    model_config = ConfigDict(extra="forbid")

    scan: _LocalScan = Field(default_factory=_LocalScan)


def load_local(path: str | None) -> LocalConfig:
    """The caller's config at `path` (else `./optout.yaml` if present). A key the deployment
    sets is an error naming it and the line."""
    if path is None:
        if not Path(DEFAULT_FILE).exists():
            return LocalConfig()
        path = DEFAULT_FILE
    text = read_bounded(path, ConfigError, "config")
    try:
        node, data = yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError:
        data, node = None, None
    if isinstance(data, dict):
        for key, value in data.items():
            inner = value.keys() if key == "scan" and isinstance(value, dict) else [None]
            for sub in inner:
                name = f"{key}.{sub}" if sub is not None else str(key)
                if name not in LOCAL_KEYS:
                    loc = [key] if sub is None else [key, sub]
                    raise ConfigError(
                        f"{path}: line {line_of(node, loc)}: {name}: only the deployment's "
                        "configuration sets this (an admin runs `optout config set FILE`); a "
                        f"local config may set {' and '.join(LOCAL_KEYS)}")
    return parse_validated(text, path, LocalConfig, ConfigError)


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def set_deployment_config(catalog: Catalog, path: str, by: str) -> tuple[Config, str]:
    """Validate the config file at `path` and make it the deployment's (relative paths in it
    are kept as absolute ones); returns it and its digest. The caller must be an admin."""
    config = load_config(path)
    return config, store_deployment_config(catalog, config, by)


def store_deployment_config(catalog: Catalog, config: Config, by: str) -> str:
    """Make a validated configuration the deployment's; its digest. The caller must be an
    admin (`optout config set`, or a link accepted with `optout review`)."""
    config = Config.model_validate(config.model_dump())
    body = config.model_dump_json()
    digest = _digest(body)
    with catalog.connect() as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO deployment_configs VALUES (?, ?, ?, ?, NULL)",
                    [digest, body, by, dt.datetime.now(dt.UTC).replace(tzinfo=None)])
        seal(con, catalog.secret(), "deployment_configs", "mac IS NULL")
        con.execute("COMMIT")
    return digest


def deployment_config(catalog: Catalog) -> tuple[Config, str | None]:
    """The deployment's configuration (the newest an admin set) and its digest; defaults
    (and None) when no admin set one. A row written outside optout is refused."""
    with catalog.connect() as con:
        rows = read(con, catalog.secret(), "deployment_configs", order="ORDER BY set_at")
    if not rows:
        return Config(), None
    newest = rows[-1]
    if _digest(newest["body"]) != newest["digest"]:
        raise ConfigError("deployment_configs: the stored configuration does not match its "
                          "digest; refused")
    return Config.model_validate(json.loads(newest["body"])), newest["digest"]


def effective_config(catalog: Catalog, local_path: str | None) -> Config:
    """What a command runs with: the deployment's configuration, with the caller's own scan
    sample (`scan.sample_rows`, `scan.seed`) from their local config."""
    local = load_local(local_path)
    config, _ = deployment_config(catalog)
    if local.scan.sample_rows is not None:
        config.scan.sample_rows = local.scan.sample_rows
    if local.scan.seed is not None:
        config.scan.seed = local.scan.seed
    return config
