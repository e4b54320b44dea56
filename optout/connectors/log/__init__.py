"""Log files: one record per line, free text."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="log",
    source="optout.connectors.log.source:LogSource",
    target="optout.connectors.log.target:LogTarget",
    suffixes=(".log",),
    capabilities=Capabilities(locate=True, files=True, rebuild=False),
)
