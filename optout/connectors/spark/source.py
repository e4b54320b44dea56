"""Sources read by Apache Spark (`--engine spark`): Parquet files and (hive-partitioned) folders,
CSV, JSON Lines, and PostgreSQL tables through JDBC.

Each wraps the source DuckDB or psycopg would use and keeps what that one knows from metadata
alone (the datasets, their ids and reader options, fingerprints, foreign keys, declared
types), so a dataset is the same catalog entry on either engine. Spark reads the data: the
sample is drawn in Spark (`sample(fraction, seed)` sized from the row count, or PostgreSQL's
`TABLESAMPLE` pushed through JDBC) and only the sample reaches the driver, as Arrow; matching
runs in Spark SQL (optout/connectors/spark/matching.py).
"""

from __future__ import annotations

import getpass
import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

import duckdb
import pyarrow.parquet as pq

from optout.connectors.json.source import JsonSource
from optout.connectors.parquet.source import ParquetSource, within_columns
from optout.connectors.postgres.source import PostgresSource
from optout.connectors.source import Located, Source, file_fingerprint, flatten
from optout.connectors.spark.matching import FILE, ROW, SparkMatcher, column_of, local_path
from optout.model.dataset import DatasetRef, ForeignKey, Sample
from optout.model.duck import memory_duckdb
from optout.model.errors import DatasetUnreadable
from optout.model.matching import (
    MAX_KEPT,
    DuckDBMatcher,
    MatchQuery,
    MatchResult,
    beyond,
    covers,
    merged,
)
from optout.model.redaction import one_line
from optout.model.runtime import Runtime
from optout.model.sampling import bernoulli_percent
from optout.model.secret import KeyedHash

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: the table of kept rows (in the source's in-memory DuckDB)
KEPT = "optout_spark_kept"
#: beyond this many matching rows a Spark plan does not carry their positions (Spark collects
#: them through the driver, a Python object a row)
MAX_LOCATED_ROWS = 200_000
#: how much more than the wanted share `sample(fraction)` draws, so `limit` rarely falls short
OVERSAMPLE = 1.2



def spark_error(exc: BaseException) -> DatasetUnreadable:
    """A Spark failure as a one-line, redacted error (Spark quotes offending values)."""
    return DatasetUnreadable(spark_message(exc))


def spark_message(exc: BaseException) -> str:
    """The first line of what went wrong in Spark: the JVM's own message where Python's says
    only which call failed ("An error occurred while calling o47.json"), without the
    stage and task numbers a failed job's message starts with; redacted."""
    java = getattr(exc, "java_exception", None)
    text = str(java.getMessage() if java is not None else exc).strip()
    first = text.split("\n")[0] if text else type(exc).__name__
    first = first.split("most recent failure: ", 1)[-1]
    first = first.split("): ", 1)[-1] if first.startswith("Lost task") else first
    return one_line(first)


@contextmanager
def read_errors() -> Iterator[None]:
    """Failures while Spark (or the driver's DuckDB) reads a dataset, as one-line
    `DatasetUnreadable` errors."""
    try:
        yield
    except DatasetUnreadable:
        raise
    except duckdb.Error as exc:
        raise DatasetUnreadable(one_line(exc)) from exc
    except Exception as exc:  # Spark's errors come from the JVM, under many classes
        raise spark_error(exc) from exc


class SparkSource(Source):
    """What both Spark sources share: the wrapped source for metadata, Spark for the data."""

    def __init__(self, inner: Source, engine: Runtime) -> None:
        super().__init__(inner.location)
        self.inner = inner
        self.engine = engine
        self.kind = inner.kind
        self._matchers: dict[bytes, SparkMatcher] = {}

    @property
    def spark(self) -> SparkSession:
        from optout.connectors.spark.session import session

        return session(self.engine)

    def frame(self, ref: DatasetRef) -> DataFrame:
        """The whole dataset as a Spark DataFrame."""
        raise NotImplementedError

    def count(self, ref: DatasetRef, df: DataFrame) -> tuple[int, bool]:
        """The dataset's row count, and whether it is exact."""
        return df.count(), True

    def datasets(self) -> Iterator[DatasetRef]:
        return self.inner.datasets()

    def fingerprint(self, ref: DatasetRef) -> str | None:
        return self.inner.fingerprint(ref)

    def foreign_keys(self, ref: DatasetRef) -> list[ForeignKey]:
        return self.inner.foreign_keys(ref)

    def definition(self, ref: DatasetRef) -> str | None:
        return self.inner.definition(ref)

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        with read_errors():
            df = self.frame(ref)
            total, exact = self.count(ref, df)
            if total > rows:
                df = df.sample(fraction=min(1.0, rows * OVERSAMPLE / total), seed=seed)
            table = df.limit(rows).toArrow()
        return Sample(flatten(table), int(total), exact)

    def matcher(self, hasher: KeyedHash) -> SparkMatcher:
        found = self._matchers.get(hasher.secret)
        if found is None:
            found = self._matchers[hasher.secret] = SparkMatcher(self.spark, hasher)
        return found

    def match(self, ref: DatasetRef, query: MatchQuery, hasher: KeyedHash) -> MatchResult:
        with read_errors():
            return self.matcher(hasher).match(self.frame(ref), query)

    def close(self) -> None:
        self.inner.close()  # the session lives as long as the process


class SparkFileSource(SparkSource):
    """Parquet, CSV and JSON files (and Parquet folders) read by Spark.

    Matching a Parquet dataset brings the matching rows (the columns the query reads, with
    each row's file and number; at most MAX_KEPT rows: the subjects' own) to the driver, into
    an in-memory DuckDB that never spills: the planner's next rounds search Spark only for the
    key values learned since, group and count on the kept rows, and locating the rows reads
    no file, as on the duckdb engine (optout/connectors/parquet/source.py).
    """

    def __init__(self, inner: Source, engine: Runtime) -> None:
        super().__init__(inner, engine)
        self._local: duckdb.DuckDBPyConnection | None = None
        #: the files' fingerprints, the query and the columns of the rows kept
        self._kept: tuple[dict[str, str], MatchQuery, tuple[str, ...]] | None = None

    def _keeper(self, hasher: KeyedHash) -> DuckDBMatcher:
        if self._local is None:
            self._local = memory_duckdb(threads=None)
        return DuckDBMatcher(self._local, hasher)

    def _fetch(self, df: DataFrame, query: MatchQuery, columns: tuple[str, ...],
               hasher: KeyedHash, append: bool) -> bool:
        """Keep the rows of `df` that `query` matches (their `columns`, file and number), or
        add them to those kept; False, with nothing kept, past MAX_KEPT rows."""
        from pyspark.sql import functions as F

        keeper = self._keeper(hasher)
        con = keeper.con
        if append and not query.keys and not query.texts:
            return True
        rows = (self.matcher(hasher).where(
            df.select(*(column_of(c, set(df.columns)).alias(c) for c in columns),
                      F.col("_metadata.file_path").alias(FILE),
                      F.col("_metadata.row_index").alias(ROW)), query, set(df.columns))
                .limit(MAX_KEPT + 1).toArrow())
        con.register("optout_fetched", rows)
        try:
            if append:
                con.execute(f"INSERT INTO {KEPT} SELECT * FROM optout_fetched AS f WHERE NOT "
                            f"EXISTS (SELECT 1 FROM {KEPT} AS k WHERE k.{FILE} = f.{FILE} "
                            f"AND k.{ROW} = f.{ROW})")
            else:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {KEPT} AS "
                            "SELECT * FROM optout_fetched")
        finally:
            con.unregister("optout_fetched")
        return keeper.bounded(KEPT)

    def match(self, ref: DatasetRef, query: MatchQuery, hasher: KeyedHash) -> MatchResult:
        if ref.format != "parquet" or (not query.keys and not query.texts):
            return super().match(ref, query, hasher)
        files = self.files(ref)
        kept, self._kept = self._kept, None
        with read_errors():
            before = {f: file_fingerprint(f) for f in files}
            df = self.frame(ref)
            if (kept is not None and kept[0] == before and within_columns(query, kept[2])
                    and self._fetch(df, beyond(query, kept[1]), kept[2], hasher, True)):
                result = self._keeper(hasher).match(KEPT, query)
                if {f: file_fingerprint(f) for f in files} == before:
                    self._kept = (before, merged(kept[1], query), kept[2])
                return result
            top = set(df.columns)
            columns = tuple(sorted({c if c in top or "." not in c else c.split(".")[0]
                                    for c in query.columns()}))
            if self._fetch(df, query, columns, hasher, False):
                result = self._keeper(hasher).match(KEPT, query)
                if {f: file_fingerprint(f) for f in files} == before:
                    self._kept = (before, query, columns)
                return result
            return self.matcher(hasher).match(df, query)

    def close(self) -> None:
        super().close()
        if self._local is not None:
            self._local.close()

    def frame(self, ref: DatasetRef) -> DataFrame:
        return read_files(self.spark, ref.format, self.files(ref), dict(ref.options),
                          self.location)

    def files(self, ref: DatasetRef) -> list[str]:
        """The dataset's files."""
        if isinstance(self.inner, ParquetSource):
            return self.inner.files()
        return [self.location]

    def count(self, ref: DatasetRef, df: DataFrame) -> tuple[int, bool]:
        if ref.format == "parquet":  # from the footers, without reading a row
            try:
                return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files(ref)), True
            except Exception as exc:
                raise DatasetUnreadable(f"not a readable Parquet file: {one_line(exc)}") from exc
        return df.count(), True

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        if ref.format == "parquet" and not self.files(ref):
            raise DatasetUnreadable(f"no Parquet files under {self.location}")
        sample = super().sample(ref, rows, seed)
        if ref.format == "json" and sample.row_count <= 1 and isinstance(self.inner, JsonSource):
            self.inner.sample(ref, rows, seed)  # a document, not a table: the same refusal
        return sample

    def locate(self, ref: DatasetRef, query: MatchQuery, hasher: KeyedHash) -> Located:
        """Per Parquet file, the row numbers of the matching rows, by Spark's row index of
        each file (one pass over the dataset); empty when a file changed meanwhile or more
        than MAX_LOCATED_ROWS rows match."""
        if ref.format != "parquet":
            return ()
        files = self.files(ref)
        with read_errors():
            before = {f: file_fingerprint(f) for f in files}
            kept = self._kept
            if (kept is not None and kept[0] == before and covers(kept[1], query)
                    and within_columns(query, kept[2])):
                found = defaultdict(list)
                for uri, row in self._keeper(hasher).select(KEPT, query, (FILE, ROW)):
                    found[local_path(uri)].append(int(row))
                if sum(map(len, found.values())) > MAX_LOCATED_ROWS:
                    return ()
                found = {p: sorted(r) for p, r in found.items()}
            else:
                found = self.matcher(hasher).rows(self.frame(ref), query, MAX_LOCATED_ROWS)
            if found is None or {f: file_fingerprint(f) for f in files} != before:
                return ()
        real = {os.path.realpath(f): f for f in files}
        rows = {real.get(os.path.realpath(p), p): r for p, r in found.items()}
        if not set(rows) <= set(files):
            return ()  # a row from a file the dataset does not list: let apply search
        return tuple((f, before[f], tuple(rows.get(f, ()))) for f in files)


def read_files(spark: SparkSession, fmt: str, paths: list[str], options: dict,
               root: str) -> DataFrame:
    """Spark's reader of a file dataset, with the options the catalog recorded for it (the
    same reading as `optout.connectors.readers.reader_sql` for DuckDB)."""
    if fmt == "parquet":
        reader = spark.read.option("mergeSchema", "true")
        if options.get("hive") and os.path.isdir(root):
            reader = reader.option("basePath", root)
        return reader.parquet(*paths)
    if fmt == "csv":
        delimiter = str(options.get("delimiter") or ",")
        quote = options.get("quote")
        quote = '"' if quote in (None, "", "\x00", "(empty)") else str(quote)
        escape = options.get("escape")
        escape = quote if escape in (None, "", "\x00", "(empty)") else str(escape)
        return spark.read.csv(paths, sep=delimiter, quote=quote, escape=escape,
                              header=bool(options.get("header", True)), inferSchema=True,
                              mode="FAILFAST", multiLine=True)
    if fmt == "json":
        return spark.read.json(paths, multiLine=not options.get("lines"), mode="FAILFAST")
    raise DatasetUnreadable(f"Spark does not read {fmt} datasets")


class SparkJdbcSource(SparkSource):
    """PostgreSQL tables read by Spark through the JDBC driver; the sample is drawn by the
    server (`TABLESAMPLE BERNOULLI … REPEATABLE`, as the psycopg source draws it)."""

    inner: PostgresSource

    def __init__(self, inner: PostgresSource, engine: Runtime) -> None:
        super().__init__(inner, engine)
        self._url, self._props = jdbc_of(inner.uri)

    def _read(self, query: str, init: str | None = None) -> DataFrame:
        reader = self.spark.read.format("jdbc").option("url", self._url) \
            .option("driver", "org.postgresql.Driver").option("query", query)
        if init:
            reader = reader.option("sessionInitStatement", init)
        for key, value in self._props.items():
            reader = reader.option(key, value)
        return reader.load()

    def frame(self, ref: DatasetRef) -> DataFrame:
        return self._read(f"SELECT * FROM {self.inner.relation_sql(ref)}")

    def sample(self, ref: DatasetRef, rows: int, seed: int) -> Sample:
        rel = self.inner.relation_sql(ref)
        with read_errors():
            total, exact = self.inner.count(ref)
            pct = bernoulli_percent(total, rows)
            init = None
            if total <= rows:
                query = f"SELECT * FROM {rel}"
            elif ref.option("relkind") in ("r", "p", "m"):
                query = (f"SELECT * FROM {rel} TABLESAMPLE BERNOULLI ({float(pct)}) "
                         f"REPEATABLE ({int(seed)}) LIMIT {int(rows)}")
            else:  # views cannot TABLESAMPLE: a seeded random() in the JDBC session
                init = f"SELECT setseed({(seed % 1000) / 1000.0})"
                query = f"SELECT * FROM {rel} WHERE random() < {pct / 100} LIMIT {int(rows)}"
            table = self._read(query, init).toArrow()
        return Sample(flatten(table), int(total), exact,
                      declared_types=self.inner.types(ref))


def jdbc_of(uri: str) -> tuple[str, dict[str, str]]:
    """The JDBC URL and connection properties of a `postgresql://` URI (the password goes in
    the properties, never in the URL Spark may log)."""
    parts = urlsplit(uri)
    host = parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    url = f"jdbc:postgresql://{host}{port}{parts.path or '/'}"
    props = {k: v for k, v in parse_qsl(parts.query) if k in ("sslmode", "options")}
    props["user"] = unquote(parts.username) if parts.username else os.environ.get(
        "PGUSER", getpass.getuser())
    if parts.password is not None:
        props["password"] = unquote(parts.password)
    return url, props
