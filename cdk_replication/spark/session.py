"""A local Spark session for ``verify --from-exports``, the tests and the benchmark (not used on Glue)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

#: The JVM's log4j2 configuration for local runs: nothing on stderr. The CLI's stderr holds only its own lines
#: (progress, its one-line errors); Spark's start-up banner ('Setting default log level to "WARN"'), log4j's
#: WARN lines and executors' stack traces on a failed task would bury them. A failure still reaches the user as
#: the exception Spark raises in Python. Set :data:`LOG4J2_ENV` to a log4j2 configuration file to see Spark's logs.
LOG4J2_QUIET = """\
# cdk-replication: Spark's own logs off for a local verify --from-exports (cdk_replication/spark/session.py)
rootLogger.level = off
# PySpark's gateway initialises logging "as a shell": unless its own logger is configured at the root's level,
# Spark prints 'Setting default log level to "WARN"' and raises the console threshold to WARN.
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = off
rootLogger.appenderRef.stderr.ref = stderr
appender.console.type = Console
appender.console.name = stderr
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
"""
#: Environment variable naming a log4j2 configuration file to use instead of :data:`LOG4J2_QUIET`.
LOG4J2_ENV = "CDK_REPLICATION_SPARK_LOG4J2"


class SparkMissing(ImportError):
    """pyspark (the optional extra ``spark``) is not installed."""


def require_pyspark() -> None:
    """Raise :class:`SparkMissing`, naming the extra to install, when pyspark cannot be imported."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkMissing(
            "verify --from-exports runs a Spark job and needs pyspark: pip install 'cdk-replication[spark]' "
            "(pyspark 3.5.4, the Spark of AWS Glue 5.0; it needs Java 17), or start the Glue job with --glue-job"
        ) from None


def log4j2_configuration() -> Path:
    """The log4j2 file the local JVM starts with: ``$CDK_REPLICATION_SPARK_LOG4J2`` when set, otherwise
    :data:`LOG4J2_QUIET` written once to the temporary folder."""
    chosen = os.environ.get(LOG4J2_ENV)
    if chosen:
        return Path(chosen).resolve()
    path = Path(tempfile.gettempdir()) / f"cdk-replication-log4j2-{os.getuid() if hasattr(os, 'getuid') else 0}.properties"
    if not path.exists() or path.read_text(encoding="utf-8") != LOG4J2_QUIET:
        scratch = path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(LOG4J2_QUIET, encoding="utf-8")
        scratch.replace(path)  # atomic: a concurrent process never reads half a file
    return path


def local_session(cores: int | None = None, shuffle_partitions: int = 8, app: str = "cdk-replication") -> Any:
    """A ``local[cores]`` SparkSession with the web UI off and Spark's own logs off (:func:`log4j2_configuration`,
    given to the JVM at launch, so that even its start-up lines are silent; setLogLevel comes too late for them).

    Args:
        cores: worker threads; default every core of this machine (``local[*]``).
        shuffle_partitions: partitions of the join's shuffle, default 8 (Spark's 200 would make hundreds of
            tiny tasks on one machine; adaptive execution still merges small ones).
        app: the application name.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    # The Python workers must run the interpreter (and so the packages) of this process, not the first
    # `python3` on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # Bind the driver and its block manager to the loopback interface: a local job talks to nobody else.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master(f"local[{cores or '*'}]")
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(max(2, cores or os.cpu_count() or 2)))
        .config("spark.driver.memory", "1g")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        # Read by spark-submit when it launches the driver JVM (local mode: the only JVM).
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log4j2_configuration().as_uri()}")
        .getOrCreate()
    )
    return spark
