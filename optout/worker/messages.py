"""The messages the worker reads and writes, validated with pydantic.

Request (`optout.requests`), JSON:
    {"request_id": "r-123",                      # 1-64 of [A-Za-z0-9._-]; idempotency key
     "identifiers": {"email": "ana@example.org", "customer_id": "42"},  # one subject
     "policy": "gdpr-erasure"}                   # a policy name in the worker's policies dir
Dataset change (`optout.datasets.changed`): {"location": "/data/crm/customers.parquet"}
Status event (`optout.status`): {"request_id", "status", "at", "detail"}; status is one of
received, planned, awaiting_approval, applied, failed, blocked, needs_review (subject
resolution stopped the subject: a person decides; nothing was erased for it), denied (an
approver rejected its plan, with the reason).
A message that does not validate goes to `optout.requests.dead` with the reason, its valid
request id and policy, and its identifiers as keyed hashes (never raw).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from optout.model.redaction import redact
from optout.model.secret import KeyedHash

REQUESTS, CHANGES, STATUS, DEAD = "requests", "datasets.changed", "status", "requests.dead"


def subject(namespace: str, kind: str) -> str:
    """A subject name under a namespace (`optout` by default: `optout.requests`, ...)."""
    return f"{namespace}.{kind}"
Status = Literal["received", "awaiting_verification", "verified", "planned",
                 "awaiting_approval", "approved", "applied", "failed", "blocked", "needs_review", "denied",
                 "revoked"]


_ID = r"^[A-Za-z0-9._-]{1,64}$"
_POLICY = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class MessageError(ValueError):
    """A message that is not a valid request (its reason goes to the dead-letter subject)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErasureRequest(_Strict):
    """One subject's opt-out or erasure request."""

    request_id: str = Field(pattern=_ID)
    identifiers: dict[str, str] = Field(min_length=1)
    #: a policy's name: the file `<name>.yaml` in the worker's policies folder (no paths)
    policy: str = Field(pattern=_POLICY)

    def subjects(self) -> list[str]:
        """The identifiers as KEY=VALUE subject strings."""
        return [f"{k}={v}" for k, v in sorted(self.identifiers.items())]


class DatasetChanged(_Strict):
    """A pipeline wrote a dataset."""

    location: str = Field(min_length=1, max_length=4096)


def parse(model: type[_Strict], data: bytes) -> _Strict:
    """A message as the model, or MessageError with a one-line reason."""
    try:
        return model.model_validate(json.loads(data))
    except json.JSONDecodeError as exc:
        raise MessageError(f"not JSON: {exc}") from None
    except RecursionError:  # `[[[[...` 100 kB deep: a poison message must not kill the worker
        raise MessageError("not JSON this worker reads: nested too deeply") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(message)"
        raise MessageError(f"{where}: {first['msg']}") from None
    except ValueError as exc:  # undecodable bytes
        raise MessageError(f"not JSON: {type(exc).__name__}") from None


def dead_letter(data: bytes, reason: Exception, hasher: KeyedHash) -> bytes:
    """A dead letter: the reason (redacted) and what identifies the message — its request id
    and policy when they are valid, its identifiers as keyed hashes, its size and sha256 —
    never its raw identifiers."""
    out: dict[str, object] = {"reason": redact(str(reason), hasher), "bytes": len(data),
                              "sha256": hashlib.sha256(data).hexdigest()}
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        for key, pattern in (("request_id", _ID), ("policy", _POLICY)):
            if isinstance(body.get(key), str) and re.fullmatch(pattern, body[key]):
                out[key] = body[key]
        if isinstance(body.get("identifiers"), dict):
            out["identifiers"] = {
                str(k)[:40]: f"hmac:{hasher(str(v).strip().lower())[:32]}"
                for k, v in list(body["identifiers"].items())[:20]}
    return json.dumps(out, sort_keys=True).encode()


def status_event(request_id: str, status: Status, detail: str = "") -> bytes:
    """A status event's body."""
    return json.dumps({"request_id": request_id, "status": status, "detail": detail,
                       "at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")}
                      ).encode()
