"""Fixtures shared by every test folder."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cdk_replication.local import DynamoDBLocal

ROOT = Path(__file__).resolve().parent.parent

# jsii runs Node: prefer the supported Node that package.json installs (the Makefile sets this too; this
# covers `pytest` run by hand from an activated venv).
_node = ROOT / "node_modules" / ".bin" / "node"
if _node.exists():
    os.environ.setdefault("JSII_NODE", str(_node))


@pytest.fixture(scope="session")
def ddb_local() -> Iterator[DynamoDBLocal]:
    """One DynamoDB Local process per test session (per xdist worker); tests use their own table names."""
    with DynamoDBLocal() as ddb:
        yield ddb


@pytest.fixture(scope="session")
def once_per_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Callable[[Path], object]], Path]:
    """``once_per_run(name, make) -> folder``: ``make(folder)`` runs once per test run, not once per xdist
    worker, for work every worker would otherwise repeat (a synthesis costs 6-11 s of CPU).

    Under pytest-xdist the folder is ``name`` in the run's temporary folder, which every worker shares: the
    first worker to ask fills it under a file lock, the others wait and reuse it (a failed ``make`` leaves
    no mark, so the next worker tries again and fails the same way). Without xdist it is a new temporary
    folder. Callers must not change what is in it (copy it first).
    """

    def once(name: str, make: Callable[[Path], object]) -> Path:
        if "PYTEST_XDIST_WORKER" not in os.environ:
            folder = tmp_path_factory.mktemp(name)
            make(folder)
            return folder
        # The parent of a worker's base temporary folder is this run's, shared by every worker and no other run.
        shared = tmp_path_factory.getbasetemp().parent
        folder, done = shared / name, shared / f"{name}.done"
        with open(shared / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not done.exists():
                shutil.rmtree(folder, ignore_errors=True)  # what a failed make left behind
                folder.mkdir()
                make(folder)
                done.touch()
        return folder

    return once


#: Pause between verify's re-read rounds in tests that do not test the pause itself (seconds; the default is 1).
QUICK_RECHECK_PAUSE = 0.02


@pytest.fixture()
def quick_verify_rechecks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorten verify's pause between re-read rounds (cli/verify.py ``recheck``) to
    :data:`QUICK_RECHECK_PAUSE`: a difference that persists waits out every round, which adds 2 s per verify
    in tests that plant persisting differences on purpose. The rounds themselves are kept: a test that counts on
    a difference settling between rounds must not use this fixture (tests/spark/test_lag_and_cli.py does not)."""
    from cdk_replication.cli import verify

    real = verify.recheck

    def quick(suspects, classify, workers, rounds=verify.DEFAULT_RECHECK_ROUNDS, pause=verify.DEFAULT_RECHECK_PAUSE,
              **kwargs):  # type: ignore[no-untyped-def]
        return real(suspects, classify, workers, rounds, min(pause, QUICK_RECHECK_PAUSE), **kwargs)

    monkeypatch.setattr(verify, "recheck", quick)


#: The test files that take longest (seconds of one run, setup and teardown included, measured with
#: ``--durations`` on an idle machine, top 100 tests only; only their order matters). ``make test`` hands whole files to its workers
#: (``--dist loadfile``) in the order of :func:`pytest_collection_modifyitems`: longest first, so that no
#: worker is left running a long file alone at the end while the other has nothing left to do. A file missing
#: here only runs later than it could; refresh the table from ``pytest --durations=120`` when it drifts.
LONGEST_FILES: dict[str, float] = {
    "tests/e2e/test_e2e_one_way.py": 92,
    "tests/chaos/test_convergence.py": 51,
    "tests/replicator/test_transform_ties_exhaustive.py": 47,
    "tests/e2e/test_e2e_kinesis.py": 47,
    "tests/spark/test_review_r16.py": 46,
    "tests/test_packaging.py": 45,
    "tests/e2e/test_e2e_join.py": 42,
    "tests/e2e/test_e2e_redrive.py": 34,
    "tests/e2e/test_demo.py": 33,
    "tests/replicator/test_transform_ties_exhaustive_ttl.py": 23,
    "tests/spark/test_lag_and_cli.py": 23,
    "tests/replicator/test_ordered_ties.py": 21,
    "tests/replicator/test_ordered_ties_exhaustive.py": 21,
    "tests/replicator/test_ordered_convergence.py": 21,
    "tests/cli/test_transform.py": 14,
    "tests/local/test_review_transform_local.py": 12,
    "tests/spark/test_spark_verify.py": 11,
    "tests/replicator/test_convergence.py": 10,
    "tests/replicator/test_one_way_faults.py": 10,
    "tests/e2e/test_e2e_multi_active.py": 10,
    "tests/cli/test_migrate_kinesis.py": 9,
    "tests/e2e/test_e2e_masked.py": 8,
    "tests/cli/test_redrive_multi_active.py": 7,
    "tests/local/test_kinesis_deploy.py": 6,
    "tests/cli/test_migrate_construct.py": 6,
    "tests/cli/test_transform_rotation.py": 6,
    "tests/local/test_review_r14a_function.py": 6,
    "tests/cli/test_transform_join.py": 6,
    "tests/local/test_lambda_runtime.py": 5,
    "tests/cli/test_repair_multi_active.py": 5,
}


#: Folders whose files go to one worker as one unit: their tests share a session fixture that costs too much to
#: build on both workers (tests/spark: a local SparkSession, a JVM of 1 GB that takes seconds to start).
SAME_WORKER = ("tests/spark/",)


def work_unit(nodeid: str) -> str:
    """What a worker is handed at once: the test's file, or its folder when that is in :data:`SAME_WORKER`."""
    path = nodeid.split("::", 1)[0]
    return next((folder for folder in SAME_WORKER if path.startswith(folder)), path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the work units (:func:`work_unit`) longest first: by the time of their files in
    :data:`LONGEST_FILES`, then by their number of tests (what pytest-xdist's own reordering, which the
    Makefile turns off, would do).

    Tests keep their order within a unit and each file's tests stay together, so module fixtures are built once.
    """
    units: dict[str, list[pytest.Item]] = {}
    for item in items:
        units.setdefault(work_unit(item.nodeid), []).append(item)

    def longest_first(unit: str) -> tuple[float, int]:
        files = {item.nodeid.split("::", 1)[0] for item in units[unit]}
        return -sum(LONGEST_FILES.get(name, 0) for name in files), -len(units[unit])

    items[:] = [item for unit in sorted(units, key=longest_first) for item in units[unit]]


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """With ``--dist loadfile``, hand the workers whole work units (:func:`work_unit`), not single files."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class WorkUnits(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return WorkUnits(config, log)  # type: ignore[arg-type]
