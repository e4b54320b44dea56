"""Apache Parquet files, folders of part files and hive-partitioned folders."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="parquet",
    source="optout.connectors.parquet.source:ParquetSource",
    target="optout.connectors.parquet.target:ParquetTarget",
    suffixes=(".parquet",),
    spark_source="optout.connectors.spark.source:SparkFileSource",
    spark_target="optout.connectors.spark.parquet_target:SparkParquetTarget",
    capabilities=Capabilities(sample_in_place=True, locate=True, files=True),
)
