"""A local Spark session for ``verify --from-exports``, the tests and the benchmark (not used on Glue)."""

from __future__ import annotations

import os
import sys
from typing import Any


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


def local_session(cores: int | None = None, shuffle_partitions: int = 8, app: str = "cdk-replication") -> Any:
    """A ``local[cores]`` SparkSession with the web UI off and warnings-only logs.

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
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark
