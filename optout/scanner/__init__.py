"""optout scanner: read sources, sample datasets, classify PII columns, keep the catalog
(`optout.scanner.scan.scan` runs a scan)."""

from optout.model.errors import ScannerError

__all__ = ["ScannerError"]
