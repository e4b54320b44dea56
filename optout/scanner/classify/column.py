"""Combining the three signals (name, value shapes, Presidio) into one finding per column."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import replace

import polars as pl
import pyarrow as pa

from optout.model.dataset import ColumnFinding, Sample
from optout.model.errors import ConfigError
from optout.scanner.classify.detect import Hits, ner_hits, pattern_hits
from optout.scanner.classify.lexicon import name_share
from optout.scanner.classify.masking import mask
from optout.scanner.classify.mentions import named
from optout.scanner.classify.names import PERSON_NOUNS, NameHint, NameHints, words
from optout.scanner.classify.presidio_engine import presidio_setup
from optout.scanner.classify.profile import ValueProfile, profile
from optout.scanner.classify.sensitivity import finish
from optout.scanner.classify.settings import ClassifierSettings
from optout.scanner.classify.vocab import (
    aba_valid,
    firm_like,
    genetic_like,
    share,
    special_category,
    template_like,
)

#: entities Presidio reports that do not make a column personal on their own (an employer is
#: personal only beside a person: the table decides, optout/scanner/classify/context.py)
NOT_PERSONAL = frozenset({"URL", "DATE_TIME", "UUID"})
#: validated or unambiguous patterns: one hit in free text is enough to flag it
STRONG = frozenset(
    {
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "IBAN_CODE",
        "US_SSN",
        "IP_ADDRESS",
        "CRYPTO",
        "UK_NHS",
        "UK_NINO",
        "ES_NIF",
        "ES_NIE",
        "IT_FISCAL_CODE",
        "PL_PESEL",
        "MAC_ADDRESS",
    }
)
#: entities that locate one person: the keys erasure looks people up by
LOCATORS = frozenset(
    {
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "US_SSN",
        "IBAN_CODE",
        "CREDIT_CARD",
        "US_PASSPORT",
        "US_DRIVER_LICENSE",
        "US_BANK_NUMBER",
        "PERSON_ID",
        "CRYPTO",
    }
)
#: Presidio's national-id entities carry a country prefix (ES_NIF, UK_NHS, IT_FISCAL_CODE)
_NATIONAL_ID = re.compile(r"^(US|UK|ES|IT|PL|SG|AU|IN|FI|KR|TH|NG|PH|ZA|SE|TR|DE|CA)_")
#: entities a number column can hold (amounts are not phone numbers)
NUMERIC_ENTITIES = frozenset({"CREDIT_CARD", "PHONE_NUMBER"})
NER_ENTITIES = frozenset({"PERSON", "LOCATION", "NRP", "ORGANIZATION"})

MIN_SCORE = 0.4  # a recognizer result below this counts only when the column name agrees
DOMINANT = 0.5  # share of values that makes an entity the column's entity
AGREES = 0.2  # share that, with a matching name, confirms the name
NAME_WEIGHT = 0.5  # how much a matching column name alone is worth
FIRMS = 0.3  # share of firm-shaped values that makes a weak `name` a firm's
#: share of a prose column's rows with a validated person's name (mentions.py) that makes it
#: PII. Calibrated on prose nobody here wrote: Pagila's film descriptions (not PII) 0.040-0.044
#: (`Mad Scientist`), Northwind's employee notes (PII) 0.222; the fixture's tickets 0.346
PROSE_NER_SHARE = 0.1
EXAMPLES = 3
#: share of a column's distinct values that are persons' names by the lexicon (lexicon.py)
#: that makes it a column of names, fitted on the corpus's tuning part (docs/benchmarks.md)
LEXICON = 0.7
LEXICON_VALUES = 2000  # the most frequent distinct values it reads


class Classifier:
    """Classifies every column of a sample."""

    def __init__(self, settings: ClassifierSettings | None = None) -> None:
        self.settings = settings or ClassifierSettings()
        self.setup = presidio_setup(self.settings.model, self.settings.recognizers)
        self.hints = NameHints({k: list(v) for k, v in self.settings.column_hints})
        # Entities a column name alone can establish count even when no recognizer reports them.
        known = self.setup.entities | self.hints.entities
        for entity in sorted(set(self.settings.entities or ()) - known):
            close = difflib.get_close_matches(entity, sorted(known), n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise ConfigError(f"Unknown entity '{entity}'.{hint}")
        self.entities = set(self.settings.entities or known)

    def classify(self, dataset: str, sample: Sample) -> list[ColumnFinding]:
        """One finding per column of the sample, in column order."""
        types = sample.column_types()
        return [
            self.classify_column(
                dataset, name, types[name], sample.table.column(name), name in sample.free_text
            )
            for name in sample.table.column_names
        ]

    def classify_column(
        self, dataset: str, name: str, type_: str, column: pa.ChunkedArray, free_text: bool = False
    ) -> ColumnFinding:
        """The finding for one column."""
        values = distinct_values(column)
        finding = ColumnFinding(
            name=name,
            type=type_,
            sample_size=len(column),
            non_null=int(values["n"].sum()),
            distinct=values.height,
        )
        hint = self.hints.hint(name, dataset)
        if hint.entity and hint.entity not in self.entities:
            hint = NameHint(None, None, hint.refutes)
        arrow_type = column.type
        if pa.types.is_integer(arrow_type):
            hint = _person_noun_key(hint, name)
        vetoed = _type_veto(arrow_type, hint)
        if vetoed:
            finding.signals = {"name": hint.matched, "patterns": [], "ner": [], "profile": {},
                               "veto": vetoed}
            return finding
        if finding.non_null == 0:
            return self._decide_without_values(finding, hint)
        prof = profile(values)
        if free_text:
            prof = replace(prof, forced_prose=True)
        if prof.key >= DOMINANT:
            hint = _person_noun_key(hint, name)
        if hint.key_of and (pa.types.is_integer(arrow_type) or prof.key >= DOMINANT
                            or prof.numeric >= DOMINANT):
            finding.signals = {"name": None, "patterns": [], "ner": [],
                               "profile": _profile_signals(prof),
                               "veto": f"a key of {hint.key_of}, not the {hint.key_of} itself"}
            return finding
        texts = values["value"].to_list()
        counts = values["n"].to_list()
        candidates = self._candidate_entities(arrow_type, prof)
        accept = {e: (0.01 if e == hint.entity else MIN_SCORE) for e in candidates}
        hits = pattern_hits(self.setup, texts, counts, candidates, accept, self.settings.seed)
        ner_share: dict[str, float] = {}
        if self._wants_ner(arrow_type, prof, hits, finding.non_null):
            ner, chosen = ner_hits(
                self.setup,
                texts,
                candidates & NER_ENTITIES,
                self.settings.ner_values,
                self.settings.seed,
            )
            chosen_total = sum(counts[i] for i in chosen) or 1
            if prof.prose and "PERSON" in ner.values:
                # in prose only validated names count (mentions.py)
                ner.values["PERSON"] &= named(texts, ner.spans)
                for i in list(ner.spans):
                    if i not in ner.values["PERSON"]:
                        ner.spans[i] = [s for s in ner.spans[i] if s[0] != "PERSON"]
                if not ner.values["PERSON"]:
                    del ner.values["PERSON"]
            for entity, idx in ner.values.items():
                ner_share[entity] = sum(counts[i] for i in idx) / chosen_total
            for i, spans in ner.spans.items():
                hits.spans[i].extend(spans)
            for entity, idx in ner.values.items():
                hits.values[entity] |= idx
        rates = {
            e: min(1.0, hits.scale.get(e, 1.0) * sum(counts[i] for i in idx) / finding.non_null)
            for e, idx in hits.values.items()
        }
        rates.update(ner_share)
        if prof.prose and prof.capitalized >= TITLE_CASE and hint.entity != "PERSON":
            rates.pop("PERSON", None)  # Title Case or CAPS text: NER reads every pair as a name
        rates = {e: r for e, r in rates.items() if r > 0 and not hint.refuted(e)}
        lexicon = self._lexicon(rates, hint, prof, candidates, values)
        if lexicon and hint.entity == "PERSON" and hint.weak:
            hint = replace(hint, weak=False)  # the values are names: `name` means a person's
        self._shape_evidence(rates, hint, prof, arrow_type, values)
        _lookalikes(rates, values, prof)
        special = special_category(values) if not prof.prose else None
        if special and not hint.refuted(special[0]):
            rates[special[0]] = max(rates.get(special[0], 0.0), special[2])
        finding.entities = rates
        finding.signals = {
            "name": hint.matched,
            "patterns": sorted(hits.best),
            "ner": sorted(ner_share),
            "profile": _profile_signals(prof),
        }
        if lexicon:
            finding.signals["lexicon"] = round(lexicon, 3)
        if hint.weak:
            finding.signals["weak_name"] = True
        self._decide(finding, hint, prof, rates)
        if finding.pii and special and finding.entity == special[0] and not hint.category:
            finding.category = special[1]
        if finding.pii and hint.category and finding.entity == hint.entity:
            finding.category = hint.category
        finish(finding)
        if finding.pii:
            finding.examples = _examples(texts, hits, finding.entity, finding.free_text)
        return finding

    def _candidate_entities(self, arrow_type: pa.DataType, prof: ValueProfile) -> set[str]:
        if pa.types.is_boolean(arrow_type) or pa.types.is_temporal(arrow_type):
            return set()
        if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
            return set()
        if pa.types.is_integer(arrow_type):
            return self.entities & NUMERIC_ENTITIES
        if prof.opaque_id >= DOMINANT:
            return set()
        return set(self.entities)

    def _wants_ner(
        self, arrow_type: pa.DataType, prof: ValueProfile, hits: Hits, non_null: int
    ) -> bool:
        if not (
            pa.types.is_string(arrow_type)
            or pa.types.is_large_string(arrow_type)
            or pa.types.is_string_view(arrow_type)
        ):
            return False
        if prof.opaque_id >= DOMINANT or prof.numeric >= DOMINANT:
            return False
        if not prof.prose and prof.natural < DOMINANT:
            return False  # codes, user agents, paths: NER reads them as names
        structured = max((len(v) for e, v in hits.values.items() if e in STRONG), default=0)
        return prof.prose or structured < 0.5 * non_null

    def _lexicon(self, rates: dict[str, float], hint: NameHint, prof: ValueProfile,
                 candidates: set[str], values: pl.DataFrame) -> float:
        """The share of distinct values that are persons' names by the lexicon (lexicon.py),
        added as PERSON evidence when it reaches LEXICON; 0 when not asked or not reached."""
        if "PERSON" not in candidates or hint.refuted("PERSON") or prof.prose or \
                hint.entity in ("LOCATION", "ORGANIZATION") or prof.numeric >= DOMINANT or \
                prof.mean_words > 4 or prof.natural < DOMINANT:
            return 0.0
        found = name_share(values.head(LEXICON_VALUES))
        if found < LEXICON:
            return 0.0
        rates["PERSON"] = max(rates.get("PERSON", 0.0), found)
        return found

    def _shape_evidence(
        self, rates: dict[str, float], hint: NameHint, prof: ValueProfile,
        arrow_type: pa.DataType, values: pl.DataFrame,
    ) -> None:
        """Evidence from value shapes, for what Presidio cannot judge alone."""
        if "IP_ADDRESS" in rates and prof.version_like >= 0.8 * prof.dotted_quad:
            rates.pop("IP_ADDRESS")  # 1.2.3.4 style version strings, not addresses
        rates.pop("DATE_TIME", None)  # a date is personal only as a birth date, below
        if "DATE_TIME" in self.entities and not hint.refuted("DATE_TIME"):
            dates = prof.date_only + prof.midnight  # a date kept as a timestamp at midnight
            temporal = pa.types.is_date(arrow_type) or dates >= 0.9
            if temporal and (prof.birth_like or hint.entity == "DATE_TIME"):
                rates["DATE_TIME"] = max(dates, 1.0 if pa.types.is_date(arrow_type) else 0.0)
        if hint.entity == "PERSON_ID" and prof.opaque_id < DOMINANT:
            # keys: numbers, prefixed numbers, UUIDs, or one-word codes (`ALFKI`, `u-42a`)
            rates["PERSON_ID"] = max(prof.key, prof.uuid, share(values, _code_like.fullmatch))
        if hint.entity == "PERSON" and prof.name_shaped >= DOMINANT:
            rates["PERSON"] = max(rates.get("PERSON", 0.0), prof.name_shaped)
        if hint.entity == "PERSON" and hint.weak and rates.get("ORGANIZATION", 0.0) >= max(
                DOMINANT, rates.get("PERSON", 0.0)):
            # a `name` whose values are companies: an employer, a shipping name (the table
            # decides whether it is anybody's: optout/scanner/classify/context.py)
            rates.pop("PERSON", None)
        if hint.entity == "PERSON" and hint.weak and "PERSON" in rates:
            firms = share(values, firm_like)
            if firms >= FIRMS:  # a `ship_name` of firms: NER reads `Hanari Carnes` as a person
                rates.pop("PERSON")
                rates["ORGANIZATION"] = max(rates.get("ORGANIZATION", 0.0), firms)
        if hint.entity == "ORGANIZATION":
            rates.pop("PERSON", None)  # NER cannot tell a firm's name from a person's
        elif not (hint.entity == "PERSON" and hint.weak):
            rates.pop("ORGANIZATION", None)  # an organization is personal only as named
        if hint.entity != "LOCATION" and "LOCATION" in rates and \
                share(values, _SHORT_CODE.fullmatch) >= DOMINANT:
            rates.pop("LOCATION")  # `CT`, `MR`, `US`: codes NER reads as places
        if hint.entity == "LOCATION":
            for entity in ("ORGANIZATION", "PERSON", "NRP", "MEDICAL"):
                rates.pop(entity, None)  # `SP`, `WA`, `Co. Cork`: NER misreads places
        if hint.entity in ("PHOTO", "CARD_SECURITY_CODE", "ORGANIZATION"):
            rates.setdefault(hint.entity, 0.0)
        if hint.entity == "BIOMETRIC":
            # a special category needs value evidence: a template, not a 32-byte hash
            test = genetic_like if hint.category == "genetic" else template_like
            templates = share(values, test)
            if templates:
                rates["BIOMETRIC"] = templates

    def _decide(
        self, finding: ColumnFinding, hint: NameHint, prof: ValueProfile, rates: dict[str, float]
    ) -> None:
        personal = {e: r for e, r in rates.items() if e not in NOT_PERSONAL or e == "DATE_TIME"}
        # a weak place word (`state`, `region`) is read like a name unless its values say
        # otherwise; the table then decides whether it is anybody's (context.py)
        strong_name = hint.entity is not None and (
            not hint.weak or hint.entity in ("LOCATION", "ORGANIZATION"))
        if prof.prose and not (strong_name and _no_contradiction(prof, personal, hint.entity)):
            flagged = {
                e: r
                for e, r in personal.items()
                if (e in STRONG) or (e == "PERSON" and r >= PROSE_NER_SHARE)
            }
            if flagged:
                finding.pii = finding.free_text = True
                finding.entity = max(flagged, key=lambda e: (flagged[e], e in STRONG, e))
                finding.score = flagged[finding.entity]
            return
        if strong_name and (
            personal.get(hint.entity, 0.0) >= AGREES
            or _no_contradiction(prof, personal, hint.entity)
        ):
            entity = hint.entity
        elif personal and max(personal.values()) >= DOMINANT:
            entity = max(personal, key=lambda e: (personal[e], e in STRONG, _PRIORITY.get(e, 0),
                                                  e))
        elif hint.weak and personal.get("PERSON", 0.0) >= AGREES:
            entity = "PERSON"
        elif hint.weak and hint.entity == "PERSON" and personal.get("ORGANIZATION",
                                                                       0.0) >= AGREES:
            entity = "ORGANIZATION"  # a `name` of firms: personal beside a person (context)
        else:
            return
        rate = personal.get(entity, 0.0)
        named = NAME_WEIGHT if hint.entity == entity else 0.0
        finding.pii = True
        finding.entity = entity
        if named and rate < AGREES and entity not in VALUELESS:
            # the name alone decided: marked so, worth less, never a key to find people by
            finding.evidence = "name-only"
            finding.score = NAME_WEIGHT * 0.6
            return
        finding.evidence = "name+values" if named else "values"
        finding.score = 1 - (1 - rate) * (1 - named)
        finding.identifier = entity in LOCATORS or bool(_NATIONAL_ID.match(entity))

    def _decide_without_values(self, finding: ColumnFinding, hint: NameHint) -> ColumnFinding:
        # An empty sample cannot refute a name; the column is flagged on its name alone.
        if hint.entity and not hint.weak:
            finding.pii = True
            finding.entity = hint.entity
            finding.score = NAME_WEIGHT * 0.6
            finding.evidence = "name-only"
            finding.category = hint.category
        finding.signals = {"name": hint.matched, "patterns": [], "ner": [], "profile": {}}
        if hint.weak:
            finding.signals["weak_name"] = True
        finish(finding)
        return finding


#: entities whose values cannot agree with a name (a picture, a security code): the name,
#: with values that do not contradict it, decides
VALUELESS = frozenset({"PHOTO", "CARD_SECURITY_CODE", "NRP", "MEDICAL", "BIOMETRIC",
                       "ORGANIZATION"})
#: entities written in digits and separators only: letters in most values contradict the name
DIGITS_ONLY = frozenset({"CREDIT_CARD", "US_BANK_NUMBER", "US_SSN", "CARD_SECURITY_CODE"})
#: an upper-case code of two or three letters (a modality, a country, a state, a currency)
_SHORT_CODE = re.compile(r"[A-Z]{2,3}")
#: a one-word code a key may be (`ALFKI`, `u-42a`, `jsmith`): no spaces, at most 64 characters
_code_like = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
#: validated entities first when two fit every value (a Luhn-valid card is also digits a phone
#: parser accepts)
_PRIORITY = {"CREDIT_CARD": 3, "IBAN_CODE": 3, "US_SSN": 2, "EMAIL_ADDRESS": 2,
             "PHONE_NUMBER": 1}
#: a prose column whose words are this capitalized (Title Case, CAPS) names nobody by NER
TITLE_CASE = 0.6
#: types that cannot hold these entities, whatever the column's name says
_FLOAT_VETO = "a floating-point or boolean column holds no identifier, contact or name"
_INT_ALLOWED = frozenset({"PERSON_ID", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN",
                          "CARD_SECURITY_CODE", "US_BANK_NUMBER", "DATE_TIME", "NRP",
                          "MEDICAL", "LOCATION"})


def _person_noun_key(hint: NameHint, name: str) -> NameHint:
    """`manager`, `owner`, `customer` holding keys (integers, key-shaped codes): the key of
    that person, not a name."""
    if hint.entity == "PERSON" and set(words(name)) <= PERSON_NOUNS:
        return replace(hint, entity="PERSON_ID", weak=False)
    return hint


def _type_veto(arrow_type: pa.DataType, hint: NameHint) -> str | None:
    """Why the column's type rules out what its name says (a DOUBLE `credit_card_amount` is
    no card; an integer `gender_flag` is no name), or None."""
    if pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type) or (
            pa.types.is_decimal(arrow_type) and arrow_type.scale > 0):
        return _FLOAT_VETO
    if pa.types.is_integer(arrow_type) and hint.entity and hint.entity not in _INT_ALLOWED:
        return f"an integer column holds no {hint.entity}"
    return None


def _lookalikes(rates: dict[str, float], values, prof: ValueProfile) -> None:
    """Checksums against look-alikes: Luhn-valid card numbers are not phone numbers; ABA
    routing numbers (the check holds for most values) are banks, not phones or accounts."""
    if "PHONE_NUMBER" in rates and rates.get("CREDIT_CARD", 0.0) >= DOMINANT:
        rates.pop("PHONE_NUMBER")
    if {"PHONE_NUMBER", "US_BANK_NUMBER"} & set(rates) and prof.numeric >= DOMINANT and \
            share(values, aba_valid) >= 0.9:
        rates.pop("PHONE_NUMBER", None)
        rates.pop("US_BANK_NUMBER", None)


def _no_contradiction(prof: ValueProfile, personal: dict[str, float], entity: str) -> bool:
    """A column name is believed unless the values say otherwise: machine ids, version
    strings, or another validated entity in most values. NER's PERSON/LOCATION guesses do not
    overrule a name (`9725 Barry Park` is an address whatever NER says)."""
    if entity == "BIOMETRIC":
        return False  # only its values make a column biometric (vocab.template_like)
    if prof.opaque_id >= DOMINANT or prof.version_like >= DOMINANT:
        return False
    if entity == "DATE_TIME":
        return False  # a birth-date name over values that are not dates
    if entity in DIGITS_ONLY and prof.has_letters >= DOMINANT:
        return False  # `AW00000001`, `105041Vi84182`: codes, not card or account numbers
    other = max((r for e, r in personal.items() if e != entity and e in STRONG), default=0.0)
    return other < DOMINANT


def _profile_signals(prof: ValueProfile) -> dict[str, float | bool]:
    shown = (
        "uuid",
        "hex_hash",
        "version_like",
        "numeric",
        "amount",
        "key",
        "name_shaped",
        "date_only",
        "datetime",
        "mean_words",
    )
    out: dict[str, float | bool] = {
        k: round(getattr(prof, k), 3) for k in shown if getattr(prof, k)
    }
    if prof.birth_like:
        out["birth_like"] = True
    return out


def _examples(texts: list[str], hits: Hits, entity: str | None, free_text: bool) -> list[str]:
    out: list[str] = []
    for i, text in enumerate(texts):
        if len(out) >= EXAMPLES:
            break
        if free_text:
            spans = [s for s in hits.spans.get(i, []) if s[0] == entity]
            if spans:
                _, a, b = spans[0]
                out.append("…" + mask(text[a:b], entity) + "…")
        else:
            out.append(mask(text, entity))
    return out


def distinct_values(column: pa.ChunkedArray) -> pl.DataFrame:
    """Distinct non-empty values as text (`value`) with their repeats (`n`), most common first."""
    t = column.type
    if (
        pa.types.is_nested(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_dictionary(t)
        or pa.types.is_null(t)
    ):
        items = [
            None if v is None else (json.dumps(v, default=str) if not isinstance(v, str) else v)
            for v in column.to_pylist()
        ]
        series = pl.Series("value", items, dtype=pl.String)
    else:
        series = pl.Series("value", pl.from_arrow(column)).cast(pl.String, strict=False)
    frame = (
        series.drop_nulls()
        .str.strip_chars()
        .to_frame("value")
        .filter(pl.col("value").str.len_chars() > 0)
        .group_by("value")
        .len("n")
        .sort(["n", "value"], descending=[True, False])
    )
    return frame.with_columns(pl.col("n").cast(pl.Int64))
