"""Matching a subject's rows in Spark SQL, by keyed hash, for all subjects of a request at once.

HMAC-SHA256 is not a Spark built-in: it is built from `sha2` over the key-padded value, as the
PostgreSQL matcher builds it. The key is the identifier key (derived from the catalog secret
for that purpose: Spark never holds the secret that seals rows, plans and the audit log), and
its pads reach Spark as a one-row table made from Arrow data and broadcast into the query
(`keyed`), never as literals: Spark's query plans, its UI and its event log name the pads'
columns, not their bytes (tests/test_spark.py reads an event log to check). A catalog made
before the derived key keys identifiers with the secret itself: the Spark engine refuses it.
Only keyed hashes enter Spark: the request's plain values, which the DuckDB matcher compares
while planning, are never given to Spark (its shuffles and spills go to local disks). No
Python function runs per row: everything is Spark's own expressions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from optout.model.errors import ScannerError
from optout.model.identifiers import KINDS, SIMPLE_LOWER_FROM, SIMPLE_LOWER_TO, WHITESPACE
from optout.model.matching import (
    TEXT_EMAIL,
    TEXT_PHONE,
    TEXT_WORD,
    MatchQuery,
    MatchResult,
)
from optout.model.secret import KeyedHash

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

#: the file and row number of a row of a file source (Spark's hidden metadata column)
FILE, ROW = "optout_file", "optout_row"
#: the columns the HMAC pads are joined in as
IPAD, OPAD = "optout_ipad", "optout_opad"


def normalized(kind: str, column: Column) -> Column:
    """The column normalized like `optout.model.identifiers.normalize` (as DuckDB's and
    PostgreSQL's SQL do it)."""
    from pyspark.sql import functions as F

    if kind not in KINDS:
        raise ValueError(f"unknown normalization kind {kind!r}")
    # Spark's trim strips spaces only and Java's `\s` is ASCII: strip and split on Python's
    # whitespace, every character of it named
    text = F.trim(column.cast("string"), F.lit(WHITESPACE))
    if kind == "email":
        return simple_lower(text)
    if kind == "phone":
        return F.regexp_replace(text, "[^0-9]", "")
    if kind == "name":
        return simple_lower(F.regexp_replace(text, f"[{WHITESPACE}]+", " "))
    return F.upper(F.regexp_replace(text, f"[{WHITESPACE}./-]", ""))


def simple_lower(text: Column) -> Column:
    """Lower-cased as DuckDB and PostgreSQL do it (Java's `toLowerCase`, like Python's, maps
    "İ" to two characters and a final capital sigma to "ς")."""
    from pyspark.sql import functions as F

    return F.lower(F.translate(text, SIMPLE_LOWER_FROM, SIMPLE_LOWER_TO))


def column_of(name: str, top_level: set[str]) -> Column:
    """A column by its catalog name: `customer.id` is the field `id` of the struct `customer`
    when there is no top-level column of that name (sources flatten nested fields)."""
    from pyspark.sql import functions as F

    if name in top_level or "." not in name:
        return F.col(_quoted(name))
    return F.col(".".join(_quoted(part) for part in name.split(".")))


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class SparkMatcher:
    """Runs a `MatchQuery` over a Spark DataFrame."""

    def __init__(self, spark: SparkSession, hasher: KeyedHash) -> None:
        if not hasher.derived:
            raise ScannerError("this catalog keys identifiers with its secret itself (it was "
                               "made before the derived identifier key): the spark engine "
                               "would hand Spark that secret; use the duckdb engine, or a "
                               "catalog made by this optout")
        self.spark = spark
        self._key = hasher.pads
        self._pads: DataFrame | None = None

    def keyed(self, df: DataFrame) -> DataFrame:
        """`df` with the pads as two more columns (a broadcast one-row table, no literals)."""
        from pyspark.sql import functions as F

        if self._pads is None:
            import pyarrow as pa

            inner, outer = self._key
            self._pads = self.spark.createDataFrame(pa.table({
                IPAD: pa.array([inner], pa.binary()), OPAD: pa.array([outer], pa.binary())}))
        return df.crossJoin(F.broadcast(self._pads))

    def where(self, df: DataFrame, query: MatchQuery, top_level: set[str] | None = None
              ) -> DataFrame:
        """The rows of `df` that `query` matches (with `df`'s columns only)."""
        top = set(df.columns) if top_level is None else top_level
        return self.keyed(df).where(self.condition(query, top)).drop(IPAD, OPAD)

    def hmac(self, value: Column) -> Column:
        """HMAC-SHA256 (hex) of a text column, on a frame `keyed` gave the pads to."""
        from pyspark.sql import functions as F

        inner, outer = F.col(IPAD), F.col(OPAD)
        return F.sha2(F.concat(outer, F.unhex(F.sha2(F.concat(inner, F.encode(value, "UTF-8")),
                                                       256))), 256)

    def condition(self, query: MatchQuery, top_level: set[str]) -> Column:
        """True for the rows `query` matches."""
        from pyspark.sql import functions as F

        conditions = []
        for k in query.keys:
            hashes = sorted(k.hashes)
            conditions.append(self.hmac(normalized(k.kind, column_of(k.column, top_level)))
                              .isin(hashes) if hashes else F.lit(False))
        hashes = sorted(query.text_hashes)
        for name in query.texts:
            conditions.append(_text_condition(column_of(name, top_level), hashes, self.hmac))
        out = F.lit(False)
        for c in conditions:
            out = out | F.coalesce(c, F.lit(False))
        return out

    def match(self, df: DataFrame, query: MatchQuery) -> MatchResult:
        """How many rows match, grouped by the keyed hashes of the collected columns and the
        normalized names (the planner's attribution), as `DuckDBMatcher.match` answers."""
        from pyspark.sql import functions as F

        if not query.keys and not query.texts:
            return MatchResult()
        top = set(df.columns)
        rows = self.keyed(df).where(self.condition(query, top))
        selects = [self.hmac(normalized(kind, column_of(c, top))) for c, kind in query.collect]
        selects += [normalized("name", F.concat_ws(" ", *(column_of(c, top) for c in group)))
                    for group in query.names]
        if not selects:
            return MatchResult.from_groups([(rows.count(),)], query)
        named = [s.alias(f"g{i}") for i, s in enumerate(selects)]
        found = rows.groupBy(*named).count().limit(query.limit + 1).collect()
        return MatchResult.from_groups([tuple(r) for r in found if r[-1]], query)

    def rows(self, df: DataFrame, query: MatchQuery, limit: int) -> dict[str, list[int]] | None:
        """Per file (a local path), the row numbers of the matching rows of a file source's
        frame; None when more than `limit` rows match."""
        from pyspark.sql import functions as F

        if not query.keys and not query.texts:
            return {}
        top = set(df.columns)
        located = (self.where(df.select("*", F.col("_metadata.file_path").alias(FILE),
                                        F.col("_metadata.row_index").alias(ROW)), query, top)
                   .select(FILE, ROW).limit(limit + 1).collect())
        if len(located) > limit:
            return None
        out: dict[str, list[int]] = defaultdict(list)
        for path, row in located:
            out[local_path(path)].append(int(row))
        return {p: sorted(r) for p, r in out.items()}


def local_path(uri: str) -> str:
    """The local path of a `file:` URI Spark gives for a file it read."""
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.scheme in ("file", "") else uri


def _text_condition(column: Column, hashes: list[str], hmac: Callable[[Column], Column]
                    ) -> Column:
    """True when a free-text value mentions a hashed email, phone number or name (the same
    mentions as `optout.model.matching.mentions`)."""
    from pyspark.sql import functions as F

    if not hashes:
        return F.lit(False)
    text = simple_lower(column.cast("string"))
    emails = F.transform(F.regexp_extract_all(text, F.lit(TEXT_EMAIL), 0), hmac)
    phones = F.transform(F.regexp_extract_all(text, F.lit(TEXT_PHONE), 0),
                         lambda p: hmac(F.regexp_replace(p, "[^0-9]", "")))
    words = F.regexp_extract_all(text, F.lit(TEXT_WORD), 0)
    pairs = F.zip_with(words, F.slice(words, 2, F.greatest(F.size(words), F.lit(1))),
                       lambda a, b: F.when(b.isNotNull(), hmac(F.concat_ws(" ", a, b))))
    mentioned = F.concat(emails, phones, pairs)
    return F.when(column.isNull(), F.lit(False)).otherwise(
        F.exists(mentioned, lambda h: h.isin(hashes)))
