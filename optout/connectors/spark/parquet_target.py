"""Parquet datasets rewritten by Apache Spark (`--engine spark`).

The rows to change are those the plan located (file and row number), while the files are as
they were then and those rows still match (one Spark job reads only those rows); else one pass
over the dataset finds them (each row's file and number from Spark's hidden `_metadata`
column). Only the files holding them are rewritten, each by a Spark job (several at once) that
reads the one file and writes it without those rows (or with their columns changed).
Spark writes into a staging folder of the step, `.NAME.REQUEST.RANDOM.optout-spark` (mode
0700), beside the dataset: beside the file, or beside a partitioned folder's root, never inside
it, where a reader's `**/*.parquet` would take a half-written part file for data. Its part file
is the staged version the journal records; `check` reads it back in Spark and refuses a version
whose schema or compression differs from the file's; `commit` renames it over the file (the
staging folder must be on the file's file system, checked before anything is written) and
removes the staging folder. Journal, roll-forward and `resume` are the file targets' own
(optout/connectors/target.py). Verification reads the committed files back in Spark.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from optout.connectors.parquet.target import ParquetTarget
from optout.connectors.source import file_fingerprint
from optout.connectors.spark.matching import FILE, ROW, SparkMatcher, local_path
from optout.connectors.spark.source import spark_message
from optout.connectors.target import (
    ApplyError,
    Staged,
    ensure_writable,
    files_checksum,
    fsync_file,
)
from optout.model.faults import fault
from optout.model.matching import MatchQuery
from optout.model.runtime import Runtime
from optout.model.values import change

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

STAGING_SUFFIX = ".optout-spark"
#: most matching rows one step's row numbers are collected for (the driver holds them)
MAX_ROWS = 5_000_000
#: files of one dataset rewritten at once (each its own Spark job)
PARALLEL_REWRITES = 8


class SparkParquetTarget(ParquetTarget):
    """A Parquet file or folder whose changed files Spark rewrites."""

    stages_alone = False  # one Spark session: its jobs run one after another

    def __init__(self, step: object, hasher: object, engine: Runtime) -> None:
        super().__init__(step, hasher)
        self.engine = engine
        self._matcher: SparkMatcher | None = None
        self._staging: str | None = None  # this prepare's staging folder

    @property
    def spark(self) -> SparkSession:
        from optout.connectors.spark.session import session

        return session(self.engine)

    @property
    def matcher(self) -> SparkMatcher:
        if self._matcher is None:
            self._matcher = SparkMatcher(self.spark, self.hasher)
        return self._matcher

    def _read(self, paths: list[str]) -> DataFrame:
        """Files as Spark reads them (each file's own columns: no partition columns)."""
        return self.spark.read.parquet(*paths)

    def _spark(self, what: str, fn, *args):
        """Run a Spark action; a failure becomes this step's one-line error."""
        try:
            return fn(*args)
        except ApplyError:
            raise
        except Exception as exc:  # Spark's errors come from the JVM, under many classes
            raise ApplyError(f"{self.step.dataset}: Spark could not {what}: "
                             f"{spark_message(exc)}") from exc

    def _hits(self, paths: list[str], query: MatchQuery) -> dict[str, int]:
        """Per file, how many of its rows match (files without a match left out): one pass."""
        if not paths or (not query.keys and not query.texts):
            return {}
        df = self._read(paths)
        found = (self.matcher.where(df.select("*", _file_column()), query, set(df.columns))
                 .groupBy(FILE).count().collect())
        return {self._local(uri, paths): int(n) for uri, n in found}

    @staticmethod
    def _local(uri: str, paths: list[str]) -> str:
        """The dataset's own name of a file Spark names by URI."""
        path = local_path(uri)
        return {os.path.realpath(p): p for p in paths}.get(os.path.realpath(path), path)

    def _matching_rows(self, files: list[str], query: MatchQuery) -> dict[str, tuple[int, ...]]:
        """Per file, the numbers of its matching rows (files without one left out): where
        the plan located them and the files are as they were then, the located rows checked
        to match still (one job reading only those rows' files); else one pass over the
        dataset."""
        located = {p: (fp, rows) for p, fp, rows in self.step.locations}
        if located and set(files) <= set(located) and all(
                file_fingerprint(p) == located[p][0] for p in files):
            wanted = {p: tuple(sorted(located[p][1])) for p in files if located[p][1]}
            if not wanted:
                return {}
            numbers = sorted({r for rows in wanted.values() for r in rows})
            df = self._read(list(wanted))
            found = (self.matcher.where(df.select("*", _file_column(), _row_column())
                                        .where(_col(ROW).isin(numbers)), query,
                                        set(df.columns))
                     .select(FILE, ROW).collect())
            seen: dict[str, set[int]] = {}
            for uri, row in found:
                seen.setdefault(self._local(uri, list(wanted)), set()).add(int(row))
            if all(set(rows) <= seen.get(p, set()) for p, rows in wanted.items()):
                return wanted  # (rows the plan did not locate are found by the check)
        found_rows = self.matcher.rows(self._read(files), query, MAX_ROWS)
        if found_rows is None:
            raise ApplyError(f"{self.step.dataset}: more than {MAX_ROWS:,} rows match; "
                             "erase the subjects in smaller requests")
        return {self._local(p, files): tuple(r) for p, r in found_rows.items()}

    def prepare(self) -> Staged:
        query = self.match_query()
        staged = Staged()
        files = self.files()
        for path in files:
            staged.rows_before += pq.ParquetFile(path).metadata.num_rows
        before = {p: file_fingerprint(p) for p in files}
        hits = self._spark("search the dataset", self._matching_rows, files, query)
        unknown = set(hits) - set(files)
        if unknown:
            raise ApplyError(f"{self.step.dataset}: Spark read rows from a file the dataset "
                             f"does not list: {sorted(unknown)[0]}")
        staged.rows_after = staged.rows_before
        changed = [p for p in files if p in hits]
        for path in changed:
            ensure_writable(path, self.step.dataset)
        if changed:
            self._staging_folder(changed[0])
        # one Spark job per file, several at once: each job is small next to Spark's fixed
        # cost per job, which overlapping jobs hide (the cluster schedules their tasks)
        with ThreadPoolExecutor(min(PARALLEL_REWRITES, max(len(changed), 1))) as pool:
            jobs = [pool.submit(self._spark, f"rewrite {path}", self._rewrite_spark, path,
                                hits[path], n) for n, path in enumerate(changed)]
            for path, job in zip(changed, jobs, strict=True):
                new = job.result()
                staged.files.append((path, new))
                if len(staged.files) == 1:
                    fault("mid-spark-rewrite")  # a file staged, others being written
                staged.rows_changed += len(hits[path])
                staged.rows_after += (pq.ParquetFile(new).metadata.num_rows
                                      - pq.ParquetFile(path).metadata.num_rows)
        moved = [p for p in changed if file_fingerprint(p) != before[p]]
        if moved:
            raise ApplyError(f"{self.step.dataset}: {moved[0]} changed while it was rewritten")
        staged.checksum_before = files_checksum([p for p, _ in staged.files])
        staged.checksum_after = files_checksum([n for _, n in staged.files])
        return staged

    def _rewrite_spark(self, path: str, rows: tuple[int, ...], n: int) -> str:
        """Write the file's new version, without its rows `rows` (or with them changed), into
        the step's staging folder (`n`: the how-many-th file of the step); its part file."""
        source = pq.ParquetFile(path)
        meta = source.metadata
        codec = (meta.row_group(0).column(0).compression.lower()
                 if meta.num_row_groups else "snappy")
        df = self._read([path])
        columns = df.columns
        if self.deletes:
            out = (df.select("*", _row_column()).where(~_col(ROW).isin(list(rows)))
                   .select(*(_col(c) for c in columns)))
        else:
            out = self._edited(df, rows)
        folder = os.path.join(self._staging_folder(path), str(n))
        try:
            out.coalesce(1).write.mode("errorifexists").option("compression", codec) \
                .parquet(folder)
            parts = [n for n in os.listdir(folder) if not n.startswith((".", "_"))]
            if len(parts) != 1:
                raise ApplyError(f"{self.step.dataset}: Spark wrote {len(parts)} files for "
                                 f"{path}, expected one")
            new = os.path.join(folder, parts[0])
            _same_owner(path, new)
            _same_layout(path, new, self.step.dataset)
            fsync_file(new)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return new

    def _edited(self, df: DataFrame, rows: tuple[int, ...]) -> DataFrame:
        """The file's rows with the matched rows' columns changed as the step says: the
        matched rows (the subject's, few) come to the driver, get the same values the DuckDB
        engine writes (optout/model/values.py), and go back as a broadcast table joined by row
        number, so every other row is Spark's own, in order."""
        from pyspark.sql import functions as F
        from pyspark.sql.types import LongType, StructField, StructType

        columns = df.columns
        actions = {c: a for c, a in self.column_actions.items() if c in columns}
        numbered = df.select("*", _row_column())
        hit = (numbered.where(F.col(ROW).isin(list(rows)))
               .select(ROW, *(_col(c) for c in actions)).collect())
        kinds, params = self.kinds, dict(self.step.params)
        fields = {f.name: f for f in df.schema.fields}
        rows = []
        for r in hit:
            values = [r[0]]
            for i, (column, action) in enumerate(actions.items()):
                bits = _bits(fields[column].dataType.typeName())
                values.append(change(action, r[i + 1], kinds.get(column, "code"), params,
                                     self.hasher, frozenset(self.step.text_hashes), bits))
            rows.append(tuple(values))
        schema = StructType([StructField(ROW, LongType(), False)] + [
            StructField(f"optout_new_{i}", fields[c].dataType, True)
            for i, c in enumerate(actions)])
        edits = self.spark.createDataFrame(rows, schema).withColumn("optout_hit", F.lit(True))
        joined = numbered.join(F.broadcast(edits), ROW, "left")
        names = list(actions)
        return joined.select(*(
            F.when(F.col("optout_hit"), F.col(f"optout_new_{names.index(c)}"))
            .otherwise(_col(c)).alias(c) if c in actions else _col(c) for c in columns))

    def _staging_base(self) -> tuple[str, str]:
        """Where the step's staging folders go, and how their names start: beside the file,
        or beside the folder's root."""
        head, tail = os.path.split(os.path.normpath(self.step.location))
        return head or ".", f".{tail}.{self.request_id}."

    def _staging_folder(self, path: str) -> str:
        """The step's staging folder (made on first use, mode 0700), on `path`'s file system."""
        if self._staging is None:
            head, start = self._staging_base()
            folder = os.path.join(head, f"{start}{secrets.token_hex(6)}{STAGING_SUFFIX}")
            os.mkdir(folder, 0o700)
            self._staging = folder
        if os.stat(self._staging).st_dev != os.stat(os.path.dirname(path) or ".").st_dev:
            raise ApplyError(f"{self.step.dataset}: {path} is on another file system than "
                             f"{os.path.dirname(self._staging)}: Spark's version could not be "
                             "renamed over it")
        return self._staging

    def count_residue(self, path: str, original: str | None = None) -> int:
        paths = [path] if original is not None else self.files()
        return sum(self._spark("read the data back", self._hits, paths,
                               self.residue_query()).values())

    def staged_residue(self, staged: Staged) -> int:
        """One Spark pass over every staged version."""
        return sum(self._spark("read the staged versions back", self._hits,
                               [new for _, new in staged.files], self.residue_query()).values())

    def commit(self, staged: Staged) -> None:
        super().commit(staged)
        for _, new in staged.files:
            _remove_folder(_staging_of(new))

    def rollback(self, staged: Staged) -> None:
        super().rollback(staged)
        for _, new in staged.files:
            _remove_folder(_staging_of(new))

    def discard(self) -> None:
        super().discard()
        head, start = self._staging_base()
        for folder in glob.glob(os.path.join(glob.escape(head), glob.escape(start) + "*"
                                             + STAGING_SUFFIX)):
            _remove_folder(folder)


def _file_column():
    from pyspark.sql import functions as F

    return F.col("_metadata.file_path").alias(FILE)


def _row_column():
    from pyspark.sql import functions as F

    return F.col("_metadata.row_index").alias(ROW)


def _col(name: str):
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _bits(type_name: str) -> int:
    return {"byte": 8, "short": 16, "integer": 32, "long": 64}.get(type_name, 64)


def _staging_of(new: str) -> str:
    """The staging folder a staged part file is in (`FOLDER/N/part-….parquet`)."""
    return os.path.dirname(os.path.dirname(new))


def _remove_folder(folder: str) -> None:
    """A staging folder optout made (never through a link)."""
    if folder.endswith(STAGING_SUFFIX) and os.path.isdir(folder) and \
            not os.path.islink(folder):
        shutil.rmtree(folder, ignore_errors=True)


def _same_owner(path: str, new: str) -> None:
    """The new version gets the file's mode and owner (an erasure never widens who reads)."""
    st = os.stat(path)
    os.chmod(new, stat.S_IMODE(st.st_mode))
    if os.geteuid() in (0, st.st_uid):
        with contextlib.suppress(PermissionError):
            os.chown(new, st.st_uid, st.st_gid)


def _same_layout(path: str, new: str, dataset: str) -> None:
    """Refuse a version whose columns, types, nullability or compression differ from the
    file's (what Spark cannot write as the file had it)."""
    old, now = pq.read_schema(path), pq.read_schema(new)
    for a in old:
        if a.name not in now.names:
            raise ApplyError(f"{dataset}: Spark's version of {path} lacks column {a.name!r}")
        b = now.field(a.name)
        if a.type != b.type or a.nullable != b.nullable:
            raise ApplyError(f"{dataset}: Spark would write column {a.name!r} of {path} as "
                             f"{b.type}{'' if b.nullable else ' not null'}, the file has "
                             f"{a.type}{'' if a.nullable else ' not null'}: refused (apply "
                             "the plan with --engine duckdb, which keeps the file's schema)")
    if now.names != old.names:
        raise ApplyError(f"{dataset}: Spark's version of {path} has columns {now.names}, the "
                         f"file {old.names}")
    before, after = pq.ParquetFile(path).metadata, pq.ParquetFile(new).metadata
    if before.num_row_groups and after.num_row_groups:
        a = before.row_group(0).column(0).compression
        b = after.row_group(0).column(0).compression
        if a != b:
            raise ApplyError(f"{dataset}: Spark compressed {path} with {b}, the file uses {a}")
