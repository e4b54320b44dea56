"""The Spark session a command runs on: built once per process from the engine's settings.

The PostgreSQL JDBC driver comes from the Debian package `libpostgresql-jdbc-java` (installed
by `make`); nothing is resolved or downloaded at run time (`spark.jars.packages` is not set).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from optout.model.errors import SourceUnavailable
from optout.model.runtime import Runtime

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: where Debian's libpostgresql-jdbc-java puts the driver
JDBC_JARS = ("/usr/share/java/postgresql.jar",)

#: settings optout needs whatever the user's: Parquet written as the files optout rewrites
#: were (microsecond timestamps, not INT96), no UI port, Arrow for the sample's way to Python
DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.showConsoleProgress": "false",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
}
LOG_CONFIG = os.path.join(os.path.dirname(__file__), "log4j2.properties")
_lock = threading.Lock()
_sessions: dict[Runtime, SparkSession] = {}


def jdbc_jar() -> str | None:
    """The PostgreSQL JDBC driver on this machine, if installed."""
    return next((j for j in JDBC_JARS if os.path.exists(j)), None)


def session(engine: Runtime) -> SparkSession:
    """The process's Spark session for `engine` (started on first use)."""
    with _lock:
        found = _sessions.get(engine)
        if found is not None:
            return found
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise SourceUnavailable("the spark engine needs pyspark (pip install "
                                    "'optout[spark]')") from exc
        builder = SparkSession.builder.appName("optout")
        if engine.master.startswith("sc://"):
            builder = builder.remote(engine.master)
        else:
            builder = builder.master(engine.master)
            # the driver runs here: its own settings (quiet logs, UTC); a local master also
            # binds to the loopback address rather than warning about the host name
            conf = {**DEFAULTS, "spark.driver.extraJavaOptions":
                    f"-Duser.timezone=UTC -Dlog4j2.configurationFile=file:{LOG_CONFIG}"}
            if engine.master.startswith("local"):
                os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            jar = jdbc_jar()
            if jar:
                conf["spark.jars"] = jar
            user = dict(engine.conf)
            for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
                if key in user:  # the user's options after optout's, not instead of them
                    user[key] = f"{conf[key]} {user[key]}"
            for key, value in {**conf, **user}.items():
                builder = builder.config(key, value)
        try:
            spark = builder.getOrCreate()
        except Exception as exc:  # no Java, a master that does not answer
            raise SourceUnavailable(f"cannot start Spark ({engine.master}): "
                                    f"{str(exc).strip().splitlines()[0][:200]}") from exc
        if not engine.master.startswith("sc://"):  # Spark Connect has no SparkContext here
            spark.sparkContext.setLogLevel("FATAL")  # as log4j2.properties says
        _sessions[engine] = spark
        return spark
