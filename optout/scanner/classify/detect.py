"""Presidio over a column's distinct values, in bulk.

Pattern recognizers run once per column over the distinct values joined into one text (one
regex pass per recognizer instead of one analyzer call per value); spans are mapped back to
their value by offset. NER runs through the NLP engine's batched `nlp.pipe` on a bounded,
seeded subset of the distinct values.
"""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from dataclasses import dataclass, field

import polars as pl
from presidio_analyzer import RecognizerResult

from optout.scanner.classify.presidio_engine import LANGUAGE, PresidioSetup

#: between values: no recognizer pattern spans two blank lines and a pilcrow
SEPARATOR = "\n\n\u00b6\n\n"
NER_BATCH = 64
#: recognizers too slow to read every distinct value read a seeded subset of this many; the
#: hit rate is then estimated from the subset
CAPPED = {"PhoneRecognizer": 250}


#: cheap regexes a value must match before a recognizer for the entity reads it; a recognizer
#: for an entity without a gate reads every value. Gates only skip work: each is implied by
#: the recognizer's own pattern.
GATES: dict[str, str] = {
    "EMAIL_ADDRESS": r"@",
    "PHONE_NUMBER": r"(?:\d[^\d\n]{0,4}){7}",
    "CREDIT_CARD": r"(?:\d[ -]?){12}",
    "IBAN_CODE": r"[A-Za-z]{2}\d{2}",
    "IP_ADDRESS": r"\d\.\d|:",
    "US_SSN": r"\d{3}",
    "URL": r"\.",
    "UUID": r"[0-9a-fA-F]{8}",
    "MAC_ADDRESS": r"[0-9A-Fa-f]{2}[:-]",
    "US_BANK_NUMBER": r"\d{8}",
    "US_PASSPORT": r"\d{6}",
    "US_DRIVER_LICENSE": r"\d",
    "DATE_TIME": r"\d",
}
#: values a recognizer for the entity need not read (whole-value shapes it cannot match)
SKIPS: dict[str, str] = {
    "PHONE_NUMBER": r"^\d{4}-\d{2}-\d{2}(?:[T ][\d:.+Z-]*)?$|^[0-9a-fA-F-]{16,}$",
}


def gated(values: pl.Series, entities: list[str]) -> list[int] | None:
    """Indexes of the values a recognizer for `entities` must read; None means all of them."""
    if any(e not in GATES for e in entities):
        return None
    mask = pl.repeat(False, len(values), eager=True)
    for e in entities:
        hit = values.str.contains(GATES[e])
        if e in SKIPS:
            hit = hit & ~values.str.contains(SKIPS[e])
        mask = mask | hit
    return mask.arg_true().to_list()


@dataclass
class Hits:
    """Per entity: the distinct-value indexes that carry it, and the best score seen."""

    values: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    #: entity → factor turning the weight of its hits into a share estimate, where a
    #: recognizer read only a subset of the values it was gated to
    scale: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    spans: dict[int, list[tuple[str, int, int]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, index: int, result: RecognizerResult) -> None:
        self.values[result.entity_type].add(index)
        self.best[result.entity_type] = max(self.best.get(result.entity_type, 0.0), result.score)
        self.spans[index].append((result.entity_type, result.start, result.end))


def _drop_contained(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Remove results inside a stronger result of another entity (the URL inside an email)."""
    kept = []
    for r in results:
        if not any(
            o is not r
            and o.entity_type != r.entity_type
            and o.start <= r.start
            and r.end <= o.end
            and o.score >= r.score
            and (o.end - o.start) > (r.end - r.start)
            for o in results
        ):
            kept.append(r)
    return kept


def pattern_hits(
    setup: PresidioSetup,
    values: list[str],
    counts: list[int],
    entities: set[str],
    accept: dict[str, float],
    seed: int = 0,
) -> Hits:
    """Pattern-recognizer hits on `values` (repeated `counts` times in the sample); a result
    counts when its score reaches the threshold `accept` gives its entity."""
    series = pl.Series(values, dtype=pl.String)
    hits = Hits()
    joined: dict[tuple[int, ...] | None, tuple[str, list[int], list[int]]] = {}
    per_value: dict[int, list[RecognizerResult]] = defaultdict(list)
    for recognizer in setup.pattern_recognizers:
        wanted = [e for e in recognizer.supported_entities if e in entities]
        if not wanted:
            continue
        subset = gated(series, wanted)
        if subset == []:
            continue
        cap = CAPPED.get(type(recognizer).__name__)
        if cap is not None:
            pool = subset if subset is not None else list(range(len(values)))
            if len(pool) > cap:
                subset = sorted(random.Random(seed).sample(pool, cap))
                factor = sum(counts[i] for i in pool) / sum(counts[i] for i in subset)
                for e in wanted:
                    hits.scale[e] = factor
        key = None if subset is None else tuple(subset)
        if key not in joined:
            joined[key] = _join(values, subset)
        text, starts, index = joined[key]
        for r in recognizer.analyze(text, wanted, None) or ():
            j = bisect.bisect_right(starts, r.start) - 1
            if j < 0 or r.end > starts[j] + len(values[index[j]]):
                continue  # crossed a separator: not one value's match
            if r.score < accept.get(r.entity_type, 1.0):
                continue
            per_value[index[j]].append(
                RecognizerResult(r.entity_type, r.start - starts[j], r.end - starts[j], r.score)
            )
    for i, results in per_value.items():
        for r in _drop_contained(results):
            hits.add(i, r)
    return hits


def _join(values: list[str], subset: list[int] | None) -> tuple[str, list[int], list[int]]:
    """The chosen values as one text, each value's start offset, and its index in `values`."""
    index = list(range(len(values))) if subset is None else subset
    starts = []
    pos = 0
    for i in index:
        starts.append(pos)
        pos += len(values[i]) + len(SEPARATOR)
    return SEPARATOR.join(values[i] for i in index), starts, index


def ner_hits(
    setup: PresidioSetup, values: list[str], entities: set[str], limit: int, seed: int
) -> tuple[Hits, list[int]]:
    """NER hits on at most `limit` distinct values (a seeded choice when there are more), and
    the indexes of the values that were analyzed."""
    hits = Hits()
    if not setup.ner_recognizers:
        return hits, []
    chosen = list(range(len(values)))
    if len(chosen) > limit:
        chosen = sorted(random.Random(seed).sample(chosen, limit))
    texts = [values[i] for i in chosen]
    artifacts = setup.nlp_engine.process_batch(texts, LANGUAGE, batch_size=NER_BATCH)
    for i, (text, nlp_artifacts) in zip(chosen, artifacts, strict=True):
        for recognizer in setup.ner_recognizers:
            wanted = [e for e in recognizer.supported_entities if e in entities]
            for r in recognizer.analyze(text, wanted, nlp_artifacts) or ():
                hits.add(i, r)
    return hits, chosen
