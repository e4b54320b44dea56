"""The session's operations on what the catalog knows: scanning, the catalog, the identity
graph and lineage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optout.engine.graph import IdentityGraph, build_graph
from optout.engine.journal import ledger_values
from optout.engine.ledger import Reappearance, reappearances
from optout.model.redaction import redact_uri_passwords
from optout.scanner.catalog import DatasetRecord
from optout.scanner.config import Config
from optout.scanner.dbt import register_dbt
from optout.scanner.lineage import register_lineage_file
from optout.scanner.openlineage import register_openlineage
from optout.scanner.scan import Progress, ScanOptions, ScanReport, scan
from optout.session.base import SessionBase
from optout.session.operations import Operation

if TYPE_CHECKING:
    from optout.scanner.classify.column import Classifier

#: how each kind of lineage file is registered: path → (edges stored, problems)
_LINEAGE = {
    Operation.LINEAGE_ADD: lambda catalog, path: register_lineage_file(catalog, path),
    Operation.LINEAGE_ADD_SQL: lambda catalog, path: register_lineage_file(catalog, path),
    Operation.LINEAGE_ADD_DBT: register_dbt,
    Operation.LINEAGE_ADD_OPENLINEAGE: register_openlineage,
}


@dataclass
class Scanned:
    """What a scan did, and the erased subjects it found again."""

    report: ScanReport
    reappeared: list[Reappearance] = field(default_factory=list)


class DataOperations(SessionBase):
    """Scan, read the catalog, the identity graph and lineage."""

    def scan(self, sources: list[str], *, sample_rows: int | None = None,
             seed: int | None = None, entities: list[str] | None = None, full: bool = False,
             engine: str | None = None, progress: Progress | None = None,
             config: Config | None = None, classifier: Classifier | None = None) -> Scanned:
        """Scan files, folders and databases into the catalog. Datasets that fail are in the
        report (the operation is logged `failed`); erased subjects found again are named.
        `classifier`: one loaded already (a long-running caller keeps its spaCy model)."""
        with self.operation(Operation.SCAN, {"sources": [redact_uri_passwords(s)
                                                         for s in sources],
                                             "full": full}) as call:
            config = config or self.config(engine)
            options = ScanOptions(
                sample_rows=sample_rows or config.scan.sample_rows,
                seed=config.scan.seed if seed is None else seed,
                full=full,
                classifier=config.classifier_settings(entities, seed),
                engine=config.engine_of(),
            )
            report = scan(list(sources), self.catalog, options, progress, classifier,
                          caller=call.who)
            scanned = {r.ref.id for r in report.results if r.status == "scanned"}
            found = []
            if scanned and ledger_values(self.catalog):
                found = reappearances(self.catalog, build_graph(self.catalog, config), scanned)
            if report.failed:
                call.fail(f"{report.failed} datasets or sources could not be scanned")
            return Scanned(report, found)

    def datasets(self, pii_only: bool = False) -> list[DatasetRecord]:
        """Every dataset of the catalog (or those with PII columns)."""
        with self.operation(Operation.CATALOG_LIST, {"pii": pii_only}):
            return self.catalog.datasets(pii_only=pii_only)

    def dataset(self, name: str) -> DatasetRecord:
        """One dataset by id, name or LOCATION#NAME."""
        with self.operation(Operation.CATALOG_SHOW, {"dataset": name}):
            return self.catalog.find(name)

    def export_catalog(self, fmt: str = "json") -> dict[str, Any]:
        """The catalog as the stable export structure."""
        with self.operation(Operation.CATALOG_EXPORT, {"fmt": fmt}):
            return self.catalog.export()

    def graph(self) -> IdentityGraph:
        """The identity graph under the deployment's configuration."""
        with self.operation(Operation.GRAPH):
            return build_graph(self.catalog, self.config())

    def lineage(self, name: str) -> tuple[DatasetRecord, list[dict]]:
        """A dataset and every lineage edge of the catalog (what it derives from and what
        derives from it are among them)."""
        with self.operation(Operation.LINEAGE_SHOW, {"dataset": name}):
            return self.catalog.find(name), self.catalog.lineage()

    def add_lineage(self, paths: list[str], op: Operation = Operation.LINEAGE_ADD
                    ) -> list[tuple[str, int, list[str]]]:
        """Register lineage files (declared YAML or SQL; dbt projects; OpenLineage events):
        per path, the edges stored and what could not be followed (the operation is logged
        `failed` when anything could not)."""
        with self.operation(op, {"paths": list(paths)}) as call:
            done = [(p, *_LINEAGE[op](self.catalog, Path(p))) for p in paths]
            if any(problems for _, _, problems in done):
                call.fail("some lineage could not be followed")
            return done
