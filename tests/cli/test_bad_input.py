"""Bad input exits 2 with a one-line message that says what to fix, and writes nothing."""

from __future__ import annotations

import pytest

from cdk_replication.cli.tables import TableRef
from cdk_replication.cli.errors import BadInput
from .helpers import put_many, scan_all


@pytest.fixture()
def filled(ddb, make_table) -> str:
    source = make_table("bsrc")
    put_many(ddb, source, [{"pk": {"S": f"k{i}"}} for i in range(10)])
    return source


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("cdk-replication: error: ")
    return lines[0]


@pytest.mark.parametrize("command", [["backfill"], ["verify", "--repair"]])
def test_missing_target_table(cli, filled, command) -> None:
    run = cli(command[0], filled, "no-such-table", *command[1:])
    assert run.code == 2
    line = _one_line_error(run.err)
    assert "'no-such-table'" in line and "does not exist" in line and "us-east-1" in line


@pytest.mark.parametrize("command", [["backfill"], ["verify", "--repair"]])
def test_key_schema_mismatch_writes_nothing(cli, ddb, make_table, filled, command) -> None:
    numeric = make_table("bnum", pk=("pk", "N"))
    with_sort = make_table("bsort", sort=("sk", "S"))
    for target in (numeric, with_sort):
        run = cli(command[0], filled, target, *command[1:])
        assert run.code == 2
        line = _one_line_error(run.err)
        assert "key schema mismatch" in line and "pk (S)" in line
        assert scan_all(ddb, target) == {}


def test_json_mode_reports_bad_input_as_a_document(cli, filled) -> None:
    run = cli("verify", filled, "no-such-table", "--json")
    assert run.code == 2
    assert run.json()["exitCode"] == 2 and "does not exist" in run.json()["error"]


def test_missing_source_in_another_region(cli, make_table) -> None:
    target = make_table("btgt")
    run = cli("backfill", f"eu-west-1:{target}", target)
    assert run.code == 2
    assert "in region eu-west-1" in _one_line_error(run.err)


def test_unparseable_table_and_options(cli, filled) -> None:
    assert cli("backfill", filled, "x").code == 2  # too short to be a table name
    assert "is not a table" in cli("backfill", filled, "bad name!").err
    run = cli("verify", filled, filled + "-other", "--dry-run")
    assert run.code == 2 and "--dry-run only applies to --repair" in run.err
    assert cli("backfill", filled, filled, "--segments", "0").code == 2
    meta = cli("verify", filled, filled + "-other", "--conflict-attribute", "_rep_ts")
    assert meta.code == 2 and "starts with the metadata prefix" in meta.err
    same = cli("backfill", filled, filled)
    assert same.code == 2 and "same table" in same.err


def test_table_references() -> None:
    assert TableRef.parse("orders") == TableRef("orders")
    assert TableRef.parse("us-west-2:orders") == TableRef("orders", region="us-west-2")
    arn = "arn:aws:dynamodb:eu-central-1:123456789012:table/orders.v2"
    ref = TableRef.parse(arn)
    assert (ref.name, ref.region, ref.account, ref.api_name) == ("orders.v2", "eu-central-1", "123456789012", arn)
    assert TableRef.parse("arn:aws-cn:dynamodb:cn-north-1:123456789012:table/t_1").region == "cn-north-1"
    with pytest.raises(BadInput, match="give NAME, REGION:NAME"):
        TableRef.parse("arn:aws:dynamodb:us-east-1:123:table/short-account")


def test_access_denied_is_reported_before_writing(cli, ddb, filled, make_table, monkeypatch) -> None:
    """DynamoDB Local accepts any key, so the refusal is injected where botocore would raise it."""
    from botocore.exceptions import ClientError

    import cdk_replication.cli.tables as tables

    target = make_table("bden")
    real_probe = tables.probe_write

    def denied_probe(handle, role, *, delete=False):
        real_client = handle.client

        class Denying:
            def __getattr__(self, name):
                if name in ("put_item", "delete_item"):
                    def refuse(**kwargs):
                        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}},
                                          name)
                    return refuse
                return getattr(real_client, name)

        handle.client = Denying()
        try:
            real_probe(handle, role, delete=delete)
        finally:
            handle.client = real_client

    monkeypatch.setattr("cdk_replication.cli.commands.probe_write", denied_probe)
    run = cli("backfill", filled, target)
    assert run.code == 2
    line = _one_line_error(run.err)
    assert "access denied: PutItem" in line and "dynamodb:PutItem" in line
    assert scan_all(ddb, target) == {}


def test_tables_named_by_arn_and_region(cli, ddb, filled, make_table) -> None:
    from cdk_replication.local import DEFAULT_ACCOUNT

    target = make_table("barn")
    arn = f"arn:aws:dynamodb:us-east-1:{DEFAULT_ACCOUNT}:table/{filled}"
    run = cli("backfill", arn, f"us-east-1:{target}", "--json")
    assert run.code == 0, run.err
    assert run.json()["counts"]["copied"] == 10
    assert cli("verify", arn, target).code == 0


def test_unreachable_endpoint_and_help(local, capsys) -> None:
    import io
    import socket

    from cdk_replication.cli import main

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = io.StringIO()
    code = main(["verify", "a-table", "b-table", "--endpoint-url", f"http://127.0.0.1:{port}"],
                stdout=io.StringIO(), stderr=err)
    assert code == 2
    assert _one_line_error(err.getvalue()).endswith("check --endpoint-url, the region and the network")
    assert main(["--help"]) == 0
    assert "exit codes: 0 done" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2
