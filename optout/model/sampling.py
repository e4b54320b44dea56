"""Seeded sampling plans that sources push down to the engine holding the data.

Two shapes: *windows* (a few contiguous row ranges at seeded positions, for engines that can seek
by row number: Parquet, DuckDB and SQLite tables), and *reservoir* (one streaming pass, for
engines that cannot seek: CSV, JSON, logs, views). Both are bounded by the sample size.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")

WINDOWS = 32  # enough spread that one sorted or clustered region cannot dominate the sample


def windows(total: int, rows: int, seed: int) -> list[tuple[int, int]]:
    """Non-overlapping [start, end) row ranges, seeded, covering about `rows` of `total` rows.

    The whole table when it is no larger than the sample.
    """
    if total <= rows:
        return [(0, total)] if total > 0 else []
    width = -(-rows // min(WINDOWS, rows))  # ceil: `count` windows of `width` cover `rows`
    count = -(-rows // width)
    slots = total // width
    rng = random.Random(seed)
    starts = sorted(rng.sample(range(slots), min(count, slots)))
    spans = [(s * width, min(total, s * width + width)) for s in starts]
    excess = sum(b - a for a, b in spans) - rows
    if excess > 0:  # trim the last window so the sample is exactly `rows`
        a, b = spans[-1]
        spans[-1] = (a, b - excess)
    return spans


def reservoir(items: Iterable[T], rows: int, seed: int) -> tuple[list[T], int]:
    """A uniform seeded sample of at most `rows` items from a stream, and the stream's length."""
    rng = random.Random(seed)
    kept: list[T] = []
    seen = 0
    for item in items:
        seen += 1
        if len(kept) < rows:
            kept.append(item)
        else:
            j = rng.randrange(seen)
            if j < rows:
                kept[j] = item
    return kept, seen


def bernoulli_percent(total: int, rows: int) -> float:
    """The percentage a Bernoulli sample needs to yield about `rows` of `total` rows (with slack)."""
    if total <= 0:
        return 100.0
    return min(100.0, 100.0 * rows * 1.25 / total + 0.01)
