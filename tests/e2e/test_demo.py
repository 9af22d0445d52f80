"""`make demo` end to end, small: it must pass on a fresh checkout without AWS credentials."""

from __future__ import annotations

from cdk_replication.local import demo


def test_demo_passes_and_prints_a_verdict(capsys, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    code = demo.main(["--items", "60", "--writers", "2", "--no-color"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS" in out and "Traceback" not in out
    for step in ("Synthesized", "Started", "Deployed", "Wrote", "Replicated", "Compared"):
        assert f"✓ {step}" in out


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
