"""SQLite database files: their tables and views."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="sqlite",
    source="optout.connectors.sqlite.source:SQLiteSource",
    target="optout.connectors.sqlite.target:SQLiteTableTarget",
    physical="optout.connectors.sqlite.physical:SQLiteStore",
    suffixes=(".sqlite", ".sqlite3", ".db"),
    dialect="sqlite",
    capabilities=Capabilities(physical_erasure=True, sample_in_place=True, transactional=True, views=True,
                              foreign_keys=True),
)
