"""Apache Iceberg tables, through a catalog (pyiceberg): `iceberg://NAME` reads every table of
the catalog NAME, `iceberg://NAME/NAMESPACE.TABLE` one table. The catalog's properties are
pyiceberg's own configuration for NAME (`~/.pyiceberg.yaml`, `PYICEBERG_CATALOG__NAME__*`),
overlaid with the URI's query (`?type=sql&uri=sqlite:///…&warehouse=file:///…`); REST, Glue and
Hive catalogs are configured the same way."""

from optout.connectors.connector import Capabilities, Connector

CONNECTOR = Connector(
    key="iceberg",
    source="optout.connectors.iceberg.source:IcebergSource",
    target="optout.connectors.iceberg.target:IcebergTarget",
    physical="optout.connectors.iceberg.physical:IcebergStore",
    schemes=("iceberg",),
    capabilities=Capabilities(physical_erasure=True, files=True),
)
