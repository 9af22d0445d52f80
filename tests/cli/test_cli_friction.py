"""The command line's rough edges a newcomer met (issue 13, item 7): help that points to what a pip user has,
the default state file named as it really is, no empty folder left behind, a true final progress line, and
state-file refusals that say how to start over."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from types import SimpleNamespace

import pytest

from cdk_replication.cli import build_parser, main
from cdk_replication.cli.state import DEFAULT_STATE_DIR, StateFile

from .helpers import put_many

COMMANDS = ("backfill", "verify", "migrate", "redrive")


def _help(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*argv, "--help"]) == 0
    return out.getvalue()


@pytest.mark.parametrize("argv", [(), *((c,) for c in COMMANDS)])
def test_help_points_to_what_a_pip_install_has(argv) -> None:
    text = " ".join(_help(*argv).split())  # argparse wraps lines; compare words
    # Per-command help is always installed; docs/cli.md only exists in the source repository, and help
    # that names it must say so rather than send a pip user looking for a file they do not have.
    assert "cdk-replication COMMAND --help" in text
    assert text.count("docs/cli.md") == 1
    assert "docs/cli.md in the cdk-replication source repository" in text


def _help_default_state_file(command: str) -> str:
    """The default named in ``--state-file``'s help (read from the parser: argparse wraps at hyphens)."""
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    option = next(a for a in subparsers.choices[command]._actions if "--state-file" in a.option_strings)
    match = re.search(r"default (\.cdk-replication/\S+\.json)", option.help or "")
    assert match, option.help
    return match.group(1)


def _handle(region: str, name: str) -> SimpleNamespace:
    return SimpleNamespace(info=SimpleNamespace(region=region, ref=SimpleNamespace(name=name),
                                                arn=f"arn:aws:dynamodb:{region}:111111111111:table/{name}"))


@pytest.mark.parametrize("command", ["backfill", "migrate"])
def test_the_default_state_file_in_help_is_the_one_the_command_writes(command, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    source, target = _handle("us-east-1", "orders"), _handle("eu-west-1", "orders-copy")
    if command == "backfill":
        from cdk_replication.cli.backfill import BackfillOptions, state_path_for

        real = state_path_for(source, target, BackfillOptions())
    else:
        from cdk_replication.cli.migrate.command import _open_state

        args = SimpleNamespace(state_file=None, restart=False)
        real = _open_state(args, source, SimpleNamespace(name="orders-copy"), "eu-west-1").path
    shown = _help_default_state_file(command)
    placeholders = re.findall(r"<[^>]+>", shown)
    assert len(placeholders) == 4, shown  # source region and name, target region and name
    for placeholder, value in zip(placeholders, ["us-east-1", "orders", "eu-west-1", "orders-copy"]):
        shown = shown.replace(placeholder, value, 1)
    assert shown == str(real)


def test_a_finished_backfill_leaves_no_empty_state_folder(cli, ddb, make_table, tmp_path) -> None:
    source, target = make_table("src"), make_table("tgt")
    put_many(ddb, source, [{"pk": {"S": f"k{i}"}} for i in range(5)])

    assert cli("backfill", source, target).code == 0  # default state file, in the working directory tmp_path

    assert not (tmp_path / ".cdk-replication").exists()


def test_the_state_folder_goes_only_when_empty_and_never_a_folder_of_the_users(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    ours = StateFile(tmp_path / "made" / "by" / "us.json", {"source": "a"})
    ours.start()
    ours.save()
    ours.delete()
    assert not (tmp_path / "made").exists()  # both folders it made, and only those
    assert tmp_path.is_dir()
    users = tmp_path / "users"
    users.mkdir()
    theirs = StateFile(users / "s.json", {"source": "a"})
    theirs.start()
    theirs.save()
    theirs.delete()
    assert users.is_dir()  # existed before the run: kept, though empty
    crowded = StateFile(DEFAULT_STATE_DIR / "b.json", {"source": "b"})
    crowded.start()
    crowded.save()
    other = DEFAULT_STATE_DIR / "other-run.json"
    other.write_text("{}")
    crowded.delete()
    assert other.exists()  # another run's file: the folder stays


def test_verify_progress_ends_on_done_not_on_a_re_read_that_never_ran(local, ddb, make_table) -> None:
    source, target = make_table("src"), make_table("tgt")
    items = [{"pk": {"S": f"k{i}"}} for i in range(5)]
    put_many(ddb, source, items)
    put_many(ddb, target, items)
    err = io.StringIO()

    code = main(["verify", source, target, "--endpoint-url", local.endpoint_url], stdout=io.StringIO(), stderr=err)

    assert code == 0, err.getvalue()
    final = [line for line in err.getvalue().splitlines() if line.startswith("verify ")][-1]
    assert "re-reading" not in final
    assert ": done; read 10" in final, final


@pytest.mark.parametrize("content", ["{not json", '{"version": 99}'])
def test_a_state_file_it_cannot_resume_is_refused_with_the_way_to_start_over(cli, ddb, make_table, tmp_path,
                                                                            content) -> None:
    source, target = make_table("src"), make_table("tgt")
    put_many(ddb, source, [{"pk": {"S": f"k{i}"}} for i in range(5)])
    state = tmp_path / "s.json"
    state.write_text(content)

    refused = cli("backfill", source, target, "--state-file", str(state))
    assert refused.code == 2 and "--restart" in refused.err, refused.err

    restarted = cli("backfill", source, target, "--state-file", str(state), "--restart", "--json")
    assert restarted.code == 0, restarted.err  # the way the message names works
    assert restarted.json()["counts"]["copied"] == 5 and not state.exists()


def test_missing_credentials_against_an_endpoint_name_dynamodb_locals_access_keys(monkeypatch) -> None:
    """DynamoDB Local keeps one database per access key; without that hint a new user meets "no credentials",
    then "table does not exist", before finding the key the local runtime uses."""
    import io

    from cdk_replication.cli import main

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    err = io.StringIO()
    code = main(["verify", "us-west-2:orders", "us-east-1:orders", "--endpoint-url", "http://127.0.0.1:9", "--quiet"],
                stdout=io.StringIO(), stderr=err)
    assert code == 2
    assert "no AWS credentials found" in err.getvalue() and "AWS_ACCESS_KEY_ID=LOCAL<N>" in err.getvalue()
