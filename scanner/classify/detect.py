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

from presidio_analyzer import RecognizerResult

from scanner.classify.presidio_engine import LANGUAGE, PresidioSetup

#: between values: no recognizer pattern spans two blank lines and a pilcrow
SEPARATOR = "\n\n\u00b6\n\n"
NER_BATCH = 64


@dataclass
class Hits:
    """Per entity: the distinct-value indexes that carry it, and the best score seen."""

    values: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
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
        if not any(o is not r and o.entity_type != r.entity_type and o.start <= r.start
                   and r.end <= o.end and o.score >= r.score and (o.end - o.start) > (r.end - r.start)
                   for o in results):
            kept.append(r)
    return kept


def pattern_hits(setup: PresidioSetup, values: list[str], entities: set[str],
                 accept: dict[str, float]) -> Hits:
    """Pattern-recognizer hits on `values`; a result counts when its score reaches the
    threshold `accept` gives its entity."""
    text = SEPARATOR.join(values)
    starts = []
    pos = 0
    for v in values:
        starts.append(pos)
        pos += len(v) + len(SEPARATOR)
    per_value: dict[int, list[RecognizerResult]] = defaultdict(list)
    for recognizer in setup.pattern_recognizers:
        wanted = [e for e in recognizer.supported_entities if e in entities]
        if not wanted:
            continue
        for r in recognizer.analyze(text, wanted, None) or ():
            i = bisect.bisect_right(starts, r.start) - 1
            if i < 0 or r.end > starts[i] + len(values[i]):
                continue  # crossed a separator: not one value's match
            if r.score < accept.get(r.entity_type, 1.0):
                continue
            per_value[i].append(RecognizerResult(r.entity_type, r.start - starts[i],
                                                 r.end - starts[i], r.score))
    hits = Hits()
    for i, results in per_value.items():
        for r in _drop_contained(results):
            hits.add(i, r)
    return hits


def ner_hits(setup: PresidioSetup, values: list[str], entities: set[str], limit: int,
             seed: int) -> tuple[Hits, list[int]]:
    """NER hits on at most `limit` distinct values (a seeded choice when there are more), and
    the indexes of the values that were analyzed."""
    hits = Hits()
    if setup.nlp_engine is None or not setup.ner_recognizers:
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
