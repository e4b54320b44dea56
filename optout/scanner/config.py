"""The project config file (`optout.yaml`), validated when loaded.

A bad file is a hard error naming the file, the key and what was expected; it never falls back
to defaults silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from optout.model.errors import ConfigError
from optout.model.runtime import DUCKDB, Runtime
from optout.model.yamlfile import load_validated
from optout.scanner.classify.settings import DEFAULT_MODEL, ClassifierSettings

DEFAULT_FILE = "optout.yaml"


class ScanConfig(BaseModel):
    """The `scan:` section."""

    model_config = ConfigDict(extra="forbid")

    sample_rows: int = Field(1000, ge=1, le=1_000_000)
    seed: int = 42
    nlp_model: str | None = DEFAULT_MODEL
    entities: list[str] | None = None
    recognizers: list[str] = Field(
        default_factory=list, description="Presidio YAML recognizer files"
    )
    column_hints: dict[str, list[str]] = Field(
        default_factory=dict, description="entity → extra column-name hints"
    )
    ner_values: int = Field(200, ge=0, le=100_000)


class LinkConfig(BaseModel):
    """A link between two identifier columns, each written `dataset:column`."""

    model_config = ConfigDict(extra="forbid")

    columns: tuple[str, str] = Field(description="the two columns the link joins")

    @field_validator("columns")
    @classmethod
    def _dataset_column(cls, value: tuple[str, str]) -> tuple[str, str]:
        for ref in value:
            if ":" not in ref or not all(ref.rsplit(":", 1)):
                raise ValueError(f"'{ref}' is not dataset:column")
        return value


class IdentityConfig(BaseModel):
    """The `identity:` section: links to add, inferred links to accept or reject."""

    model_config = ConfigDict(extra="forbid")

    links: list[LinkConfig] = Field(default_factory=list)
    #: foreign keys the data does not declare (a file format without them, an export that
    #: dropped them): `[referencing dataset:column, referenced dataset:column]`, followed as a
    #: declared foreign key is (`InvoiceLine:InvoiceId` → `Invoice:InvoiceId`: a customer's
    #: invoice lines go with their invoices)
    references: list[LinkConfig] = Field(default_factory=list)
    reject: list[LinkConfig] = Field(default_factory=list)
    #: the bound on who one subject can be (see README: subject resolution)
    max_keys: int = Field(1, ge=1, le=1000, description="keys per person-key domain")
    max_emails: int = Field(3, ge=1, le=1000)
    max_phones: int = Field(3, ge=1, le=1000)


class DatasetConfig(BaseModel):
    """What the project says about one dataset (by name): its tags."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(default_factory=list)


class DbtConfig(BaseModel):
    """The `dbt:` section: how marts built by dbt are rebuilt after an erasure."""

    model_config = ConfigDict(extra="forbid")

    #: sql: the model's compiled SQL over the cleaned upstreams, inside the atomic unit;
    #: command: `dbt build --select MODEL` with the user's profile once the sources are committed
    rebuild: Literal["sql", "command"] = "sql"
    command: list[str] = Field(default_factory=lambda: ["dbt"], min_length=1, max_length=20)
    #: extra arguments for `dbt build` (`--profiles-dir`, `--target`)
    args: list[str] = Field(default_factory=list, max_length=20)
    #: run a project whose `on-run-start`/`on-run-end` or model pre/post hooks run SQL of
    #: their own (refused unless the admin allows it here)
    allow_hooks: bool = False
    #: environment variables dbt is given besides PATH, HOME, locale and DBT_* (a profile's
    #: `env_var()` names); never OPTOUT_*
    env: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("env")
    @classmethod
    def _not_optout(cls, value: list[str]) -> list[str]:
        for name in value:
            if name.upper().startswith("OPTOUT_"):
                raise ValueError(f"{name}: optout's own variables are never given to dbt")
        return value


class SparkConfig(BaseModel):
    """The `spark:` section: where the Spark engine runs and with which settings."""

    model_config = ConfigDict(extra="forbid")

    #: `local[2]`, a cluster (`spark://host:7077`, `yarn`) or Spark Connect (`sc://host`)
    master: str = Field("local[2]", min_length=1, max_length=500)
    conf: dict[str, str] = Field(default_factory=dict, description="Spark settings")


class BackupConfig(BaseModel):
    """One backup set: where copies of the data are kept and how long each is kept. optout
    cannot erase inside a backup; every erasure's report names the sets that may still hold
    the subject and until when, and a restore is checked with `optout restore-check`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    #: files (Parquet/CSV snapshots), pg_dump (dump files), database_copy (a DuckDB/SQLite
    #: copy), table_history (a Delta/Iceberg table's kept versions), other
    kind: Literal["files", "pg_dump", "database_copy", "table_history", "other"]
    location: str = Field(min_length=1, max_length=1000)
    #: days a copy is kept: a copy taken just before an erasure holds the subject that long
    retention_days: int = Field(ge=0, le=36_500)


class DrpAgentConfig(BaseModel):
    """An authorized agent of the Data Rights Protocol: its id in the DRP directory, the
    Ed25519 verify key its requests are signed with (base64), and the principal (requester
    role) its bearer tokens belong to."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    verify_key: str = Field(pattern=r"^[A-Za-z0-9+/]{43}=$")
    principal: str = Field(min_length=1, max_length=64)
    #: hosts (`host` or `host:port`) its requests' `status_callback` may name; a callback
    #: elsewhere is refused (the server never calls an address an agent merely chose)
    callback_hosts: list[str] = Field(default_factory=list, max_length=20)


class DrpConfig(BaseModel):
    """`optout serve`'s Data Rights Protocol 1.0 endpoints: this business's id in the DRP
    directory, the agents it accepts, and the stored policy each DRP action runs under."""

    model_config = ConfigDict(extra="forbid")

    business_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    agents: list[DrpAgentConfig] = Field(default_factory=list, max_length=100)
    actions: dict[Literal["deletion", "sale:opt_out"], str] = Field(
        default_factory=lambda: {"deletion": "gdpr-erasure", "sale:opt_out": "ccpa-opt-out"})
    #: seconds a request's `issued-at` may lie in the future (clock skew)
    skew_seconds: int = Field(60, ge=0, le=600)


class GpcConfig(BaseModel):
    """Global Privacy Control: a request forwarded with `Sec-GPC: 1` is an opt-out of sale
    and sharing under `policy` (none: the signal is not taken)."""

    model_config = ConfigDict(extra="forbid")

    policy: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    jurisdiction: Literal["ccpa", "gdpr"] = "ccpa"


class VerificationConfig(BaseModel):
    """Subject verification of requests submitted over HTTP: a one-time code mailed to the
    request's email, valid `ttl_seconds`, `tries` attempts; none is asked when not
    `required` (the signed report then says the request was not verified by optout)."""

    model_config = ConfigDict(extra="forbid")

    required: bool = False
    ttl_seconds: int = Field(600, ge=60, le=86_400)
    tries: int = Field(3, ge=1, le=10)
    smtp_host: str = Field("127.0.0.1", min_length=1, max_length=255)
    smtp_port: int = Field(25, ge=1, le=65_535)
    sender: str = Field("privacy@localhost", min_length=3, max_length=320)


class Config(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    scan: ScanConfig = Field(default_factory=ScanConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    #: no longer a folder: the policy store lives in the catalog (`optout policy add`)
    policies: None = None

    @field_validator("policies", mode="before")
    @classmethod
    def _no_store_folder(cls, value: object) -> None:
        if value is None:
            return None
        raise ValueError("the policy store lives in the catalog: an admin adds policies with "
                         "`optout policy add FILE`")
    datasets: dict[str, DatasetConfig] = Field(default_factory=dict)
    dbt: DbtConfig = Field(default_factory=DbtConfig)
    #: what reads and changes the data: DuckDB in this process, or Apache Spark
    engine: Literal["duckdb", "spark"] = "duckdb"
    spark: SparkConfig = Field(default_factory=SparkConfig)
    #: the deployment's backup sets (named in every erasure report, with their retention)
    backups: list[BackupConfig] = Field(default_factory=list, max_length=100)
    #: Data Rights Protocol agents and actions (`optout serve`)
    drp: DrpConfig = Field(default_factory=DrpConfig)
    #: subject verification of requests submitted over HTTP (`optout serve`)
    verification: VerificationConfig = Field(default_factory=VerificationConfig)
    #: Global Privacy Control signals forwarded to `optout serve`
    gpc: GpcConfig = Field(default_factory=GpcConfig)

    def engine_of(self, name: str | None = None) -> Runtime:
        """The engine to run on: `name` (a command-line choice), else the file's."""
        chosen = name or self.engine
        if chosen != "spark":
            return DUCKDB
        return Runtime("spark", self.spark.master, tuple(sorted(self.spark.conf.items())))

    def classifier_settings(
        self, entities: list[str] | None = None, seed: int | None = None
    ) -> ClassifierSettings:
        """Classifier settings from the file, with command-line overrides."""
        chosen = entities if entities else self.scan.entities
        return ClassifierSettings(
            model=self.scan.nlp_model,
            recognizers=tuple(self.scan.recognizers),
            entities=frozenset(e.upper() for e in chosen) if chosen else None,
            column_hints=tuple(
                sorted((k.upper(), tuple(v)) for k, v in self.scan.column_hints.items())
            ),
            ner_values=self.scan.ner_values,
            seed=self.scan.seed if seed is None else seed,
        )


def load_config(path: str | None) -> Config:
    """The config at `path`; `optout.yaml` in the working directory if present; else defaults."""
    if path is None:
        if not Path(DEFAULT_FILE).exists():
            return Config()
        path = DEFAULT_FILE
    config, _ = load_validated(path, Config, ConfigError, "config")
    base = Path(path).parent
    config.scan.recognizers = [
        str(base / r) if not Path(r).is_absolute() else r for r in config.scan.recognizers
    ]
    for r in config.scan.recognizers:
        if not Path(r).is_file():
            raise ConfigError(f"{path}: scan.recognizers: no such file {r}")
    return config
