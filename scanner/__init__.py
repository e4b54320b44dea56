"""optout scanner: read sources, sample datasets, classify PII columns, keep the catalog."""

from scanner.errors import ScannerError
from scanner.scan import ScanOptions, ScanReport, scan

__all__ = ["ScanOptions", "ScanReport", "ScannerError", "scan"]
