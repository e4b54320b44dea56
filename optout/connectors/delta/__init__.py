"""Delta Lake tables: a folder holding `_delta_log/` is one table, read and changed through
delta-rs (`deltalake`), never as loose Parquet files."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="delta",
    source="optout.connectors.delta.source:DeltaSource",
    target="optout.connectors.delta.target:DeltaTarget",
    physical="optout.connectors.delta.physical:DeltaStore",
    marker="_delta_log",
    capabilities=Capabilities(physical_erasure=True, files=True),
)
