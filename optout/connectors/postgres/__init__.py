"""PostgreSQL databases: tables, views and materialized views of every schema."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="postgresql",
    source="optout.connectors.postgres.source:PostgresSource",
    target="optout.connectors.postgres.target:PostgresTableTarget",
    physical="optout.connectors.postgres.physical:PostgresStore",
    schemes=("postgresql", "postgres"),
    spark_source="optout.connectors.spark.source:SparkJdbcSource",
    default_port=5432,
    dialect="postgres",
    capabilities=Capabilities(physical_erasure=True, sample_in_place=True, transactional=True, views=True,
                              foreign_keys=True),
)
