"""One synthesized and locally deployed MULTI_ACTIVE topology per test session, shared by every chaos test.

Synthesis (jsii + Node) takes ~20 s, so it happens once; ``CHAOS_ASSEMBLY`` names an assembly folder that is
already synthesized (``python -m tests.chaos.mutants`` synthesizes once for all its pytest runs).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cdk_replication.local import DynamoDBLocal, LocalFunction, deploy, synthesize

from .chaos_app import REGIONS
from .harness import STATS, Region, Topology

HERE = Path(__file__).resolve().parent
SHIM = HERE / "worker" / "chaos_shim.py"


def synthesize_chaos_app(out_dir: Path) -> Path:
    """Synthesize ``chaos_app.py`` into ``out_dir`` and return the assembly folder."""
    return synthesize(HERE / "chaos_app.py", out_dir)


def install_shim(functions: list[LocalFunction], assembly: Path, log_dir: Path, mutant: str) -> dict[str, Path]:
    """Point every replicator at ``chaos_shim.handler`` (see its docstring for why) and give it a write log.

    The shim goes into each function's code folder, which is this session's own synthesized copy of the
    asset, never lambda_src/. Returns the write log of each function's region.
    """
    logs: dict[str, Path] = {}
    for function in functions:
        if assembly.resolve() not in function.code_dir.parents:
            # Without asset staging the code folder would be lambda_src/ itself, which must never change.
            raise RuntimeError(f"{function.name}: code folder {function.code_dir} is not a staged asset copy")
        shutil.copyfile(SHIM, function.code_dir / SHIM.name)
        log = log_dir / f"writes-{function.region}.jsonl"
        function.environment.update(
            {"CHAOS_REAL_HANDLER": function.handler, "CHAOS_WRITE_LOG": str(log), "CHAOS_MUTANT": mutant}
        )
        function.handler = "chaos_shim.handler"
        function.stop()  # the next invocation starts a container with the shim
        logs[function.region] = log
    return logs


@pytest.fixture(scope="session")
def chaos_topology(ddb_local: DynamoDBLocal, tmp_path_factory: pytest.TempPathFactory,
                   once_per_run: Callable[[str, Callable[[Path], object]], Path]) -> Iterator[Topology]:
    """The deployed topology: three regions, each with its table, replicator, mapping and failure destination (an S3 bucket)."""
    work = tmp_path_factory.mktemp("chaos")
    # The assembly is synthesized once per test run (xdist workers share it), or given by CHAOS_ASSEMBLY.
    # Copy it: the shim is added to the asset folder, and several sessions may share the assembly.
    given = os.environ.get("CHAOS_ASSEMBLY") or once_per_run(
        "chaos-assembly", lambda folder: synthesize_chaos_app(folder / "cdk.out")) / "cdk.out"
    assembly = Path(shutil.copytree(given, work / "cdk.out"))
    logs: dict[str, list[str]] = {}
    regions_of: dict[str, str] = {}

    def sink(function_name: str, line: str) -> None:
        logs.setdefault(regions_of.get(function_name, function_name), []).append(line)

    deployment = deploy(assembly, ddb_local, log_sink=sink)
    regions_of.update({f.name: f.region for f in deployment.functions})
    try:
        write_logs = install_shim(deployment.functions, assembly, work, os.environ.get("CHAOS_MUTANT", ""))
        regions = []
        for name in REGIONS:
            (table,) = [t for t in deployment.tables if t.region == name]
            (function,) = [f for f in deployment.functions if f.region == name]
            regions.append(Region(name, table, function, deployment.mapping_for(function), write_logs[name]))
        yield Topology(deployment, regions, logs)
    finally:
        deployment.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How much the chaos tests exercised in this session (the counts docs/chaos.md quotes)."""
    if STATS.examples:
        terminalreporter.write_sep("-", "chaos")
        terminalreporter.write_line(STATS.summary())
