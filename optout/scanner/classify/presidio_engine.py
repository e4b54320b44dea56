"""Presidio, set up to run offline: an explicit spaCy NLP engine and recognizers that never
reach for the network. Built once per process and shared."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import tldextract
import yaml
from presidio_analyzer import EntityRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpEngine, NlpEngineProvider, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer, PhoneRecognizer

from optout.model.errors import ConfigError
from optout.scanner.classify.settings import DEFAULT_MODEL

LANGUAGE = "en"
#: regions the phone recognizer parses national-format numbers for (Presidio's plus Europe)
PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "IL", "IN", "CA", "BR")
#: our own recognizers, in Presidio's YAML recognizer format
BUILTIN_RECOGNIZERS = Path(__file__).with_name("recognizers.yaml")

log = logging.getLogger("optout.scanner")

# Presidio and spaCy log at WARNING for things that are expected here (languages without
# recognizers, the no-op engine); they would drown the scan's own output.
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

# The suffix list ships inside tldextract; with no URLs it is never fetched.
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer, validating domains against tldextract's bundled list."""

    def validate_result(self, pattern_text: str) -> bool:
        return _OFFLINE_TLD(pattern_text).fqdn != ""


@dataclass(frozen=True)
class PresidioSetup:
    """The NLP engine and the recognizers, split by whether they need the NLP engine."""

    nlp_engine: NlpEngine
    model: str | None  # None: no spaCy model, the no-op engine
    pattern_recognizers: tuple[EntityRecognizer, ...]
    ner_recognizers: tuple[EntityRecognizer, ...]

    @property
    def entities(self) -> frozenset[str]:
        """Every entity some recognizer can report."""
        out: set[str] = set()
        for r in self.pattern_recognizers + self.ner_recognizers:
            out.update(r.supported_entities)
        return frozenset(out)


def model_installed(model: str) -> bool:
    """True when the spaCy model package can be imported."""
    return importlib.util.find_spec(model) is not None


def build_nlp_engine(model: str | None) -> NlpEngine:
    """A spaCy NLP engine for `model`; Presidio's no-op engine (patterns only) without one."""
    if not model or not model_installed(model):
        return NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "no_op",
                "models": [{"lang_code": LANGUAGE, "model_name": "no_op"}],
            }
        ).create_engine()
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": LANGUAGE, "model_name": model}],
            "ner_model_configuration": {
                "labels_to_ignore": [
                    "CARDINAL",
                    "EVENT",
                    "LANGUAGE",
                    "LAW",
                    "MONEY",
                    "ORDINAL",
                    "PERCENT",
                    "PRODUCT",
                    "QUANTITY",
                    "WORK_OF_ART",
                    "DATE",
                    "TIME",
                ],
            },
        }
    )
    return provider.create_engine()


def _load_yaml_recognizers(registry: RecognizerRegistry, path: Path) -> None:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read recognizers: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("recognizers"), list):
        raise ConfigError(f"{path}: expected a top-level 'recognizers' list (Presidio's format)")
    for i, entry in enumerate(data["recognizers"]):
        try:
            registry.add_pattern_recognizer_from_dict(entry)
        except Exception as exc:
            raise ConfigError(f"{path}: recognizers[{i}]: {exc}") from exc


@lru_cache(maxsize=4)
def presidio_setup(
    model: str | None = DEFAULT_MODEL, extra_recognizers: tuple[str, ...] = ()
) -> PresidioSetup:
    """The shared Presidio setup for a model and a set of user recognizer files."""
    nlp_engine = build_nlp_engine(model)
    has_ner = isinstance(nlp_engine, SpacyNlpEngine)
    if model and not has_ner:
        log.warning(
            "spaCy model %r is not installed: classifying with pattern recognizers "
            "only (no names or places from NER)",
            model,
        )
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=nlp_engine)
    registry.remove_recognizer("EmailRecognizer")
    registry.remove_recognizer("PhoneRecognizer")
    registry.add_recognizer(OfflineEmailRecognizer())
    registry.add_recognizer(PhoneRecognizer(supported_regions=PHONE_REGIONS))
    _load_yaml_recognizers(registry, BUILTIN_RECOGNIZERS)
    for path in extra_recognizers:
        _load_yaml_recognizers(registry, Path(path))
    patterns = tuple(
        r for r in registry.recognizers if not _needs_nlp(r) and LANGUAGE in _languages(r)
    )
    ner = tuple(r for r in registry.recognizers if _needs_nlp(r)) if has_ner else ()
    for recognizer in ner:  # companies: an employer is personal beside a person
        if "ORGANIZATION" not in recognizer.supported_entities:
            recognizer.supported_entities.append("ORGANIZATION")
    return PresidioSetup(nlp_engine, model if has_ner else None, patterns, ner)


def _needs_nlp(recognizer: EntityRecognizer) -> bool:
    return type(recognizer).__name__ in {
        "SpacyRecognizer",
        "StanzaRecognizer",
        "TransformersRecognizer",
    }


def _languages(recognizer: EntityRecognizer) -> set[str]:
    return {recognizer.supported_language}


__all__ = [
    "DEFAULT_MODEL",
    "PresidioSetup",
    "model_installed",
    "presidio_setup",
]
