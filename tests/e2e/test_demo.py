"""`make demo` end to end, small: it must pass on a fresh checkout without AWS credentials."""

from __future__ import annotations

import json

from cdk_replication.local import demo


def test_demo_passes_and_prints_a_verdict(capsys, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    code = demo.main(["--items", "60", "--writers", "2", "--no-color"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS" in out and "Traceback" not in out
    for step in ("Synthesized", "Started", "Deployed", "Wrote", "Replicated", "Compared", "Poisoned", "Held back"):
        assert f"✓ {step}" in out
    # The poison item is not hidden: the verdict names it as the one expected difference.
    assert "except the poison item Id=990001, as expected" in out
    assert "cdk-replication redrive" in out


def test_demo_writes_the_poison_record_where_it_says(capsys, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    code = demo.main(["--items", "20", "--writers", "1", "--no-color", "--failures-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    stored = [p for p in tmp_path.rglob("*") if p.is_file()]
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
