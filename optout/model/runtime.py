"""Which runtime reads and changes the data: DuckDB in this process (the default) or Apache
Spark (`--engine spark`, `engine:` in the deployment's configuration). The runtime is chosen
once per command and handed to whatever opens a source or a target; sources and targets stay
behind their small interfaces (optout/connectors/source.py, optout/connectors/target.py)
whichever runtime runs them, and the connectors' registry picks the Spark variant of a
format (`optout.connectors.on_runtime`)."""

from __future__ import annotations

from dataclasses import dataclass

#: the runtimes, by the name `--engine` and the configuration's `engine:` give them
RUNTIMES = ("duckdb", "spark")


@dataclass(frozen=True)
class Runtime:
    """A runtime and, for Spark, where its cluster is (`local[2]`, `spark://…`, `sc://…`) and
    the Spark settings to start the session with."""

    name: str = "duckdb"
    master: str = "local[2]"
    conf: tuple[tuple[str, str], ...] = ()

    @property
    def spark(self) -> bool:
        return self.name == "spark"


DUCKDB = Runtime()
