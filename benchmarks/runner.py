"""Launching the measured child processes (worker, ceiling) and reducing their numbers."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cdk_replication.local import DynamoDBLocal, credentials_for_account

from benchmarks.workload import ACCOUNT, SOURCE_REGION, TableSpec

ROOT = Path(__file__).resolve().parent.parent
#: Where the measured code (``lambda_src/``, ``cdk_replication/``) comes from: a snapshot of a commit (set by
#: the command, see ``--code``) or, when ``None``, the working tree.
CODE_DIR: Path | None = None


def snapshot_code(revision: str, target: Path) -> Path:
    """``lambda_src/`` and ``cdk_replication/`` of git ``revision``, extracted into the new folder ``target``
    (``git archive``: uncommitted edits in a shared checkout can neither change nor break the measured code)."""
    target.mkdir()
    archive = subprocess.run(["git", "archive", revision, "lambda_src", "cdk_replication"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def base_env(ddb: DynamoDBLocal, region: str = SOURCE_REGION, account: str = ACCOUNT) -> dict[str, str]:
    """What Lambda (and the local runtime) gives the function: endpoint, region, credentials."""
    env = dict(ddb.endpoint_env())
    env.update(credentials_for_account(account).as_env())
    env["AWS_REGION"] = region
    env["AWS_DEFAULT_REGION"] = region
    return env


def replication_env(
    source: TableSpec,
    targets: list[TableSpec],
    mode: str,
    max_concurrency: int | None = None,
    change_source: str | None = None,
) -> dict[str, str]:
    """The REPLICATION_* variables the construct writes (``change_source`` ``KINESIS``: fed by a Kinesis data
    stream; ``None``: DynamoDB Streams, the variable unset)."""
    env = {
        "REPLICATION_MODE": mode,
        "REPLICATION_SOURCE": json.dumps(source.ref()),
        "REPLICATION_TARGETS": json.dumps([t.ref() for t in targets]),
        "REPLICATION_KEY": json.dumps({"partitionKey": "pk", "sortKey": None}),
        "LOG_LEVEL": "INFO",
    }
    if max_concurrency is not None:
        env["REPLICATION_MAX_CONCURRENCY"] = str(max_concurrency)
    if change_source is not None:
        env["REPLICATION_CHANGE_SOURCE"] = change_source
    return env


def run_child(module: str, spec: dict[str, Any], env: dict[str, str], workdir: Path, timeout_s: float = 3600) -> Any:
    """Run ``python -m <module> <spec.json>`` with a clean environment plus ``env``; return its result JSON."""
    return finish_child(start_child(module, spec, env, workdir), timeout_s)


class Child:
    """A started measured process: its handle and where its result and stderr go."""

    def __init__(self, module: str, proc: "subprocess.Popen[bytes]", result: Path, stderr: Path) -> None:
        self.module, self.proc, self.result, self.stderr = module, proc, result, stderr


def start_child(
    module: str, spec: dict[str, Any], env: dict[str, str], workdir: Path, code_dir: Path | None | str = "default"
) -> Child:
    """Start ``python -m <module> <spec.json>`` with a clean environment plus ``env``. ``code_dir``: where
    ``lambda_src/`` and ``cdk_replication/`` come from (default: ``CODE_DIR``; ``None``: the working tree)."""
    code = CODE_DIR if code_dir == "default" else code_dir
    fd, result_path = tempfile.mkstemp(suffix=".json", dir=workdir)
    os.close(fd)
    spec = dict(spec, result_file=result_path)
    spec_path = Path(result_path).with_suffix(".spec.json")
    spec_path.write_text(json.dumps(spec))
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REPLICATION_"))}
    child_env.update(env)
    child_env["PYTHONPATH"] = f"{code}:{ROOT}" if code else str(ROOT)
    if code:
        child_env["BENCH_CODE_DIR"] = str(code)
    stderr_path = Path(result_path).with_suffix(".stderr")
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(spec_path)],
            cwd=ROOT,
            env=child_env,
            stdout=subprocess.DEVNULL,  # the replicator's JSON logs and EMF lines (CloudWatch's job on AWS)
            stderr=stderr,
        )
    return Child(module, proc, Path(result_path), stderr_path)


def finish_child(child: Child, timeout_s: float = 3600) -> Any:
    """Wait for ``child`` and return its result JSON (raise with its stderr if it failed)."""
    returncode = child.proc.wait(timeout=timeout_s)
    if returncode != 0:
        raise RuntimeError(f"{child.module} failed ({returncode}):\n{child.stderr.read_text()[-3000:]}")
    return json.loads(child.result.read_text())


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Records/s for one shard (records over the sum of batch durations: one batch at a time), p50/p99/max
    batch duration, CPU per record, peak RSS."""
    durations = result["durations"]
    total = sum(durations)
    return {
        "records": result["records"],
        "batches": result["batches"],
        "seconds": total,
        "records_per_s": result["records"] / total if total else float("nan"),
        "p50_s": statistics.median(durations) if durations else float("nan"),
        "p99_s": percentile(durations, 99),
        "max_s": max(durations) if durations else float("nan"),
        "first_s": durations[0] if durations else float("nan"),
        "cpu_us_per_record": 1e6 * result["cpu_seconds"] / result["records"] if result["records"] else float("nan"),
        "peak_rss_mib": result["peak_rss_kib"] / 1024.0,
        "failed_batches": result["failed_batches"],
    }
