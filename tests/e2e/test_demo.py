"""`make demo` end to end, small: it must pass on a fresh checkout without AWS credentials."""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from cdk_replication.local import demo


@dataclass
class DemoRun:
    """One run of the demo: exit code, what it printed, and the ``--failures-dir`` it was given."""

    code: int
    out: str
    failures_dir: Path


def _run_demo(args: list[str], failures_dir: Path) -> DemoRun:
    """``demo.main(args + ["--failures-dir", failures_dir])`` without AWS credentials in the environment."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_REGION"):
            mp.delenv(name, raising=False)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = demo.main([*args, "--failures-dir", str(failures_dir)])
    return DemoRun(code, out.getvalue(), failures_dir)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo with the default (DynamoDB Streams) app, run once for every test that reads its output: each
    run synthesizes, starts DynamoDB Local and replicates (~15 s of CPU)."""
    return _run_demo(["--items", "60", "--writers", "2", "--no-color"], tmp_path_factory.mktemp("demo-failures"))


def test_demo_passes_and_prints_a_verdict(default_run):
    code, out = default_run.code, default_run.out
    assert code == 0, out
    assert "PASS" in out and "Traceback" not in out
    for step in ("Synthesized", "Started", "Deployed", "Wrote", "Replicated", "Compared", "Poisoned", "Held back"):
        assert f"✓ {step}" in out
    # The poison item is not hidden: the verdict names it as the one expected difference.
    assert "except the poison item Id=990001, as expected" in out
    assert "cdk-replication redrive" in out


def test_demo_prints_the_lag_and_where_it_goes(default_run):
    """The demo writes at a steady rate and prints the lag percentiles and their split (issue 17): the values are
    not checked (no timing assertions), only that every part is there."""
    out = default_run.out
    assert re.search(r"✓ Wrote .* deletes · \d[\d,]*/s", out), out
    assert re.search(r"✓ Replicated .* lag p50 \d+\.\d\d s, p99 \d+\.\d\d s, max \d+\.\d\d s", out), out
    assert re.search(r"lag split p50/p99: poll wait \d+\.\d\d/\d+\.\d\d · batch assembly \d+\.\d\d/\d+\.\d\d"
                     r" · writing \d+\.\d\d/\d+\.\d\d s", out), out


def test_demo_writes_the_poison_record_where_it_says(default_run):
    code, out = default_run.code, default_run.out
    assert code == 0, out
    stored = [p for p in default_run.failures_dir.rglob("*") if p.is_file()]
    if stored:  # an S3 failure destination: the file the demo printed holds the record itself
        (path,) = stored
        assert f"file: {path}" in out
        record = json.loads(path.read_text())
        assert '"990001"' in record["payload"] and record["DDBStreamBatchInfo"]["batchSize"] == 1
    else:  # an SQS destination keeps no record, only its range
        assert "failure queue (metadata only" in out


def test_demo_reports_a_broken_app_in_one_line(capsys, tmp_path):
    app = tmp_path / "app.py"
    app.write_text("raise SystemExit('the app is broken on purpose')\n")
    code = demo.main(["--app", str(app), "--no-color"])
    out = capsys.readouterr().out
    assert code == 1
    assert "ERROR" in out and "broken on purpose" in out and "Traceback" not in out


def test_demo_with_the_kinesis_change_source(capsys, monkeypatch):
    """``-c changeSource=KINESIS``: changes go through the local Kinesis data stream; the lag tracker reads
    Kinesis records and the comparison counts the replica's tombstones as deleted items."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    code = demo.main(["--items", "60", "--writers", "2", "--no-color", "-c", "changeSource=KINESIS"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "1 Kinesis data stream (local Kinesis)" in out and "PASS" in out
    assert "0 missing, 0 differ, 0 extra" in out
