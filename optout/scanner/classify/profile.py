"""Value profiles computed with polars, vectorized over a column's distinct sampled values.

Shapes that Presidio does not judge: keys, hashes, UUIDs, version strings, amounts, prose,
person-name shape and birth-date-like date distributions. They veto known traps and add
evidence where only the values can tell.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

_UUID = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
_HEX = r"^(?:0x)?[0-9a-fA-F]{16,}$"
_VERSION_OR_IP = r"^v?\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$"
_SMALL_PARTS = r"^v?(?:[0-9]|[12][0-9]|3[01])\.(?:[0-9]|[12][0-9]|3[01])\.(?:[0-9]|[12][0-9]|3[01])\.(?:[0-9]|[12][0-9]|3[01])$"
_NUMERIC = r"^[-+]?\d+(?:[.,]\d+)?$"
_AMOUNT = r"^[-+]?\d{1,9}[.,]\d{1,2}$"
_KEY = r"^[A-Za-z]{0,6}[-_]?\d{1,12}$"
_NAME = r"^\p{Lu}[\p{L}'’-]+(?:\.?[ ]\p{Lu}[\p{L}'’.-]*){0,3}$"
_DATE_ONLY = r"^(?:\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{4})$"
_DATETIME = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"
_MIDNIGHT = r"^\d{4}-\d{2}-\d{2}[T ]00:00(?::00(?:\.0+)?)?(?:[+-]00(?::?00)?|Z)?$"
_CAPITALIZED = r"^[\p{Lu}]"
_LETTER = r"\p{L}"
_ALPHA_WORD = r"^[\p{L}'’-]+[,.!?;:]?$"
_NATURAL = r"^[\p{L}\p{M}][\p{L}\p{M}\d\s'’.,&-]*$"


@dataclass(frozen=True)
class ValueProfile:
    """Shares of a column's non-null sampled values (weighted by repeats) with each shape."""

    uuid: float = 0.0
    hex_hash: float = 0.0
    version_like: float = 0.0  # dotted quads whose parts are all small (1.2.3.4)
    dotted_quad: float = 0.0
    numeric: float = 0.0
    amount: float = 0.0
    key: float = 0.0
    name_shaped: float = 0.0
    date_only: float = 0.0
    datetime: float = 0.0
    has_letters: float = 0.0
    natural: float = 0.0  # words, not codes: letters, digits, spaces and little punctuation
    mean_words: float = 0.0
    alpha_words: float = 0.0  # share of whitespace-separated tokens that are plain words
    mean_length: float = 0.0
    midnight: float = 0.0  # timestamps whose time is always 00:00 (a date kept as a timestamp)
    capitalized: float = 0.0  # share of words starting with a capital (Title Case, CAPS)
    birth_like: bool = False
    forced_prose: bool = False  # the source says so (a log line)

    @property
    def opaque_id(self) -> float:
        """Share of values that are machine ids (UUIDs, hex hashes), not ids of people."""
        return self.uuid + self.hex_hash

    @property
    def prose(self) -> bool:
        """True when values are sentences rather than single facts."""
        return self.forced_prose or (self.mean_words >= 5 and self.alpha_words >= 0.6)


def profile(values: pl.DataFrame, today: dt.date | None = None) -> ValueProfile:
    """Profile of distinct values (`value` as text, `n` their repeats in the sample)."""
    total = values["n"].sum()
    if not total:
        return ValueProfile()
    v = pl.col("value")
    shares = values.select(
        *[
            (pl.when(expr).then(pl.col("n")).otherwise(0).sum() / total).alias(name)
            for name, expr in {
                "uuid": v.str.contains(_UUID),
                "hex_hash": v.str.contains(_HEX)
                & v.str.contains(r"[0-9]")
                & v.str.contains(r"[a-fA-F]")
                & ~v.str.contains(_UUID),
                "version_like": v.str.contains(_SMALL_PARTS),
                "dotted_quad": v.str.contains(_VERSION_OR_IP),
                "numeric": v.str.contains(_NUMERIC),
                "amount": v.str.contains(_AMOUNT),
                "key": v.str.contains(_KEY),
                "name_shaped": v.str.contains(_NAME),
                "date_only": v.str.contains(_DATE_ONLY),
                "datetime": v.str.contains(_DATETIME),
                "midnight": v.str.contains(_MIDNIGHT),
                "has_letters": v.str.contains(_LETTER),
                "natural": v.str.contains(_NATURAL),
            }.items()
        ],
        ((v.str.count_matches(r"\S+") * pl.col("n")).sum() / total).alias("mean_words"),
        ((v.str.len_chars() * pl.col("n")).sum() / total).alias("mean_length"),
        (
            (
                v.str.split(" ").list.eval(pl.element().str.contains(_CAPITALIZED)).list.sum()
                * pl.col("n")
            ).sum()
            / pl.max_horizontal((v.str.count_matches(r"\S+") * pl.col("n")).sum(), 1)
        ).alias("capitalized"),
        (
            (
                v.str.split(" ").list.eval(pl.element().str.contains(_ALPHA_WORD)).list.sum()
                * pl.col("n")
            ).sum()
            / pl.max_horizontal((v.str.count_matches(r"\S+") * pl.col("n")).sum(), 1)
        ).alias("alpha_words"),
    ).row(0, named=True)
    return ValueProfile(
        **{k: float(x or 0.0) for k, x in shares.items()},
        birth_like=_birth_like(values, (shares["date_only"] or 0) + (shares["midnight"] or 0),
                               today),
    )


def _birth_like(values: pl.DataFrame, date_only: float, today: dt.date | None) -> bool:
    """Dates without a time whose years look like people's birth years: ages 16 to 100,
    spread over decades. Event dates cluster in recent years; timestamps carry a time."""
    if date_only < 0.9:
        return False
    today = today or dt.date.today()
    years = values.select(
        pl.col("value").str.extract(r"(\d{4})", 1).cast(pl.Int32, strict=False).alias("y"),
        pl.col("n"),
    ).drop_nulls()
    if years.is_empty():
        return False
    ages = years.select((today.year - pl.col("y")).alias("age"), pl.col("n"))
    in_range = ages.filter((pl.col("age") >= 16) & (pl.col("age") <= 100))["n"].sum()
    spread = ages["age"].quantile(0.9) - ages["age"].quantile(0.1)
    return in_range / ages["n"].sum() >= 0.9 and (spread or 0) >= 10
