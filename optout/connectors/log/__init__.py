"""Log files: one record per line, free text."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="log",
    source="optout.connectors.log.source:LogSource",
    target="optout.connectors.log.target:LogTarget",
    physical="optout.connectors.physical:FileStore",
    suffixes=(".log",),
    capabilities=Capabilities(physical_erasure=True, locate=True, files=True, rebuild=False),
)
