"""End-to-end fixtures: the real app and constructs synthesized once per session, deployed on DynamoDB Local
with the real replicator, driven by the event source mapping emulation."""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cdk_replication.local import DynamoDBLocal, LocalDeployment, deploy
from cdk_replication.local.compare import TableComparison, compare_tables

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"


#: The tests of the delivery files run with each mapping at these parallelization factors (issue 17): 1, one
#: batch per shard at a time, and 10, the most Lambda allows, where up to ten batches of a shard (lanes by item
#: key) run at once in containers of their own. The other files (join, redrive, masked copies, resource
#: policies, teardown, existing sources, the demo) run their templates' factors: 1 one-way over DynamoDB
#: Streams, 5 multi-active and Kinesis-fed (``cdk_replication/defaults.py``); running them at both doubled the
#: suite's end-to-end time (they passed at 10 when tried, see the issue 17 closing note).
FACTORS = (1, 10)
#: The files whose every test runs at each of FACTORS.
AT_EVERY_FACTOR = ("test_e2e_one_way", "test_e2e_multi_active", "test_e2e_kinesis")
#: The module (``cdk_replication.local.deploy`` the attribute is the function of that name).
deploy_module = importlib.import_module("cdk_replication.local.deploy")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "parallelization_factor" in metafunc.fixturenames and metafunc.module.__name__.endswith(AT_EVERY_FACTOR):
        metafunc.parametrize("parallelization_factor", FACTORS, indirect=True, ids=[f"factor{f}" for f in FACTORS])


@pytest.fixture(autouse=True)
def parallelization_factor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int | None:
    """The factor every mapping deployed in this test runs at, whatever its template says (as an
    ``UpdateEventSourceMapping --parallelization-factor`` would set it); ``None``: the template's."""
    factor = getattr(request, "param", None)
    if factor is None:
        return None
    original = deploy_module._StackDeployer.__init__

    def init(self: Any, deployment: Any, artifact: Any, log_sink: Any, settings_override: Any, *rest: Any) -> None:
        def at_factor(settings: Any) -> Any:
            settings = settings_override(settings) if settings_override is not None else settings
            return dataclasses.replace(settings, parallelization_factor=factor)

        original(self, deployment, artifact, log_sink, at_factor, *rest)

    monkeypatch.setattr(deploy_module._StackDeployer, "__init__", init)
    return factor


@pytest.fixture(scope="session")
def e2e_ddb_parallel() -> Iterator[DynamoDBLocal]:
    """A DynamoDB Local of its own for the runs at a parallelization factor above 1: the apps' table names are
    fixed, and a run at the other factor must not find the tables (and items) of the first."""
    with DynamoDBLocal() as ddb:
        yield ddb


@pytest.fixture
def e2e_ddb(request: pytest.FixtureRequest, ddb_local: DynamoDBLocal, parallelization_factor: int | None) -> DynamoDBLocal:
    """The DynamoDB Local of this test: the session's (xdist worker's), shared with the other suites, at factor 1
    or the template's; :func:`e2e_ddb_parallel` at a higher factor. A second JVM per worker costs seconds of CPU
    to start and warm up, so there are two, not one per test. The apps' table names are fixed, but no other
    suite uses them (the others make unique names, or fixed ones such as ``Chaos`` and ``deploy-test``), and
    each end-to-end test deploys a variant or app whose tables are its own. Keep it so: :func:`deploy` reuses an
    existing table of the same schema, so a name used by another suite would share its data."""
    if parallelization_factor is not None and parallelization_factor > 1:
        return request.getfixturevalue("e2e_ddb_parallel")
    return ddb_local


#: One variant of the example app per test that needs a table of its own: the name is its ``tableName``
#: context, the value any further context.
VARIANTS: dict[str, dict[str, str]] = {
    "E2eBasic": {},
    "E2eReplay": {},
    "E2eCrash": {},
    "E2ePoison": {},
    "E2eThrottle": {},
    "E2eMissing": {},
    "E2eCrossAccount": {"replicaAccount": "222222222222"},
    "E2eWrongTrust": {"replicaAccount": "222222222222"},
    "E2eKinesis": {"changeSource": "KINESIS", "replicaAccount": "222222222222"},
    "E2eKinesisFaults": {"changeSource": "KINESIS", "batchSize": "3"},
    # test_e2e_redrive.py and test_teardown.py
    "E2eRedrive": {},
    "E2eRedriveOld": {},
    "E2eRedriveKinesis": {"changeSource": "KINESIS"},
    "E2eTeardown": {},
}
# Batches of 100 records (the library's default is 1,000): these workloads of a few hundred records must
# span several batches, so that bisection, replays and a crash mid-shard have something to act on.
for _context in VARIANTS.values():
    _context.setdefault("batchSize", "100")

#: The test apps: assembly name -> (module under apps/ with ``build(app)``, its context).
TEST_APPS: dict[str, tuple[str, dict[str, str]]] = {
    name: (name, {}) for name in (
        "exotic_app", "multi_active_app", "existing_source_app", "kinesis_millis_app", "existing_sort_key_app",
        "resource_policy_app", "masked_app",
    )
}
# The redrive test's multi-active table has a name of its own: the session's DynamoDB Local keeps every table.
TEST_APPS["redrive_multi_active_app"] = ("multi_active_app", {"tableName": "RedriveOrders"})

# Every assembly in one process, so jsii and aws-cdk-lib load once: the example app through its
# build_app(), the test apps through their build().
_SYNTH_ALL = """
import importlib.util, json, sys
import aws_cdk as cdk

def load(path):
    spec = importlib.util.spec_from_file_location(path.rsplit("/", 1)[-1][:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

for outdir, path, function, context in json.loads(sys.argv[1]):
    app = cdk.App(outdir=outdir, context=context)
    getattr(load(path), function)(app)
    app.synth()
"""


def _assembly_dirs(root: Path) -> dict[str, Path]:
    """Where :func:`_synthesize_all` puts each assembly under ``root``: name -> cdk.out folder."""
    return {name: root / f"cdk.out-{name}" for name in (*VARIANTS, *TEST_APPS)}


def _synthesize_all(root: Path) -> dict[str, Path]:
    """Synthesize every assembly of :data:`VARIANTS` and :data:`TEST_APPS` into ``root/<name>``, in one
    process; returns name -> cdk.out folder."""
    import os
    import subprocess
    import sys

    from cdk_replication.local.synth import find_node

    jobs, outs = [], _assembly_dirs(root)
    for name, context in VARIANTS.items():
        jobs.append((str(outs[name]), str(ROOT / "app.py"), "build_app", {"tableName": name, **context}))
    for name, (module, context) in TEST_APPS.items():
        jobs.append((str(outs[name]), str(APPS / f"{module}.py"), "build", context))
    env = dict(os.environ, JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION="1")
    node = find_node()
    if node:
        env["JSII_NODE"] = node
    proc = subprocess.run([sys.executable, "-c", _SYNTH_ALL, json.dumps(jobs)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return outs


@pytest.fixture(scope="session")
def assemblies(once_per_run: Callable[[str, Callable[[Path], object]], Path]) -> dict[str, Path]:
    """Every assembly the end-to-end tests use, synthesized once per test run (not per xdist worker; ~11 s
    of CPU): name -> cdk.out folder. Tests must not change these folders (copy one first, as
    test_e2e_resource_policy.py does).

    Names are those of :data:`VARIANTS` (the example app, ``app.py``) and of :data:`TEST_APPS`.
    """
    return _assembly_dirs(once_per_run("e2e-assemblies", _synthesize_all))


@pytest.fixture(scope="session")
def example_app(assemblies: dict[str, Path]) -> dict[str, Path]:
    """The example app synthesized per entry of :data:`VARIANTS`: variant name -> cdk.out folder."""
    return {name: assemblies[name] for name in VARIANTS}


@pytest.fixture(scope="session")
def exotic_app(assemblies: dict[str, Path]) -> Path:
    """apps/exotic_app.py (binary partition key, string sort key)."""
    return assemblies["exotic_app"]


@pytest.fixture(scope="session")
def multi_active_app(assemblies: dict[str, Path]) -> Path:
    """apps/multi_active_app.py (two writer regions)."""
    return assemblies["multi_active_app"]


@pytest.fixture(scope="session")
def kinesis_millis_app(assemblies: dict[str, Path]) -> Path:
    """apps/kinesis_millis_app.py (Kinesis change source with millisecond change times)."""
    return assemblies["kinesis_millis_app"]


@pytest.fixture(scope="session")
def resource_policy_app(assemblies: dict[str, Path]) -> Path:
    """apps/resource_policy_app.py (replicas in another account reached through their resource policy)."""
    return assemblies["resource_policy_app"]


@pytest.fixture(scope="session")
def existing_source_app(assemblies: dict[str, Path]) -> Path:
    """apps/existing_source_app.py (the source table is not in the assembly)."""
    return assemblies["existing_source_app"]


@pytest.fixture(scope="session")
def existing_sort_key_app(assemblies: dict[str, Path]) -> Path:
    """apps/existing_sort_key_app.py (an existing source declared without its sort key)."""
    return assemblies["existing_sort_key_app"]


class Topology:
    """A deployed one-way replication: the deployment, its source and replica tables, replicator and mapping."""

    def __init__(self, deployment: LocalDeployment) -> None:
        self.deployment = deployment
        (self.function,) = [f for f in deployment.functions if "REPLICATION_SOURCE" in f.environment]
        env = self.function.environment
        source = json.loads(env["REPLICATION_SOURCE"])
        (target,) = json.loads(env["REPLICATION_TARGETS"])
        self.source = deployment.table(source["tableName"], source["region"], source["account"])
        self.replica = deployment.table(target["tableName"], target["region"], target["account"])
        self.mapping = deployment.mapping_for(self.function)
        self.key_names = list(json.loads(env["REPLICATION_KEY"]).values())
        self.key_names = [k for k in self.key_names if k]
        self.prefix = env.get("REPLICATION_METADATA_PREFIX", "_rep_")
        # A replica fed by Kinesis keeps deletes as tombstones, which count as absent items.
        self.tombstone = self.prefix + "deleted" if env.get("REPLICATION_CHANGE_SOURCE") == "KINESIS" else None
        assert self.mapping.destination is not None
        #: The mapping's on-failure destination: a LocalBucket (S3) or a LocalQueue (SQS/SNS).
        self.failure_destination = self.mapping.destination

    def failures(self) -> list[dict[str, Any]]:
        """The on-failure records of the replicator's mapping, whichever the destination: S3 objects (with
        ``payload``) or SQS messages (metadata only); both carry ``requestContext`` and ``DDBStreamBatchInfo``
        (``KinesisBatchInfo`` for a Kinesis source)."""
        return self.failure_destination.failure_records()

    def compare(self) -> TableComparison:
        return compare_tables(self.source.client(), self.source.name, self.replica.client(), self.replica.name,
                              self.key_names, self.prefix, self.tombstone)

    def settle(self, timeout_s: float = 120.0) -> None:
        """Deliver every stream record written so far."""
        self.deployment.run_until_idle(timeout_s=timeout_s)


@pytest.fixture
def topology_of(e2e_ddb: DynamoDBLocal) -> Iterator[Callable[[Path], Topology]]:
    """``topology_of(cdk_out, **deploy_options) -> Topology``; every deployment made is closed after the test."""
    made: list[LocalDeployment] = []

    def make(cdk_out: Path, **options: Any) -> Topology:
        deployment = deploy(cdk_out, e2e_ddb, **options)
        made.append(deployment)
        return Topology(deployment)

    yield make
    for deployment in made:
        deployment.close()


#: An operator allowed every DynamoDB action and to read the published parameters, which every command reads to
#: learn a replica's transform (docs/cli.md, "Permissions") (the default policy of :func:`operator_of`).
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["dynamodb:*", "ssm:GetParameter"],
                                                        "Resource": "*"}]}


@dataclass
class CliRun:
    """One run of the command line: exit code, stdout, stderr."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Operator:
    """A principal registered in a deployment's gateway whose credentials the command line uses, so every
    request the CLI makes is checked against ``policies`` (default: :data:`ADMIN_POLICY`)."""

    def __init__(self, deployment: LocalDeployment, account: str, monkeypatch: pytest.MonkeyPatch,
                 policies: list[dict[str, Any]] | None = None, name: str = "operator") -> None:
        self.deployment = deployment
        self.arn = f"arn:aws:iam::{account}:user/{name}"
        credentials = deployment.gateway.register_principal(self.arn, policies or [ADMIN_POLICY])
        for key, value in credentials.as_env().items():
            monkeypatch.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB",
                    "AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "AWS_ENDPOINT_URL_S3"):
            monkeypatch.delenv(key, raising=False)

    def cli(self, command: str, *args: str) -> CliRun:
        """``cdk-replication COMMAND --endpoint-url <gateway> --quiet ARGS...``, in this process."""
        from cdk_replication.cli import main

        out, err = io.StringIO(), io.StringIO()
        code = main([command, "--endpoint-url", self.deployment.gateway.endpoint_url, "--quiet", *args],
                    stdout=out, stderr=err)
        return CliRun(code, out.getvalue(), err.getvalue())


@pytest.fixture
def operator_of(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Operator]:
    """``operator_of(deployment, account, policies=None, name="operator") -> Operator``: the CLI's credentials
    (in the environment for this test) are those of a principal registered in the deployment's gateway."""

    def make(deployment: LocalDeployment, account: str, policies: list[dict[str, Any]] | None = None,
             name: str = "operator") -> Operator:
        return Operator(deployment, account, monkeypatch, policies, name)

    return make


@pytest.fixture(autouse=True)
def _quick_rechecks(quick_verify_rechecks: None) -> None:
    """Every test here plants differences that persist: no need to wait 1 s between verify's re-read rounds."""
