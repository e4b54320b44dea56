"""JSON documents and JSON Lines files."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="json",
    source="optout.connectors.json.source:JsonSource",
    target="optout.connectors.json.target:JsonTarget",
    physical="optout.connectors.physical:FileStore",
    suffixes=(".json", ".jsonl", ".ndjson"),
    spark_source="optout.connectors.spark.source:SparkFileSource",
    capabilities=Capabilities(physical_erasure=True, locate=True, files=True),
)
