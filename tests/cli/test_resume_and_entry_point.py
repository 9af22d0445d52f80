"""The installed ``cdk-replication`` console script, interrupted with SIGINT and resumed from its state file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cdk_replication.local import DEFAULT_ACCOUNT, credentials_for_account
from .helpers import REGION, put_many, scan_all

SCRIPT = Path(sys.executable).parent / "cdk-replication"


def test_interrupted_backfill_resumes_from_its_state_file(local, cli, ddb, make_table, tmp_path) -> None:
    """200 items copied at 40 items/s, interrupted once 50 are in TARGET: the interrupt has (200 - 50) / 40 =
    3.75 s of rate-limited copying to land before the run would finish on its own."""
    assert SCRIPT.exists(), f"console script not installed at {SCRIPT}: run `make setup`"
    source, target = make_table("src"), make_table("tgt")
    items = [{"pk": {"S": f"k{i:04d}"}, "n": {"N": str(i)}} for i in range(200)]
    put_many(ddb, source, items)
    state = tmp_path / "resume.json"
    env = {**os.environ, **credentials_for_account(DEFAULT_ACCOUNT).as_env(), "AWS_DEFAULT_REGION": REGION}
    env.pop("AWS_PROFILE", None)
    proc = subprocess.Popen(
        [str(SCRIPT), "backfill", source, target, "--endpoint-url", local.endpoint_url, "--segments", "2",
         "--workers", "2", "--rate", "40", "--page-size", "20", "--state-file", str(state)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while ddb.scan(TableName=target, Select="COUNT")["Count"] < 50:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the backfill made no progress"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert "run the same command again to resume" in err
    # stderr is a pipe, not a terminal: progress comes as whole lines, the last one written on the way out.
    progress = [line for line in err.splitlines() if line.startswith("backfill ")]
    assert progress and "\r" not in err and "items/s" in progress[-1]
    saved = json.loads(state.read_text())
    assert saved["totalSegments"] == 2
    assert any(seg["lastEvaluatedKey"] for seg in saved["segments"].values())
    first_scanned = saved["totals"]["scanned"]
    assert 0 < first_scanned < 200

    # A second segment count would mean different segment boundaries: refused, nothing written.
    mismatch = cli("backfill", source, target, "--segments", "3", "--state-file", str(state))
    assert mismatch.code == 2 and "belongs to another run" in mismatch.err

    resumed = cli("backfill", source, target, "--segments", "2", "--state-file", str(state), "--json")
    assert resumed.code == 0, resumed.err
    doc = resumed.json()
    assert doc["resumed"] is True and doc["complete"] is True
    # Only unfinished pages are repeated: every item is counted once over the two runs.
    assert doc["totals"]["scanned"] == 200
    assert doc["counts"]["scanned"] < 200
    assert not state.exists()
    assert scan_all(ddb, target) == scan_all(ddb, source)
