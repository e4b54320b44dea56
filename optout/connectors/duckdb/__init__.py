"""DuckDB database files: their tables and views."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="duckdb",
    source="optout.connectors.duckdb.source:DuckDBFileSource",
    target="optout.connectors.duckdb.target:DuckDBTableTarget",
    suffixes=(".duckdb",),
    capabilities=Capabilities(sample_in_place=True, transactional=True, views=True,
                              foreign_keys=True),
)
