"""CSV and TSV files, read and rewritten in their own dialect."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="csv",
    source="optout.connectors.csv.source:CsvSource",
    target="optout.connectors.csv.target:CsvTarget",
    physical="optout.connectors.physical:FileStore",
    suffixes=(".csv", ".tsv"),
    spark_source="optout.connectors.spark.source:SparkFileSource",
    capabilities=Capabilities(physical_erasure=True, locate=True, files=True),
)
