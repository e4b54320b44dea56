"""Policies: which identifiers a request may name, and what happens to a subject's data where.

A policy is YAML (see docs/policies.md), validated when loaded: an unknown key, a wrong type
or a `retain` without `legal_basis` is an error naming the file, the key and the line.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from optout.engine import EngineError
from optout.model.yamlfile import load_validated, parse_validated

ROW_ACTIONS = ("delete_rows", "retain", "recompute")
COLUMN_ACTIONS = ("null", "hash", "mask", "generalize", "redact")
Action = Literal["delete_rows", "null", "hash", "mask", "generalize", "redact", "recompute",
                 "retain"]
Derivation = Literal["copied", "transformed", "aggregated", "filter"]


class PolicyError(EngineError):
    """A policy file is missing or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Sensitivity = Literal["special_category", "financial", "identifier", "contact", "other"]
Category = Literal["religion", "ethnic_origin", "nationality", "political_opinion",
                   "sexual_orientation", "trade_union", "health", "biometric", "genetic"]


class Match(_Strict):
    """What a rule applies to; every field given must hold (none given: every dataset)."""

    datasets: list[str] = Field(default_factory=list, description="dataset name globs")
    tags: list[str] = Field(default_factory=list, description="any of these dataset tags")
    entities: list[str] = Field(default_factory=list, description="holds any of these entities")
    columns: list[str] = Field(default_factory=list, description="has a column matching a glob")
    derivation: list[Derivation] = Field(default_factory=list,
                                         description="derived from its sources this way")
    free_text: bool | None = Field(None, description="the subject appears only in free text")
    sensitivity: list[Sensitivity] = Field(
        default_factory=list, description="holds a column of any of these sensitivities")
    categories: list[Category] = Field(
        default_factory=list, description="holds a column of any of these GDPR Art. 9 "
                                          "special categories")


class Anonymize(_Strict):
    """Column changes made to rows that are kept (`retain`)."""

    action: Literal["null", "hash", "mask", "generalize"]
    entities: list[str] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)
    keep_last: int = Field(4, ge=0, le=32)


class Rule(_Strict):
    """One rule: where it applies, the action, and its parameters."""

    name: str
    match: Match = Field(default_factory=Match)
    action: Action
    entities: list[str] = Field(default_factory=list, description="columns a column action changes")
    columns: list[str] = Field(default_factory=list, description="column globs it changes")
    keep_last: int = Field(4, ge=0, le=32, description="mask: characters kept")
    generalize_to: Literal["year", "prefix", "band"] = "year"
    prefix_length: int = Field(3, ge=1, le=10)
    band_width: int = Field(10, ge=1, le=100)
    per_entity: dict[str, Literal["null", "hash", "mask", "generalize", "redact"]] = Field(
        default_factory=dict, description="column action per entity, overriding `action`")
    legal_basis: str | None = None
    anonymize: Anonymize | None = None

    @model_validator(mode="after")
    def _legal_basis(self) -> Rule:
        if self.action == "retain" and not (self.legal_basis or "").strip():
            raise ValueError("a retain rule needs a legal_basis")
        if self.anonymize and self.action != "retain":
            raise ValueError("anonymize goes with action retain")
        return self


class Exemption(_Strict):
    """A legal hold: a dataset (name glob) or a subject (keyed hash) that is not touched."""

    dataset: str | None = None
    subject_hash: str | None = None
    reason: str

    @model_validator(mode="after")
    def _one_target(self) -> Exemption:
        if (self.dataset is None) == (self.subject_hash is None):
            raise ValueError("an exemption names exactly one of dataset or subject_hash")
        return self


class Policy(_Strict):
    """A whole policy file."""

    name: str
    description: str = ""
    identifiers: list[str] = Field(min_length=1)
    default_action: Action = "delete_rows"
    approvals: int = Field(1, ge=0, le=5)  # 0: applied without approval (the worker)
    #: how long an approval holds: a number and a unit (m, h, d); an older one counts for nothing
    approval_ttl: str = Field("7d", pattern=r"^[0-9]{1,5}(\.[0-9]{1,3})?[mhd]$")
    rules: list[Rule] = Field(default_factory=list)
    exemptions: list[Exemption] = Field(default_factory=list)
    #: after commit, the erased values leave the stores' bytes too (docs/physical.md):
    #: `required` blocks the request until every reachable byte reads clean
    physical: Literal["required", "best-effort", "off"] = "required"
    #: dataset name globs of database tables that cannot take an exclusive lock: vacuumed in
    #: place instead of rewritten (freed space may hold bytes until it is reused)
    lock_friendly: list[str] = Field(default_factory=list)
    #: a subject the erasure ledger finds again (a restored backup: `optout restore-check`,
    #: `optout ledger sweep`, the worker's datasets.changed) is erased again under this
    #: policy after `approve` (its approvals), or at once (`auto`, an admin's opt-in)
    reerase: Literal["approve", "auto"] = "approve"
    #: a Delta or Iceberg table's versions before the erasure: purged (the default), or kept
    #: for their retention (`retain`: the report names each and the day it ends, and
    #: `optout ledger sweep` purges them then)
    table_history: Literal["purge", "retain"] = "purge"
    digest: str = ""

    def rule_for(self, dataset: str, tags: set[str], entities: set[str], columns: list[str],
                 derivation: str | None, free_text_only: bool,
                 sensitivities: frozenset[str] = frozenset(),
                 categories: frozenset[str] = frozenset()) -> Rule | None:
        """The first rule that applies to a dataset, or None (the default action applies).
        `sensitivities` and `categories`: those of the dataset's PII columns."""
        for rule in self.rules:
            m = rule.match
            if m.datasets and not any(fnmatch.fnmatchcase(dataset, g) for g in m.datasets):
                continue
            if m.tags and not tags.intersection(m.tags):
                continue
            if m.entities and not entities.intersection(m.entities):
                continue
            if m.columns and not any(fnmatch.fnmatchcase(c, g) for c in columns
                                     for g in m.columns):
                continue
            if m.derivation and derivation not in m.derivation:
                continue
            if m.free_text is not None and m.free_text != free_text_only:
                continue
            if m.sensitivity and not sensitivities.intersection(m.sensitivity):
                continue
            if m.categories and not categories.intersection(m.categories):
                continue
            return rule
        return None

    @property
    def approval_window(self) -> dt.timedelta:
        """`approval_ttl` as a duration."""
        unit = {"m": "minutes", "h": "hours", "d": "days"}[self.approval_ttl[-1]]
        return dt.timedelta(**{unit: float(self.approval_ttl[:-1])})

    def exemption_for(self, dataset: str) -> Exemption | None:
        """The legal hold on a dataset, if any."""
        return next((e for e in self.exemptions
                     if e.dataset and fnmatch.fnmatchcase(dataset, e.dataset)), None)


def load_policy(path: str | Path) -> Policy:
    """Load and validate a policy file."""
    policy, text = load_validated(path, Policy, PolicyError, "policy")
    return policy.model_copy(update={"digest": hashlib.sha256(text.encode()).hexdigest()})


def policy_from_text(text: str, origin: str) -> Policy:
    """Validate a policy's text (a stored policy's); `origin` names it in errors."""
    policy = parse_validated(text, origin, Policy, PolicyError)
    return policy.model_copy(update={"digest": hashlib.sha256(text.encode()).hexdigest()})
