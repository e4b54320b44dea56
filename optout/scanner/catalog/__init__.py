"""The catalog: a DuckDB file holding sources, datasets, columns, findings and scan runs."""

from optout.scanner.catalog.store import Catalog, DatasetRecord

__all__ = ["Catalog", "DatasetRecord"]
