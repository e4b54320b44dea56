"""optout scanner: read sources, sample datasets, classify PII columns, keep the catalog
(`scanner.scan.scan` runs a scan)."""

from scanner.errors import ScannerError

__all__ = ["ScannerError"]
