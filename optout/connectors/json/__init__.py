"""JSON documents and JSON Lines files."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="json",
    source="optout.connectors.json.source:JsonSource",
    target="optout.connectors.json.target:JsonTarget",
    suffixes=(".json", ".jsonl", ".ndjson"),
    spark_source="optout.connectors.spark.source:SparkFileSource",
    capabilities=Capabilities(locate=True, files=True),
)
