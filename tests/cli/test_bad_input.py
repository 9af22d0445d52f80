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
    for command in ("verify", "backfill"):  # one check for both: the attribute would be ignored or stripped
        meta = cli(command, filled, filled + "-other", "--conflict-attribute", "_rep_ts")
        assert meta.code == 2 and "starts with the metadata prefix" in _one_line_error(meta.err), command
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


def test_version_prints_the_package_version() -> None:
    from importlib.metadata import version

    code, out, err = _run_main("--version")
    assert code == 0, err
    assert out == f"cdk-replication {version('cdk-replication')}\n"


def _run_main(*argv: str) -> tuple[int, str, str]:
    import io

    from cdk_replication.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["verify", "a-table", "b-table", "--endpoint-url", "127.0.0.1:8431"], "e.g. http://127.0.0.1:8431"),
        (["backfill", "a-table", "b-table", "--endpoint-url", "ftp://127.0.0.1:8431"], "not an endpoint URL"),
        (["backfill", "a-table", "b-table", "--endpoint-url", "http://"], "not an endpoint URL"),
        (["backfill", "a-table", "b-table", "--endpoint-url", "http://127.0.0.1:99999"], "not an endpoint URL"),
        (["migrate", "a-table", "b-table", "--endpoint-url", "localhost:4566"], "e.g. http://localhost:4566"),
        (["verify", "a-table", "b-table", "--region", "us east 1"], "not a region name"),
        (["migrate", "a-table", "b-table", "--mapping-region", "us_east_1!"], "not a region name"),
        (["backfill", "a-table", "b-table", "--rate", "inf"], "finite number greater than 0"),
        (["migrate", "a-table", "b-table", "--poll-interval", "nan"], "finite number greater than 0"),
        (["backfill", "a-table", "b-table", "--segments", "5000000"], "more than 1,000"),
        (["backfill", "a-table", "b-table", "--conflict-attribute", ""], "attribute name cannot be empty"),
        (["backfill", "a-table", "b-table", "--segments", "0"], "must be at least 1"),
        (["verify", "a-table", "b-table", "--no-such-option"], "unrecognized arguments"),
    ],
)
def test_bad_values_end_in_one_line_and_exit_2_before_any_aws_call(argv, expected, monkeypatch) -> None:
    """Values botocore would only refuse deep inside a command (ValueError, InvalidRegionError: a traceback
    and exit 1) are refused while parsing. No endpoint is reachable here: nothing gets that far."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # were anything sent, it would fail otherwise
    code, out, err = _run_main(*argv)
    assert code == 2, err
    line = _one_line_error(err)
    assert expected in line and "--help" in line
    assert out == ""


def test_bad_usage_in_json_mode_is_a_document(monkeypatch) -> None:
    import json

    code, out, err = _run_main("verify", "a-table", "b-table", "--endpoint-url", "127.0.0.1:8431", "--json")
    assert code == 2
    doc = json.loads(out)
    assert doc["exitCode"] == 2 and doc["command"] == "verify" and "not an endpoint URL" in doc["error"]


@pytest.mark.parametrize("command", ["backfill", "verify"])
def test_conflict_strategy_without_conflict_attribute_is_refused(command) -> None:
    code, _, err = _run_main(command, "a-table", "b-table", "--conflict-strategy", "VERSION",
                             "--endpoint-url", "http://127.0.0.1:9")
    assert code == 2
    line = _one_line_error(err)
    assert "--conflict-strategy VERSION needs --conflict-attribute NAME" in line


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [("AWS_DEFAULT_REGION", "us east 1", "is not a region name"), ("AWS_ENDPOINT_URL", "127.0.0.1:9", "scheme")],
)
def test_bad_region_or_endpoint_from_the_environment(variable, value, expected, monkeypatch) -> None:
    from cdk_replication.local import DEFAULT_ACCOUNT, credentials_for_account

    for name, setting in credentials_for_account(DEFAULT_ACCOUNT).as_env().items():
        monkeypatch.setenv(name, setting)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv(variable, value)
    code, _, err = _run_main("verify", "a-table", "b-table")
    assert code == 2, err
    assert expected in _one_line_error(err)


def test_an_unwritable_state_file_is_bad_input_and_nothing_is_written(cli, ddb, filled, make_table, tmp_path) -> None:
    target = make_table("bst")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    run = cli("backfill", filled, target, "--state-file", str(blocker / "state.json"))
    assert run.code == 2
    assert "cannot write the state file" in _one_line_error(run.err)
    assert scan_all(ddb, target) == {}


def test_an_arn_account_dynamodb_local_cannot_check_is_said_not_passed(cli, ddb, filled, make_table) -> None:
    """DynamoDB Local reports account 000000000000 for every table: an ARN naming another account cannot be
    checked there, and the command says so in one line instead of passing silently."""
    target = make_table("bacct")
    arn = f"arn:aws:dynamodb:us-east-1:111111111111:table/{filled}"
    run = cli("backfill", arn, target)
    assert run.code == 0, run.err
    notes = [line for line in run.err.splitlines() if "could not be checked" in line]
    assert len(notes) == 1, run.err
    assert "111111111111" in notes[0] and "000000000000" in notes[0] and "source" in notes[0]


@pytest.mark.parametrize("command", ["backfill", "verify"])
def test_the_unchecked_account_note_is_in_the_json_document_too(cli, filled, make_table, command) -> None:
    """A script reading --json must see what could not be checked, not only a human reading stderr."""
    target = make_table("bjson")
    arn = f"arn:aws:dynamodb:us-east-1:111111111111:table/{filled}"
    if command == "verify":
        assert cli("backfill", filled, target).code == 0
    run = cli(command, arn, target, "--json")
    assert run.code == 0, run.err
    notes = run.json()["notes"]
    assert len(notes) == 1 and "could not be checked" in notes[0] and "111111111111" in notes[0]
    assert notes[0] in run.err
    plain = cli(command, filled, target, "--json")
    assert plain.json()["notes"] == []


def test_an_arn_of_another_account_than_the_table_reports_is_refused(cli, ddb, filled, make_table,
                                                                      monkeypatch) -> None:
    """An endpoint that reports the table's real account (AWS, or a local gateway in front of DynamoDB Local)
    is checked: an ARN naming another account stops the command before anything is written."""
    from cdk_replication.cli.tables import Connection

    real_client = Connection.client

    def reporting_real_account(self, service, region, **kwargs):
        client = real_client(self, service, region, **kwargs)
        if service != "dynamodb":  # e.g. the SSM client that reads the published replicator parameter
            return client
        describe = client.describe_table

        def describe_with_account(**request):
            response = describe(**request)
            arn = response["Table"]["TableArn"].split(":")
            arn[4] = "222222222222"
            response["Table"]["TableArn"] = ":".join(arn)
            return response

        client.describe_table = describe_with_account
        return client

    monkeypatch.setattr(Connection, "client", reporting_real_account)
    target = make_table("bacct")
    arn = f"arn:aws:dynamodb:us-east-1:111111111111:table/{target}"
    run = cli("backfill", filled, arn)
    assert run.code == 2
    assert "belongs to account 222222222222, not 111111111111" in _one_line_error(run.err)
    assert scan_all(ddb, target) == {}
    same = cli("backfill", filled, f"arn:aws:dynamodb:us-east-1:222222222222:table/{target}")
    assert same.code == 0, same.err
    assert "could not be checked" not in same.err
