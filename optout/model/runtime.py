"""Which engine reads and changes the data: DuckDB in this process (the default) or Apache
Spark (`--engine spark`, `engine:` in optout.yaml). The engine is chosen once per command and
handed to whatever opens a source or a target; sources and targets stay behind their small
interfaces (scanner/sources/base.py, engine/targets/base.py) whichever engine runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optout.connectors.source import Source

ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class Engine:
    """An engine and, for Spark, where its cluster is (`local[2]`, `spark://…`, `sc://…`) and
    the Spark settings to start the session with."""

    name: str = "duckdb"
    master: str = "local[2]"
    conf: tuple[tuple[str, str], ...] = ()

    @property
    def spark(self) -> bool:
        return self.name == "spark"

    def wrap(self, source: Source) -> Source:
        """The source read by this engine: on Spark, the files Spark reads (Parquet, CSV, JSON)
        and PostgreSQL tables (through JDBC); anything else as it is."""
        if not self.spark:
            return source
        from optout.connectors.spark.source import on_spark

        return on_spark(source, self)


DUCKDB = Engine()
