"""Apache Parquet files, folders of part files and hive-partitioned folders."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="parquet",
    source="optout.connectors.parquet.source:ParquetSource",
    target="optout.connectors.parquet.target:ParquetTarget",
    physical="optout.connectors.physical:FileStore",
    suffixes=(".parquet",),
    spark_source="optout.connectors.spark.source:SparkFileSource",
    spark_target="optout.connectors.spark.parquet_target:SparkParquetTarget",
    capabilities=Capabilities(physical_erasure=True, sample_in_place=True, locate=True, files=True),
)
