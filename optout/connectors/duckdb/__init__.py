"""DuckDB database files: their tables and views."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="duckdb",
    source="optout.connectors.duckdb.source:DuckDBFileSource",
    target="optout.connectors.duckdb.target:DuckDBTableTarget",
    physical="optout.connectors.duckdb.physical:DuckDBStore",
    suffixes=(".duckdb",),
    capabilities=Capabilities(physical_erasure=True, sample_in_place=True, transactional=True, views=True,
                              foreign_keys=True),
)
