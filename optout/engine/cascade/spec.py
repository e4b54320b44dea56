"""The targets file (`targets.yaml`), validated with pydantic:

    cascade:
      - {name: sessions, kind: redis, url: "redis://127.0.0.1:6379/0",
         keys: ["user:{customer_id}:*", "session:{email_hash}"]}
      - {name: people-search, kind: tantivy, path: ./search, field: email, identifier: email}
      - {name: crm, kind: webhook, url: "https://crm.example/erase",
         secret_env: CRM_WEBHOOK_SECRET, identifiers: [email]}

      - {name: events, kind: jetstream, url: "nats://127.0.0.1:4222", stream: APP_EVENTS,
         identifiers: [email], store_dir: /var/lib/nats-server}

Templates and identifiers name the request's identifier keys: `{customer_id}` is the value the
request carries, exactly as it carries it (trimmed; `values: raw`, the default) or in a named
normalization the system stores it in (`values: lower` / `email` / `phone` / `code`): for
`user_id=u-42a`, `raw` fills `user:u-42a:*` and never `user:U42A:*`, another user. Redis keys
are glob-escaped in SCAN patterns. `{email_hash}` is the keyed hash (HMAC-SHA256 under the
catalog secret, hex) of the value normalized as optout hashes it. A
webhook receives keyed hashes of every identifier, and raw values only of those listed under
`identifiers` (what that integration is entitled to). A JetStream target deletes every message
of its stream whose subject, headers or data hold one of the listed identifiers' values, each
with the erasing delete (the server overwrites it), never a purge.

`physical` (Redis, Tantivy, JetStream; `required` by default) makes the deletion physical and
reads the system's files raw where optout can reach them: Redis rewrites its append-only file
and snapshot, Tantivy's segments that held the documents are rewritten and collected,
JetStream's messages are overwritten (`store_dir`, the server's storage folder, lets optout
read the stream's files); `off` deletes only logically (the report says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from optout.engine import EngineError
from optout.model.yamlfile import load_validated


class CascadeError(EngineError):
    """A bad targets file, or a cascade target that cannot be reached or resolved."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")


#: how a target's templates and terms receive the request's values
Values = Literal["raw", "lower", "email", "phone", "code"]
Physical = Literal["required", "best-effort", "off"]


class RedisSpec(_Strict):
    kind: Literal["redis"]
    values: Values = "raw"
    url: str = "redis://127.0.0.1:6379/0"
    keys: list[str] = Field(min_length=1)
    physical: Physical = "required"


class TantivySpec(_Strict):
    kind: Literal["tantivy"]
    values: Values = "raw"
    path: str
    field: str  # a raw-tokenized field holding the identifier
    identifier: str  # which of the request's identifiers is the term
    physical: Physical = "required"


class JetStreamSpec(_Strict):
    kind: Literal["jetstream"]
    values: Values = "raw"
    url: str = Field("nats://127.0.0.1:4222", pattern=r"^(nats|tls)://")
    stream: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    identifiers: list[str] = Field(min_length=1)  # whose values mark a message as the subject's
    #: the server's storage folder (`-sd`), when optout runs beside it and may read it
    store_dir: str | None = None
    physical: Physical = "required"


class WebhookSpec(_Strict):
    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret_env: str  # environment variable holding the HMAC signing key
    identifiers: list[str] = Field(default_factory=list)  # sent raw; the rest as keyed hashes
    timeout: float = Field(5.0, gt=0, le=120)
    retries: int = Field(8, ge=1, le=50)
    backoff: float = Field(0.2, gt=0, le=60)


Spec = Annotated[RedisSpec | TantivySpec | WebhookSpec | JetStreamSpec,
                 Field(discriminator="kind")]


class TargetsFile(_Strict):
    name: str = "targets"
    cascade: list[Spec] = Field(default_factory=list)


def load_targets(path: str | Path | None) -> list[Spec]:
    """The cascade targets of a targets file (none without one)."""
    if path is None:
        return []
    spec, _ = load_validated(path, TargetsFile, CascadeError, "the targets file")
    names = [t.name for t in spec.cascade]
    if len(set(names)) != len(names):
        raise CascadeError(f"{path}: two cascade targets share a name")
    return spec.cascade
