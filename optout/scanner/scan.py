"""A scan: open each source, sample each dataset, classify its columns, record the catalog."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from optout.connectors import open_source
from optout.connectors.dbt import find_projects
from optout.connectors.source import Source
from optout.model.dataset import ColumnFinding, DatasetRef, ForeignKey, Sample
from optout.model.errors import ScannerError
from optout.model.redaction import one_line, redact_uri_passwords
from optout.model.runtime import DUCKDB, Runtime
from optout.scanner.access import Principal, acting
from optout.scanner.catalog import Catalog
from optout.scanner.catalog.store import DatasetExtras
from optout.scanner.classify.context import link_by_values, link_people, pair_codes, settle
from optout.scanner.classify.settings import ClassifierSettings
from optout.scanner.dbt import register_dbt
from optout.scanner.lineage import is_lineage_file, register_lineage_file, register_view_lineage
from optout.scanner.sketches import key_sketches

if TYPE_CHECKING:
    from optout.scanner.classify.column import Classifier


@dataclass(frozen=True)
class ScanOptions:
    """How a scan samples and classifies."""

    sample_rows: int = 1000
    seed: int = 42
    full: bool = False  # re-scan datasets that have not changed
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)
    engine: Runtime = DUCKDB  # what reads the data (findings do not depend on it)

    def key(self) -> str:
        """What a dataset's stored findings depend on besides its content."""
        text = f"{self.sample_rows}\x00{self.seed}\x00{self.classifier.key()}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class DatasetResult:
    """The outcome for one dataset of a scan."""

    ref: DatasetRef
    status: str  # scanned | skipped | failed
    row_count: int | None = None
    findings: list[ColumnFinding] = field(default_factory=list)
    error: str | None = None

    @property
    def pii_columns(self) -> list[ColumnFinding]:
        """The columns found to hold PII."""
        return [f for f in self.findings if f.pii]


@dataclass
class ScanReport:
    """What a scan did: per dataset, and failures of whole sources."""

    run_id: str
    results: list[DatasetResult] = field(default_factory=list)
    source_errors: list[tuple[str, str]] = field(default_factory=list)
    #: lineage files or view definitions that could not be read (they do not fail the scan)
    lineage_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rows_sampled: int = 0

    @property
    def failed(self) -> bool:
        """True when any source or dataset could not be scanned."""
        return bool(self.source_errors) or any(r.status == "failed" for r in self.results)

    def count(self, status: str) -> int:
        """How many datasets ended with `status`."""
        return sum(r.status == status for r in self.results)

    def stats(self) -> dict[str, float | int]:
        """The run's statistics as the catalog stores them."""
        return {
            "scanned": self.count("scanned"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed") + len(self.source_errors),
            "pii_columns": sum(len(r.pii_columns) for r in self.results),
            "rows_sampled": self.rows_sampled,
            "seconds": round(self.seconds, 3),
        }


#: progress callback: (event, dataset or None, detail) — events: `listed`, `done`
Progress = Callable[[str, DatasetRef | None, object], None]


def scan(
    specs: list[str],
    catalog: Catalog,
    options: ScanOptions | None = None,
    progress: Progress | None = None,
    classifier: Classifier | None = None,
    caller: Principal | None = None,
) -> ScanReport:
    """Scan every source in `specs` into `catalog`; failures are recorded, never raised, except
    a catalog that cannot be written, and a call by nobody on a catalog with principals
    (callers come through `optout.Session`, which authorizes them)."""
    acting(catalog, caller)
    options = options or ScanOptions()
    if classifier is None:  # Presidio and spaCy load here, not when the module is imported
        from optout.scanner.classify.column import Classifier

        classifier = Classifier(options.classifier)  # bad settings fail before any write
    notify = progress or (lambda *_: None)
    report = ScanReport(run_id=uuid.uuid4().hex[:12])
    started = time.perf_counter()
    # Paths are made absolute so a dataset keeps its id whatever directory the scan ran from.
    specs = [s if "://" in s else os.path.abspath(s) for s in specs]
    safe_specs = [redact_uri_passwords(s) for s in specs]
    catalog.start_run(
        report.run_id,
        safe_specs,
        {"sample_rows": options.sample_rows, "seed": options.seed, "full": options.full},
    )
    opened: list[tuple[str, Source, list[DatasetRef]]] = []
    own = os.path.realpath(catalog.path)
    exclude = frozenset({own, own + ".wal"})
    for spec, safe in zip(specs, safe_specs, strict=True):
        source_id = hashlib.sha256(safe.encode()).hexdigest()[:12]
        try:
            source = open_source(spec, exclude, options.engine)
            refs = list(source.datasets())
        except ScannerError as exc:
            # Our own messages: sources already masked what they quote from an engine.
            report.source_errors.append((safe, str(exc)))
            catalog.record_failure(report.run_id, source_id, None, safe, str(exc))
            continue
        catalog.record_source(source_id, source.location, source.kind)
        opened.append((source_id, source, refs))
    notify("listed", None, sum(len(refs) for _, _, refs in opened))
    key = options.key()
    try:
        for source_id, source, refs in opened:
            for result in _scan_source(catalog, report, source_id, source, refs, options, key,
                                       classifier):
                report.results.append(result)
                notify("done", result.ref, result)
        for spec in specs:
            if os.path.isdir(spec):
                report.lineage_errors += register_found_lineage(catalog, spec)
        report.lineage_errors += register_view_lineage(catalog, report.run_id)
    finally:
        for _, source, _ in opened:
            source.close()
        report.seconds = time.perf_counter() - started
        catalog.finish_run(report.run_id, report.stats(), "failed" if report.failed else "ok")
    return report


@dataclass
class _Classified:
    """A dataset sampled and classified, not yet written (its table's context may change its
    findings)."""

    ref: DatasetRef
    sample: Sample
    fingerprint: str | None
    findings: list[ColumnFinding]
    foreign_keys: list[ForeignKey]


def _scan_source(catalog: Catalog, report: ScanReport, source_id: str, source: Source,
                 refs: list[DatasetRef], options: ScanOptions, key: str,
                 classifier: Classifier) -> list[DatasetResult]:
    """Every dataset of one source: sampled and classified, then read in context (each table
    with its columns, the tables with their foreign keys: optout/scanner/classify/context.py), then
    written to the catalog."""
    results: dict[str, DatasetResult] = {}
    classified: list[_Classified] = []
    for ref in refs:
        done = _classify_one(catalog, report, source_id, source, ref, options, key, classifier)
        if isinstance(done, DatasetResult):
            results[ref.id] = done
        else:
            classified.append(done)
    for c in classified:
        settle(c.ref.name, c.findings)
        pair_codes(c.findings, c.sample.table)
    tables = {c.ref.name: c.findings for c in classified}
    unchanged = {r.id for r in refs if r.id in results and results[r.id].status == "skipped"}
    if unchanged:  # tables scanned before: their findings are the context
        tables |= {d.name: d.columns for d in catalog.datasets() if d.id in unchanged}
    link_people(tables, {c.ref.name: c.foreign_keys for c in classified})
    wanted = classifier.settings.entities
    if wanted is None or "PERSON_ID" in wanted:  # `--entities` may leave person keys out
        link_by_values({c.ref.name: (c.findings, c.sample.table, c.sample.row_count)
                        for c in classified})
    for c in classified:
        results[c.ref.id] = _record(catalog, report, source_id, source, c, key)
    return [results[r.id] for r in refs]


def _classify_one(
    catalog: Catalog,
    report: ScanReport,
    source_id: str,
    source: Source,
    ref: DatasetRef,
    options: ScanOptions,
    key: str,
    classifier: Classifier,
) -> DatasetResult | _Classified:
    try:
        fingerprint = source.fingerprint(ref)
        if not options.full and catalog.is_current(ref, fingerprint, key):
            return DatasetResult(ref, "skipped")
        sample = source.sample(ref, options.sample_rows, options.seed)
        report.rows_sampled += sample.table.num_rows
        findings = classifier.classify(ref.name, sample)
        foreign_keys = source.foreign_keys(ref)
    except ScannerError as exc:
        error = str(exc)
        catalog.record_failure(report.run_id, source_id, ref, ref.location, error)
        return DatasetResult(ref, "failed", error=error)
    except Exception as exc:  # one dataset never ends the scan
        error = one_line(exc) if isinstance(exc, OSError) else _unexpected(exc)
        catalog.record_failure(report.run_id, source_id, ref, ref.location, error)
        return DatasetResult(ref, "failed", error=error)
    return _Classified(ref, sample, fingerprint, findings, foreign_keys)


def _unexpected(exc: BaseException) -> str:
    """An error optout did not foresee, named with its type (the traceback is in --debug)."""
    return f"could not be read ({type(exc).__name__}: {one_line(exc)})"


def _record(catalog: Catalog, report: ScanReport, source_id: str, source: Source,
            c: _Classified, key: str) -> DatasetResult:
    ref, sample, findings = c.ref, c.sample, c.findings
    try:
        extras = DatasetExtras(
            foreign_keys=c.foreign_keys,
            definition=source.definition(ref),
            sketches=key_sketches(sample, findings, catalog.hasher()),
        )
    except ScannerError as exc:
        catalog.record_failure(report.run_id, source_id, ref, ref.location, str(exc))
        return DatasetResult(ref, "failed", error=str(exc))
    except Exception as exc:  # one dataset never ends the scan
        catalog.record_failure(report.run_id, source_id, ref, ref.location, _unexpected(exc))
        return DatasetResult(ref, "failed", error=_unexpected(exc))
    catalog.record_dataset(report.run_id, source_id, ref, sample, c.fingerprint, key, findings,
                           extras)
    return DatasetResult(ref, "scanned", sample.row_count, findings)

def register_found_lineage(catalog: Catalog, folder: str) -> list[str]:
    """Register every lineage file below a scanned folder (a dbt project through its manifest,
    optout/scanner/dbt.py); returns one line per file, statement or edge that could not be followed."""
    errors = []
    projects = find_projects(Path(folder))
    records = catalog.datasets()  # read once for every SQL file below the folder
    for project in projects:
        try:
            errors += register_dbt(catalog, project)[1]
        except ScannerError as exc:
            errors.append(str(exc))
    for path in sorted(Path(folder).rglob("*")):
        if not (path.is_file() and is_lineage_file(path)) or any(
                p.startswith((".", "_")) for p in path.relative_to(folder).parts):
            continue
        if any(project in path.parents for project in projects):
            continue  # a dbt project's models are Jinja: its manifest says what they build
        try:
            errors += register_lineage_file(catalog, path, records)[1]
        except ScannerError as exc:
            errors.append(str(exc))
    return errors
