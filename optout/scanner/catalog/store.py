"""Reading and writing the catalog. Every call opens the DuckDB file briefly and closes it, so
other processes (a second scan, the CLI while a worker runs) can take their turn."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb

from optout.connectors import dialect_of
from optout.model.dataset import ColumnFinding, DatasetRef, ForeignKey, Sample
from optout.model.errors import CatalogError, DatasetNotFound
from optout.model.secret import DERIVED_SCHEME, KeyedHash, identifier_key, load_secret
from optout.scanner.catalog.migrations import DERIVED_SINCE, LATEST, SEALED_SINCE, migrate
from optout.scanner.catalog.seal import SEALED, read, seal

LOCK_WAIT_SECONDS = 30.0
NOW = "(now() AT TIME ZONE 'UTC')"
#: the sqlglot dialect of each dataset format's SQL


@dataclass
class DatasetExtras:
    """What a scan learns of a dataset besides its findings."""

    foreign_keys: list[ForeignKey] = field(default_factory=list)
    definition: str | None = None  # a view's SQL
    sketches: dict[str, tuple[str, list[str]]] = field(default_factory=dict)


@dataclass
class DatasetRecord:
    """A dataset as the catalog holds it, with its columns' findings."""

    id: str
    name: str
    kind: str
    format: str
    location: str
    row_count: int | None
    status: str
    error: str | None
    scanned_at: Any
    fingerprint: str | None
    settings_key: str | None
    options: dict[str, Any] = field(default_factory=dict)
    columns: list[ColumnFinding] = field(default_factory=list)

    def column(self, name: str) -> ColumnFinding | None:
        """The column of that exact name."""
        return next((c for c in self.columns if c.name == name), None)

    def column_named(self, name: str) -> str | None:
        """The column SQL or a manifest means by `name`: that exact name, else the one column
        equal to it without case (SQL folds `PATIENT` to `patient`; dbt writes names as the
        warehouse folds them)."""
        if self.column(name) is not None:
            return name
        folded = [c.name for c in self.columns if c.name.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None

    def as_export(self) -> dict[str, Any]:
        """The stable export shape (see README: `catalog export`)."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "format": self.format,
            "location": self.location,
            "row_count": self.row_count,
            "status": self.status,
            "error": self.error,
            "scanned_at": self.scanned_at.isoformat() if self.scanned_at else None,
            "columns": [c.as_export() for c in self.columns],
        }


#: tables whose rows were made under the catalog's key
_KEYED_TABLES = ("key_sketches", "ledger_values", "principals", "audit_log", "plans",
                 "catalog_state")
_NO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


#: in a threaded process, connections open and close one at a time: DuckDB tears its database
#: instance down when the last connection closes, and a connection opened meanwhile in another
#: thread meets the file still held ("Unique file handle conflict")
_OPENING = threading.Lock()


class Catalog:
    """The DuckDB catalog file at `path` (created, with mode 0600, on first write)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._hasher: KeyedHash | None = None
        self._secret: bytes | None = None
        self._migrated = False  # this process saw the schema at LATEST: no check each time
        #: several threads of this process connect at once (the HTTP server): every connection
        #: is opened read-write, since DuckDB refuses a read-only one beside a read-write one
        #: in one process (read-only callers still only read)
        self.threaded = False
        #: the thread holding the catalog (`held()`) and the connection it keeps open: that
        #: thread's connections meanwhile are cursors of it
        self._held: tuple[int, duckdb.DuckDBPyConnection] | None = None

    def hasher(self) -> KeyedHash:
        """The keyed hash of identifiers: HMAC under a key derived from the catalog secret for
        that purpose alone (catalogs made before the derived key keep the secret itself; see
        `identifier_key`). The key file is created on first use, never again once the catalog
        holds anything made under it."""
        if self._hasher is None:
            root = self.secret()
            derived = self._identifier_scheme() >= DERIVED_SCHEME
            self._hasher = KeyedHash(identifier_key(root) if derived else root, derived)
        return self._hasher

    def secret(self) -> bytes:
        """The catalog secret itself: the root of every seal and MAC (rows, plans, the audit
        log, reports). Never given to an engine; identifiers are hashed under `hasher()`."""
        if self._secret is None:
            self._secret = load_secret(self.path, create=not self._keyed())
        return self._secret

    def _identifier_scheme(self) -> int:
        """How identifiers are keyed: the sealed catalog state's scheme; a catalog made before
        it (no state row yet) keys them with the secret itself; a new catalog derives."""
        if not os.path.exists(self.path):
            return DERIVED_SCHEME
        with self.connect(read_only=True, checked=False) as con:
            state = _state(con)
            if state is not None:
                return state[1]
            return DERIVED_SCHEME if _version(con) == 0 else 1

    def _keyed(self) -> bool:
        """True when the catalog holds something made under its key (sketches, erased subjects,
        principals, the audit chain, plans): a new key would silently match none of it."""
        if not os.path.exists(self.path):
            return False
        with self.connect(read_only=True, checked=False) as con:
            return _holds_keyed_rows(con)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Within the block, connections are cursors of one connection kept open: DuckDB
        starts a database instance for every new connection (15-20 ms each; a plan or an apply
        makes dozens). Each is checked as a new connection is. Other processes wait for the
        catalog meanwhile, as they wait for any connection: hold it around short runs of
        bookkeeping only, never around a pass over the data or a wait for another process (a
        lease). A no-op in a threaded process, for a catalog not made yet, inside another
        hold, and where the catalog cannot be opened for writing (its connections then open
        as they would)."""
        if self._held is not None or self.threaded or not os.path.exists(self.path):
            yield
            return
        try:
            con = self._open(read_only=False)
        except CatalogError:
            yield
            return
        self._held = (threading.get_ident(), con)
        try:
            yield
        finally:
            self._held = None
            con.close()

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """A new connection; waits for another process's write lock to go away."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                with _OPENING if self.threaded else contextlib.nullcontext():
                    return duckdb.connect(self.path, read_only=read_only and not self.threaded,
                                          config=_NO_EXTENSIONS)
            except duckdb.IOException as exc:
                if "lock" in str(exc).lower() and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise CatalogError(
                    f"{self.path}: cannot open the catalog: {str(exc).splitlines()[0]}"
                ) from exc
            except duckdb.Error as exc:
                raise CatalogError(
                    f"{self.path}: not a catalog: {str(exc).splitlines()[0]}"
                ) from exc

    @contextlib.contextmanager
    def connect(self, read_only: bool = False, checked: bool = True
                ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection (inside `held()`, a cursor of the held one: closing it
        rolls back what it left open, as closing a connection does); waits for another
        process's write lock to go away. `checked=False`: no schema check (reading whether the
        catalog holds keyed rows)."""
        if read_only and not os.path.exists(self.path):
            raise CatalogError(f"{self.path}: no catalog here yet (run `optout scan` first)")
        created = not os.path.exists(self.path)
        held = self._held[1] if self._held and self._held[0] == threading.get_ident() else None
        con = held.cursor() if held is not None else self._open(read_only)
        try:
            if created:
                os.chmod(self.path, 0o600)
            if checked and not read_only and not (self._migrated and not created):
                self._upgrade(con)
            elif checked and _version(con) != LATEST:
                raise CatalogError(
                    f"{self.path}: catalog schema is at version {_version(con)}, "
                    f"expected {LATEST}; run any writing command to migrate"
                )
            yield con
        finally:
            with _OPENING if self.threaded and held is None else contextlib.nullcontext():
                con.close()

    def _upgrade(self, con: duckdb.DuckDBPyConnection) -> None:
        """Check the schema against its sealed version, then migrate. An upgrade never seals
        a row it did not write: a catalog whose schema_version disagrees with its sealed
        state, or that looks older than seals while it holds rows of sealed tables or an
        audit log (as an edit that dropped the seals would make it), is refused, naming the
        table."""
        before = _version(con)
        state = _state(con)
        secret = self._secret_with(con)
        if state is not None:
            read(con, secret, "catalog_state")  # a forged state row is named as such
            if state[0] != before:
                raise CatalogError(
                    f"{self.path}: catalog_state: the schema_version table says {before} but "
                    f"the sealed state says {state[0]}: the schema was edited outside optout "
                    "(made to look older or newer); refused")
        elif before >= DERIVED_SINCE:
            raise CatalogError(f"{self.path}: catalog_state: the sealed schema version is "
                               "missing (deleted outside optout); refused")
        elif before > 0:
            for table in (*SEALED, "audit_log"):
                columns = _columns(con, table)
                if not columns or not con.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
                    continue
                if before < SEALED_SINCE or "mac" not in columns:
                    raise CatalogError(_unsealed(self.path, table, before))
        self._migrated = migrate(con) == LATEST
        if before == LATEST:
            return
        con.execute("BEGIN TRANSACTION")
        if state is None:  # written once, by the migration that made the table
            con.execute("INSERT INTO catalog_state VALUES (1, ?, ?, NULL)",
                        [LATEST, DERIVED_SCHEME if before == 0 else 1])
        else:
            con.execute("UPDATE catalog_state SET schema_version = ?", [LATEST])
        seal(con, secret, "catalog_state")
        con.execute("COMMIT")

    def _secret_with(self, con: duckdb.DuckDBPyConnection) -> bytes:
        """The secret, asking the open connection whether the catalog holds keyed rows."""
        if self._secret is None:
            self._secret = load_secret(self.path, create=not _holds_keyed_rows(con))
        return self._secret

    # -- writing --------------------------------------------------------------------------

    def start_run(self, run_id: str, sources: list[str], settings: dict[str, Any]) -> None:
        """Record the start of a scan run."""
        with self.connect() as con:
            con.execute(
                "INSERT INTO scan_runs (id, started_at, sources, settings, status) "
                "VALUES (?, (now() AT TIME ZONE 'UTC'), ?, ?, 'running')",
                [run_id, json.dumps(sources), json.dumps(settings)],
            )

    def finish_run(self, run_id: str, stats: dict[str, Any], status: str) -> None:
        """Record a scan run's statistics and outcome."""
        with self.connect() as con:
            con.execute(
                "UPDATE scan_runs SET finished_at = (now() AT TIME ZONE 'UTC'), status = ?, datasets_scanned = ?, "
                "datasets_skipped = ?, datasets_failed = ?, pii_columns = ?, rows_sampled = ?, "
                "seconds = ? WHERE id = ?",
                [
                    status,
                    stats["scanned"],
                    stats["skipped"],
                    stats["failed"],
                    stats["pii_columns"],
                    stats["rows_sampled"],
                    stats["seconds"],
                    run_id,
                ],
            )

    def source_locations(self) -> list[str]:
        """Every location a scan was given (folders, files, database URIs without passwords)."""
        with self.connect(read_only=True) as con:
            return [r[0] for r in con.execute("SELECT location FROM sources").fetchall()]

    def record_source(self, source_id: str, location: str, kind: str) -> None:
        """Remember a source (first seen, last scanned)."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            updated = con.execute(
                "UPDATE sources SET last_scanned = (now() AT TIME ZONE 'UTC') WHERE id = ? "
                "RETURNING id",
                [source_id],
            ).fetchall()
            if not updated:
                con.execute(
                    "INSERT INTO sources VALUES (?, ?, ?, (now() AT TIME ZONE 'UTC'), (now() AT TIME ZONE 'UTC'))",
                    [source_id, location, kind],
                )
            con.execute("COMMIT")

    def record_dataset(
        self,
        run_id: str,
        source_id: str,
        ref: DatasetRef,
        sample: Sample,
        fingerprint: str | None,
        settings_key: str,
        findings: list[ColumnFinding],
        extras: DatasetExtras | None = None,
    ) -> None:
        """Replace what the catalog knows of a dataset with a fresh scan, in one transaction."""
        types = sample.column_types()
        schema = [{"name": n, "type": types[n]} for n in sample.table.column_names]
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                extras = extras or DatasetExtras()
                for table in ("datasets", "columns", "findings", "foreign_keys", "key_sketches"):
                    key = "id" if table == "datasets" else "dataset_id"
                    con.execute(f"DELETE FROM {table} WHERE {key} = ?", [ref.id])
                con.execute(
                    "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (now() AT TIME ZONE 'UTC'), ?, "
                    "'ok', NULL)",
                    [
                        *_identity(ref, source_id),
                        sample.row_count,
                        sample.row_count_exact,
                        json.dumps(schema),
                        fingerprint,
                        settings_key,
                        run_id,
                    ],
                )
                con.executemany(
                    "INSERT INTO columns VALUES (?, ?, ?, ?)",
                    [[ref.id, i, c["name"], c["type"]] for i, c in enumerate(schema)],
                )
                if findings:
                    con.executemany(
                        "INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                        "?, ?, ?)",
                        [
                            [
                                ref.id,
                                f.name,
                                f.pii,
                                f.entity,
                                f.score,
                                f.identifier,
                                f.free_text,
                                json.dumps(f.entities),
                                json.dumps(f.signals),
                                f.sample_size,
                                f.non_null,
                                f.distinct,
                                json.dumps(f.examples),
                                f.sensitivity,
                                f.category,
                                f.evidence,
                            ]
                            for f in findings
                        ],
                    )
                for fk in extras.foreign_keys:
                    con.execute("INSERT INTO foreign_keys VALUES (?, ?, ?, ?)",
                                [ref.id, json.dumps(fk.columns), fk.ref_table,
                                 json.dumps(fk.ref_columns)])
                for column, (kind, hashes) in extras.sketches.items():
                    con.execute("INSERT INTO key_sketches VALUES (?, ?, ?, ?)",
                                [ref.id, column, kind, json.dumps(hashes)])
                con.execute("DELETE FROM definitions WHERE dataset_id = ? AND origin = 'view'",
                            [ref.id])
                if extras.definition:
                    con.execute(f"INSERT INTO definitions VALUES (?, ?, ?, 'view', {NOW})",
                                [ref.id, extras.definition, dialect_of(ref.format)])
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def record_failure(
        self, run_id: str, source_id: str, ref: DatasetRef | None, location: str, error: str
    ) -> None:
        """Record that a dataset (or a whole source, when `ref` is None) could not be scanned.

        A dataset scanned before keeps its findings, marked failed with the error.
        """
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            con.execute(
                "INSERT INTO scan_errors VALUES (?, ?, ?, ?, ?, (now() AT TIME ZONE 'UTC'))",
                [run_id, ref.id if ref else None, ref.name if ref else None, location, error],
            )
            if ref is not None:
                known = con.execute(
                    "UPDATE datasets SET status = 'failed', error = ?, "
                    "scan_run_id = ? WHERE id = ? RETURNING id",
                    [error, run_id, ref.id],
                ).fetchall()
                if not known:
                    con.execute(
                        "INSERT INTO datasets (id, source_id, name, kind, format, location, "
                        "options, scan_run_id, status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                        "'failed', ?)",
                        [*_identity(ref, source_id), run_id, error],
                    )
            con.execute("COMMIT")

    # -- reading --------------------------------------------------------------------------

    def is_current(self, ref: DatasetRef, fingerprint: str | None, settings_key: str) -> bool:
        """True when the dataset was scanned with these settings and has not changed since."""
        if fingerprint is None or not os.path.exists(self.path):
            return False
        with self.connect() as con:
            rows = con.execute(
                "SELECT fingerprint, settings_key, status FROM datasets WHERE id = ?", [ref.id]
            ).fetchall()
        return rows == [(fingerprint, settings_key, "ok")]

    def datasets(self, pii_only: bool = False) -> list[DatasetRecord]:
        """Every dataset in the catalog with its findings, ordered by location and name."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT id, name, kind, format, location, row_count, status, error, scanned_at, "
                "fingerprint, settings_key, options FROM datasets ORDER BY location, name"
            ).fetchall()
            cols = con.execute(
                "SELECT c.dataset_id, c.name, c.type, f.pii, f.entity, f.score, f.identifier, "
                "f.free_text, f.entities, f.signals, f.sample_size, f.non_null, f.distinct_count, "
                "f.examples, f.sensitivity, f.category, f.evidence FROM columns c LEFT JOIN "
                "findings f ON f.dataset_id = c.dataset_id "
                "AND f.column_name = c.name ORDER BY c.dataset_id, c.position"
            ).fetchall()
        by_ds: dict[str, list[ColumnFinding]] = {}
        for r in cols:
            by_ds.setdefault(r[0], []).append(
                ColumnFinding(
                    name=r[1],
                    type=r[2],
                    pii=bool(r[3]),
                    entity=r[4],
                    score=r[5] or 0.0,
                    identifier=bool(r[6]),
                    free_text=bool(r[7]),
                    entities=_json(r[8], {}),
                    signals=_json(r[9], {}),
                    sample_size=r[10] or 0,
                    non_null=r[11] or 0,
                    distinct=r[12] or 0,
                    examples=_json(r[13], []),
                    sensitivity=r[14],
                    category=r[15],
                    evidence=r[16],
                )
            )
        records = [
            DatasetRecord(*r[:11], options=_json(r[11], {}), columns=by_ds.get(r[0], []))
            for r in rows
        ]
        if pii_only:
            records = [d for d in records if any(c.pii for c in d.columns)]
        return records

    def find(self, key: str) -> DatasetRecord:
        """The dataset whose id, name or `location#name` is `key`; ambiguous names are errors."""
        records = self.datasets()
        for match in (
            [d for d in records if d.id == key],
            [d for d in records if f"{d.location}#{d.name}" == key],
            [d for d in records if d.name == key],
        ):
            if len(match) == 1:
                return match[0]
            if len(match) > 1:
                ids = ", ".join(f"{d.id} ({d.location})" for d in match)
                raise DatasetNotFound(f"'{key}' names {len(match)} datasets: {ids}; use an id")
        raise DatasetNotFound(f"no dataset '{key}' in {self.path}")

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest scan runs, newest first."""
        with self.connect(read_only=True) as con:
            cur = con.execute("SELECT * FROM scan_runs ORDER BY started_at DESC LIMIT ?", [limit])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def errors(self, run_id: str) -> list[dict[str, Any]]:
        """The failures recorded by one scan run."""
        with self.connect(read_only=True) as con:
            cur = con.execute(
                "SELECT name, location, error FROM scan_errors WHERE run_id = ?", [run_id]
            )
            return [{"name": n, "location": loc, "error": e} for n, loc, e in cur.fetchall()]

    def schemas(self) -> dict[str, dict[str, str]]:
        """Dataset name → column → type, for SQL parsing (names that are unique only)."""
        with self.connect() as con:
            rows = con.execute("SELECT d.name, c.name, c.type FROM datasets d JOIN columns c "
                               "ON c.dataset_id = d.id ORDER BY d.name, c.position").fetchall()
            dup = {n for (n,) in con.execute(
                "SELECT name FROM datasets GROUP BY name HAVING count(*) > 1").fetchall()}
        out: dict[str, dict[str, str]] = {}
        for name, column, type_ in rows:
            if name not in dup and "." not in name:
                out.setdefault(name, {})[column] = type_
        return out

    def view_definitions(self, run_id: str) -> list[tuple[str, str, str, str, str]]:
        """(dataset id, name, location, sql, dialect) of the views a scan run read."""
        with self.connect() as con:
            return con.execute(
                "SELECT d.id, d.name, d.location, f.sql, f.dialect FROM definitions f "
                "JOIN datasets d ON d.id = f.dataset_id WHERE f.origin = 'view' "
                "AND d.scan_run_id = ? ORDER BY d.name", [run_id]).fetchall()

    def resolve(self, name: str, prefer_location: str | None = None) -> str | None:
        """The id of the dataset called `name` (in `prefer_location` first); None if unknown or
        ambiguous."""
        with self.connect() as con:
            rows = con.execute("SELECT id, location FROM datasets WHERE name = ? OR "
                               "location || '#' || name = ?", [name, name]).fetchall()
        local = [i for i, loc in rows if loc == prefer_location]
        if len(local) == 1:
            return local[0]
        return rows[0][0] if len(rows) == 1 else None

    def declare_pii(self, dataset_id: str, column: str, entity: str | None,
                    evidence: str) -> bool:
        """Mark a column PII because its owners say so (a dbt `meta: {pii: ...}`), when the
        scan did not find it; True when the finding changed. The declaration never makes a
        column an identifier (erasure does not look people up by it)."""
        from optout.scanner.classify.sensitivity import SENSITIVITY

        with self.connect() as con:
            row = con.execute("SELECT pii FROM findings WHERE dataset_id = ? AND column_name = ?",
                              [dataset_id, column]).fetchone()
            if row is None or row[0]:
                return False
            entity = entity or "PERSONAL_DATA"  # declared personal, of no named kind
            con.execute("UPDATE findings SET pii = true, entity = ?, score = 0.5, evidence = ?, "
                        "sensitivity = ? WHERE dataset_id = ? AND column_name = ?",
                        [entity, evidence, SENSITIVITY.get(entity, "other"), dataset_id, column])
        return True

    def _unresolved(self, upstream: str, downstream: str) -> str:
        """Why an edge's upstream name was left out: unknown, or which datasets it names."""
        with self.connect() as con:
            rows = con.execute("SELECT location || '#' || name FROM datasets WHERE name = ? "
                               "ORDER BY 1", [upstream]).fetchall()
        if not rows:
            return f"edge {upstream} -> {downstream} left out: no dataset {upstream!r}"
        return (f"edge {upstream} -> {downstream} left out: {upstream!r} names "
                f"{len(rows)} datasets ({', '.join(r for (r,) in rows)}): name one as "
                "LOCATION#NAME")

    def replace_lineage(self, origin_ref: str, edges: list[Any],
                        prefer_location: str | None = None,
                        unresolved: list[str] | None = None) -> int:
        """Store the edges one origin (a SQL file, a lineage file, a view) describes, replacing
        what it said before. An upstream name the catalog does not know, or knows more than
        once, is left out and named in `unresolved` (with the candidates); an unknown
        downstream is an error."""
        rows = []
        for edge in edges:
            down = self.resolve(edge.downstream, prefer_location)
            if down is None:
                raise CatalogError(f"{origin_ref}: no dataset '{edge.downstream}' in the catalog "
                                   "(scan it first)")
            up = self.resolve(edge.upstream, prefer_location)
            if up is None and unresolved is not None:
                unresolved.append(self._unresolved(edge.upstream, edge.downstream))
            if up is not None and up != down:
                rows.append([up, down, json.dumps(edge.columns, sort_keys=True), edge.kind,
                             edge.origin, edge.origin_ref or origin_ref])
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            # an origin's edges may name a part of it (`MANIFEST#model.shop.orders`)
            con.execute("DELETE FROM lineage_edges WHERE origin_ref = ? OR "
                        "starts_with(origin_ref, ? || '#')", [origin_ref, origin_ref])
            if rows:
                con.executemany(f"INSERT INTO lineage_edges VALUES (?, ?, ?, ?, ?, ?, {NOW})", rows)
            con.execute("COMMIT")
        return len(rows)

    def replace_declared_keys(self, origin_ref: str,
                              keys: list[tuple[str, str, str | None, str | None, str]]) -> int:
        """Store the keys one origin (a dbt manifest) declares, replacing what it said before:
        (dataset id, column, referenced dataset id or None for a unique key, referenced
        column, evidence)."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            con.execute("DELETE FROM declared_keys WHERE origin_ref = ?", [origin_ref])
            if keys:
                con.executemany("INSERT INTO declared_keys VALUES (?, ?, ?, ?, ?, ?)",
                                [[origin_ref, *k] for k in keys])
            con.execute("COMMIT")
        return len(keys)

    def declared_keys(self) -> list[tuple[str, str, str | None, str | None, str]]:
        """Every declared key: (dataset id, column, referenced dataset id, referenced column,
        evidence), in a stable order."""
        with self.connect(read_only=True) as con:
            return [tuple(r) for r in con.execute(
                "SELECT DISTINCT dataset_id, column_name, ref_dataset_id, ref_column, evidence "
                "FROM declared_keys ORDER BY ALL").fetchall()]

    def lineage(self) -> list[dict[str, Any]]:
        """Every lineage edge, with dataset names."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT e.upstream_id, u.name, e.downstream_id, d.name, e.column_map, e.kind, "
                "e.origin, e.origin_ref FROM lineage_edges e JOIN datasets u ON u.id = "
                "e.upstream_id JOIN datasets d ON d.id = e.downstream_id "
                "ORDER BY d.name, u.name").fetchall()
        return [{"upstream_id": r[0], "upstream": r[1], "downstream_id": r[2], "downstream": r[3],
                 "columns": _json(r[4], {}), "kind": r[5], "origin": r[6], "origin_ref": r[7]}
                for r in rows]

    def foreign_keys(self) -> list[tuple[str, list[str], str, list[str]]]:
        """(dataset id, columns, referenced table name, referenced columns) of every FK."""
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT dataset_id, columns, ref_table, ref_columns "
                               "FROM foreign_keys ORDER BY 1").fetchall()
        return [(d, _json(c, []), t, _json(rc, [])) for d, c, t, rc in rows]

    def sketches(self) -> dict[tuple[str, str], tuple[str, set[str]]]:
        """(dataset id, column) → (normalization kind, keyed-hash sketch)."""
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT dataset_id, column_name, kind, hashes "
                               "FROM key_sketches").fetchall()
        return {(d, c): (k, set(_json(h, []))) for d, c, k, h in rows}

    def export(self) -> dict[str, Any]:
        """The catalog as the stable JSON export: datasets with columns, and lineage edges."""
        return {"datasets": [d.as_export() for d in self.datasets()], "lineage": self.lineage()}


def _identity(ref: DatasetRef, source_id: str) -> list[Any]:
    """The leading columns of a `datasets` row: what the dataset is and where it lives."""
    return [
        ref.id,
        source_id,
        ref.name,
        ref.kind,
        ref.format,
        ref.location,
        json.dumps(dict(ref.options), default=str),
    ]


def _version(con: duckdb.DuckDBPyConnection) -> int:
    try:
        return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
    except duckdb.CatalogException:
        return 0


def _holds_keyed_rows(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the catalog holds a row made under its key (see `Catalog._keyed`)."""
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables").fetchall()}
    return any(con.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
               for t in _KEYED_TABLES if t in tables)


def _state(con: duckdb.DuckDBPyConnection) -> tuple[int, int] | None:
    """(schema version, identifier scheme) of the sealed catalog state, if there is one."""
    if not _columns(con, "catalog_state"):
        return None
    rows = con.execute("SELECT schema_version, hash_scheme FROM catalog_state").fetchall()
    return rows[0] if rows else None


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The columns of a table of the catalog (empty when there is no such table)."""
    return {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
        [table]).fetchall()}


def _unsealed(path: str, table: str, version: int) -> str:
    return (f"{path}: {table}: rows without seals in a catalog whose schema says version "
            f"{version}: optout never seals rows it did not write (an old catalog, or one "
            "edited to look older); refused: start a new catalog with `optout init`")


def _json(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default
