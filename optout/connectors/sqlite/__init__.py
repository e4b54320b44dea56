"""SQLite database files: their tables and views."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="sqlite",
    source="optout.connectors.sqlite.source:SQLiteSource",
    target="optout.connectors.sqlite.target:SQLiteTableTarget",
    suffixes=(".sqlite", ".sqlite3", ".db"),
    dialect="sqlite",
    capabilities=Capabilities(sample_in_place=True, transactional=True, views=True,
                              foreign_keys=True),
)
