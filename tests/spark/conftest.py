"""Fixtures for the Spark verify: ONE local SparkSession per test run (per xdist worker), DynamoDB Local
tables, an exporter that writes AWS's export layout from a table, and an in-process CLI runner.

Why an exporter of our own: moto's ``export_table_to_point_in_time`` (moto 5.2) writes one ``<uuid>.gz`` data
file and neither manifest, and it exports moto's tables, not DynamoDB Local's. AWS writes
``manifest-summary.json``, ``manifest-files.json`` and ``data/*.json.gz`` (cdk_replication/spark/layout.py),
so the exporter scans a DynamoDB Local table and writes that layout with
:func:`cdk_replication.spark.layout.write_export`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cdk_replication.cli import main
from cdk_replication.cli.items import to_json_item
from cdk_replication.local import DynamoDBLocal
from cdk_replication.local.compare import scan_items
from cdk_replication.spark.layout import write_export
from cdk_replication.spark.session import local_session

# The command-line tests' DynamoDB Local fixtures (tests/ is on sys.path, as for every test folder here).
from cli.conftest import ddb, local, make_table  # noqa: F401 - fixtures, used by name


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """local[2], 4 shuffle partitions, UI off, errors-only logs: start-up is most of a small job's time."""
    session = local_session(cores=2, shuffle_partitions=4, app="cdk-replication-tests")
    yield session
    session.stop()


@pytest.fixture()
def table(make_table: Callable[..., str]) -> Callable[..., str]:
    """``table(prefix, ("pk", "S"), ("sk", "N") | None)``: an on-demand table without a stream, deleted afterwards."""
    return lambda prefix, pk=("pk", "S"), sk=None: make_table(prefix, sort=sk, pk=pk, stream=False)


@pytest.fixture()
def export_table(ddb: Any, tmp_path: Path) -> Callable[[str], Path]:
    """``export_table(name) -> folder``: the table's items, as a native export lays them out (module docstring)."""

    def export(name: str) -> Path:
        items = [to_json_item(item) for item in scan_items(ddb, name)]
        # The manifest names the table as AWS does: its ARN and id, which verify --from-exports checks.
        described = ddb.describe_table(TableName=name)["Table"]
        return write_export(tmp_path / f"bucket-{name}", items, table_arn=described["TableArn"],
                            table_id=described.get("TableId"), files=3)

    return export


@pytest.fixture()
def cli(local: DynamoDBLocal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, Any, str]]:
    """``cli("verify", SRC, TGT, ...) -> (exit code, JSON document or text, stderr)`` in-process, quiet."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, Any, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main([args[0], "--endpoint-url", local.endpoint_url, *args[1:]], stdout=out, stderr=err)
        text = out.getvalue()
        return code, (json.loads(text) if "--json" in args else text), err.getvalue()

    return run
