"""Issue 14: growing and shrinking a running topology in the local runtime, with the application writing,
updating and deleting in every ACTIVE region throughout, and delivery faults (throttled writes, a crashed
container) on every replicator.

* one-way: a replica joins (deploy JOINING, ``cdk-replication join``, deploy ACTIVE), then another replica is
  removed under writes;
* multi-active: a third region joins a two-region table, then a region leaves (LEAVING, ``leave`` until
  drained, removed);
* the loss ``join`` refuses to risk: a copy made before the replicator sends to the new table (the check
  disabled) misses the changes made in between, for good.

Pass condition: every copy equal to the source (one-way, rule 1), and every key of every region holding the
state the chaos suite's oracle (tests/chaos/model.py: the documented conflict order) says wins (multi-active).
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cdk_replication.local import LocalDeployment, LocalTable, deploy
from cdk_replication.local.compare import compare_tables
from cdk_replication.local.synth import find_node, jsii_quiet_env

APP = Path(__file__).resolve().parent / "apps" / "topology_app.py"
WEST, EU, AP = "us-west-2", "eu-west-1", "ap-southeast-2"
ACCOUNT = "444444444444"

#: One assembly per step of each topology change: name -> (table name, mode, locations).
STEPS: dict[str, tuple[str, str, str]] = {
    "one-way-before": ("JoinOneWay", "ONE_WAY", f"{WEST},{EU}"),
    "one-way-joining": ("JoinOneWay", "ONE_WAY", f"{WEST},{EU},{AP}:JOINING"),
    "one-way-joined": ("JoinOneWay", "ONE_WAY", f"{WEST},{EU},{AP}"),
    "one-way-removed": ("JoinOneWay", "ONE_WAY", f"{WEST},{AP}"),
    "multi-before": ("JoinMulti", "MULTI_ACTIVE", f"{WEST},{EU}"),
    "multi-joining": ("JoinMulti", "MULTI_ACTIVE", f"{WEST},{EU},{AP}:JOINING"),
    "multi-joined": ("JoinMulti", "MULTI_ACTIVE", f"{WEST},{EU},{AP}"),
    "multi-leaving": ("JoinMulti", "MULTI_ACTIVE", f"{WEST},{EU}:LEAVING,{AP}"),
    "multi-removed": ("JoinMulti", "MULTI_ACTIVE", f"{WEST},{AP}"),
    "loss-before": ("JoinLoss", "ONE_WAY", f"{WEST},{EU}"),
    "loss-joining": ("JoinLoss", "ONE_WAY", f"{WEST},{EU},{AP}:JOINING"),
}


def _load_model() -> Any:
    """tests/chaos/model.py (standard library only), loaded by path: the test folders are not packages."""
    spec = importlib.util.spec_from_file_location("chaos_model", Path(__file__).parents[1] / "chaos" / "model.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("chaos_model", module)
    spec.loader.exec_module(module)
    return module


model_module = _load_model()


def _synthesize(root: Path) -> None:
    jobs = {str(root / name): {"tableName": t, "mode": m, "locations": loc} for name, (t, m, loc) in STEPS.items()}
    env = {**__import__("os").environ, **jsii_quiet_env()}
    node = find_node()
    if node:
        env["JSII_NODE"] = node
    proc = subprocess.run([sys.executable, str(APP), json.dumps(jobs)], cwd=APP.parent, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's state files (``.cdk-replication/``) go to the test's own folder."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def steps(once_per_run: Callable[[str, Callable[[Path], object]], Path]) -> dict[str, Path]:
    """Every step's assembly, synthesized once per run: name -> cdk.out folder."""
    root = once_per_run("e2e-join-assemblies", _synthesize)
    return {name: root / name for name in STEPS}


# --- the application ------------------------------------------------------------------------------------------


class Application:
    """Writes, updates (upserts) and deletes in the ACTIVE regions from a background thread, recording every
    state it produced in the chaos oracle. Every write carries a newer ``updatedAt`` than the one before, except
    that about one write in eight reuses the last value on another region's item: a tie, decided by origin."""

    def __init__(self, tables: dict[str, LocalTable], seed: int, keys: int = 40) -> None:
        self.tables = tables
        self.active = list(tables)
        self.model = model_module.Model()
        self.rng = random.Random(seed)
        self.keys = keys
        self.clock = 1_760_000_000_000
        self.seq = 0
        self.writes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: Exception | None = None

    def op(self) -> None:
        """One application operation in a random ACTIVE region."""
        region = self.rng.choice(self.active)
        table = self.tables[region]
        client = table.client()
        key = {"pk": {"S": f"k{self.rng.randrange(self.keys):03d}"}}
        self.seq += 1
        if self.rng.random() > 0.125:
            self.clock += 1
        kind = self.rng.choice(("put", "put", "update", "delete"))
        values = {":t": {"N": str(self.clock)}, ":o": {"S": f"{region}#{self.seq}"}}
        if kind == "delete":
            try:
                removed = client.delete_item(
                    TableName=table.name, Key=key, ReturnValues="ALL_OLD",
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#d)",
                    ExpressionAttributeNames={"#d": model_module.DELETED})["Attributes"]
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                return
            self.model.record_delete(region, self.seq, removed)
            return
        expression = "SET updatedAt = :t, op = :o" + (", n = :n" if kind == "put" else "")
        if kind == "put":
            values[":n"] = {"N": str(self.rng.randrange(1000))}
        after = client.update_item(TableName=table.name, Key=key, UpdateExpression=expression,
                                   ExpressionAttributeValues=values, ReturnValues="ALL_NEW")["Attributes"]
        self.model.record_write(region, self.seq, after)
        self.writes += 1

    def run(self, ops: int) -> None:
        for _ in range(ops):
            self.op()

    def start(self) -> None:
        """Write continuously (a few ms apart) until :meth:`stop`."""
        def loop() -> None:
            try:
                while not self._stop.wait(0.005):
                    self.op()
            except Exception as exc:  # raised by stop(); a failed test's closed deployment ends up here too
                self.error = exc

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="application", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)
        if self.error is not None:
            raise self.error


def _arm_faults(deployment: LocalDeployment, table: str, seed: int) -> None:
    """Delivery faults on every replicator: a fifth of its writes throttled, its container killed once."""
    for function in deployment.functions:
        function.faults.throttle_writes(table, fraction=0.2, seed=seed)
        function.faults.crash_after_writes(7)


def _settle(deployment: LocalDeployment) -> None:
    """Stop the background pollers, clear the faults, deliver everything left."""
    deployment.stop()
    for function in deployment.functions:
        function.faults.clear()
    deployment.run_until_idle(timeout_s=120)


def _spec(table: LocalTable) -> str:
    return f"{table.region}:{table.name}"


def _assert_equal(a: LocalTable, b: LocalTable, tombstones: bool) -> None:
    result = compare_tables(a.client(), a.name, b.client(), b.name, ["pk"], "_rep_",
                            tombstone_attribute="_rep_deleted" if tombstones else None)
    assert result.equal, (_spec(b), result.missing[:5], result.different[:5], result.unexpected[:5])


def _assert_oracle(app: Application, tables: list[LocalTable]) -> None:
    """Every key of every table holds the oracle's winner (rule 4): one winner, everywhere."""
    for table in tables:
        items = {i["pk"]["S"]: i for i in table.client().scan(TableName=table.name, ConsistentRead=True)["Items"]}
        for key in app.model.keys():
            winner = app.model.winner(key)
            item = items.get(key)
            if winner.deleted:
                assert item is None or model_module.DELETED in item, (_spec(table), key, winner.describe(), item)
            else:
                assert item is not None and model_module.DELETED not in item, (_spec(table), key, winner.describe())
                assert model_module.canon_item(item) == winner.user, (_spec(table), key, winner.describe(), item)


def _tables(deployment: LocalDeployment, name: str, regions: list[str]) -> dict[str, LocalTable]:
    return {region: deployment.table(name, region, ACCOUNT) for region in regions}


#: The operator running join/status/leave: DynamoDB, and reading the published parameters (docs/cli.md).
OPERATOR = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
    {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "arn:aws:ssm:*:*:parameter/cdk-replication/*"}]}


def _stack(cdk_out: Path, region: str) -> str:
    """The name of the stack of ``region`` in the assembly (the construct names it after the region)."""
    manifest = json.loads((cdk_out / "manifest.json").read_text())
    (name,) = [a["properties"]["stackName"] for a in manifest["artifacts"].values()
               if a["type"] == "aws:cloudformation:stack" and a["properties"]["stackName"].endswith(region)]
    return name


def _deploy_joining_under_writes(dep: LocalDeployment, app: Application, joining: Path, name: str,
                                 midway: tuple[list[str], Callable[[], None]] | None = None) -> LocalTable:
    """80 application operations replicated, then the replicators and the application running while the
    ``joining`` assembly is deployed; returns the new table (in :data:`AP`). ``midway``: the regions whose
    stacks are deployed first (``cdk deploy --all`` deploys one stack after another), and what to do before
    the others are."""
    app.run(80)
    dep.run_until_idle(timeout_s=120)
    dep.start()
    app.start()
    # The application is writing when the deploy starts and still writing after it (the deploy can be quicker
    # than one write, so wait for writes rather than assume them).
    _wait_for_writes(app)
    if midway is not None:
        dep.update(joining, stacks=[_stack(joining, region) for region in midway[0]])
        midway[1]()
    dep.update(joining)
    _wait_for_writes(app)
    return dep.table(name, AP, ACCOUNT)


def _wait_for_writes(app: Application, timeout_s: float = 30.0) -> None:
    """Block until the application has written at least once more (its thread runs on)."""
    written = len(app.model.states)
    deadline = time.monotonic() + timeout_s
    while len(app.model.states) <= written:
        assert time.monotonic() < deadline, "the application thread stopped writing"
        time.sleep(0.01)


def _join_under_writes(dep: LocalDeployment, app: Application, operator: Any, specs: list[str],
                       seed: int, status: list[str] | None = None) -> None:
    """``join`` while the application writes and the replicators run with faults; then, once delivered, a
    re-run that verifies (exit 0)."""
    _arm_faults(dep, specs[-1].split(":")[1], seed)
    first = operator.cli("join", *specs, "--json")
    # 1: the new table differed while the replicators caught up with the live writes; the copy itself is done.
    assert first.code in (0, 1), first.err + first.out
    assert first.json()["copy"] and all(c["done"] for c in first.json()["copy"].values()), first.out
    app.stop()
    _settle(dep)
    again = operator.cli("join", *specs, "--json")
    assert again.code == 0 and again.json()["inSync"], again.err + again.out
    assert all(c.get("resumed") for c in again.json()["copy"].values())  # not copied twice
    status = operator.cli("status", *(status or specs), "--json")
    assert status.code == 0, status.err
    assert "status=LocationStatus.ACTIVE" in status.json()["locations"][-1]["nextStep"], status.out


def test_one_way_replica_joins_and_another_is_removed_under_writes_and_faults(steps, e2e_ddb, operator_of):
    with deploy(steps["one-way-before"], e2e_ddb) as dep:
        name = "JoinOneWay"
        west, eu = _tables(dep, name, [WEST, EU]).values()
        app = Application({WEST: west}, seed=141)
        new = _deploy_joining_under_writes(dep, app, steps["one-way-joining"], name)
        operator = operator_of(dep, ACCOUNT, [OPERATOR])
        _join_under_writes(dep, app, operator, [_spec(west), _spec(new)], seed=14)
        for replica in (eu, new):
            _assert_equal(west, replica, tombstones=False)

        dep.update(steps["one-way-joined"])  # ACTIVE; then the old replica is removed while the source is written
        dep.start()
        app.start()
        dep.update(steps["one-way-removed"], destroy_missing=True)
        time.sleep(0.5)
        app.stop()
        _settle(dep)
        _assert_equal(west, new, tombstones=False)
        assert eu.client().describe_table(TableName=eu.name)["Table"]["TableStatus"] == "ACTIVE"  # retained


README = Path(__file__).resolve().parents[2] / "README.md"
#: The README walkthrough's steps, in order: what this test does at each (a change here is a change there).
WALKTHROUGH = ["Declare the new location JOINING and deploy.", "Copy and verify.", "Check where it stands.",
               "Open the region.", "To remove a region, set it LEAVING.", "Wait until it has drained.",
               "Remove the location and deploy."]


def _walkthrough(table: str) -> dict[str, list[str]]:
    """README's "Adding or removing a region, step by step": checks its steps are :data:`WALKTHROUGH` and returns
    the ``cdk-replication`` command of each fenced block by subcommand, with the table ``Orders`` renamed to
    ``table`` (the session's DynamoDB Local keeps every test's tables)."""
    section = README.read_text().split("## Adding or removing a region, step by step\n", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^\d+\. \*\*(.+?)\*\*", section, flags=re.M) == WALKTHROUGH
    commands: dict[str, list[str]] = {}
    for block in re.findall(r"```\n(.*?)```", section, flags=re.S):
        argv = shlex.split(block.strip().replace(":Orders", f":{table}"))
        assert argv[0] == "cdk-replication", block
        commands[argv[1]] = argv[1:]
    assert list(commands) == ["join", "status", "leave"], commands
    return commands


def test_multi_active_region_joins_and_leaves_following_the_readme_under_writes_and_faults(steps, e2e_ddb,
                                                                                         operator_of):
    """The README walkthrough as written, with the application writing in every ACTIVE region throughout and
    faults on every replicator; afterwards one winner per key, everywhere (the chaos oracle)."""
    name = "JoinMulti"
    readme = _walkthrough(name)
    with deploy(steps["multi-before"], e2e_ddb) as dep:
        west, eu = _tables(dep, name, [WEST, EU]).values()
        app = Application({WEST: west, EU: eu}, seed=142)
        operator = operator_of(dep, ACCOUNT, [OPERATOR])

        def too_early() -> None:
            """EU's stack is not deployed yet: its replicator does not send to the new region."""
            refused = operator.cli(*readme["join"])
            assert refused.code == 2 and f"the replicator of {name} ({EU}) does not send to" in refused.err, \
                refused.err
            assert refused.out == ""  # nothing done

        # 1. Declare the new location JOINING and deploy.
        new = _deploy_joining_under_writes(dep, app, steps["multi-joining"], name, midway=([AP, WEST], too_early))
        assert dep.parameter(f"/cdk-replication/{name}/status", AP, ACCOUNT) == "JOINING"
        # 2. Copy and verify (again once caught up); 3. check where it stands.
        assert readme["join"][1:] == [_spec(west), _spec(eu), _spec(new)]
        _join_under_writes(dep, app, operator, readme["join"][1:], seed=15, status=readme["status"][1:])
        _assert_oracle(app, [west, eu, new])
        # 4. Open the region: the application writes there too.
        dep.update(steps["multi-joined"])
        app.tables[AP] = new
        app.active = [WEST, EU, AP]
        dep.start()
        app.start()
        # 5. To remove a region, set it LEAVING (the application stops writing there).
        dep.update(steps["multi-leaving"])
        app.active = [WEST, AP]
        # 6. Wait until it has drained.
        early = operator.cli(*readme["leave"], "--json")
        assert early.code in (0, 1), early.err + early.out
        app.stop()
        _settle(dep)
        drained = operator.cli(*readme["leave"], "--json")
        assert drained.code == 0 and drained.json()["drained"], drained.err + drained.out
        # 7. Remove the location and deploy; the application goes on in the others.
        dep.update(steps["multi-removed"], destroy_missing=True)
        dep.start()
        app.start()
        time.sleep(0.5)
        app.stop()
        _settle(dep)
        _assert_oracle(app, [west, new])
        _assert_equal(west, new, tombstones=True)
        assert eu.client().describe_table(TableName=eu.name)["Table"]["TableStatus"] == "ACTIVE"  # retained


def test_a_copy_made_before_the_replicator_sends_to_the_new_table_loses_changes(steps, e2e_ddb, operator_of,
                                                                                monkeypatch):
    """Why ``join`` reads the replicator parameter first. The new replica's stack is deployed (its table and
    status exist), the source's is not yet: join refuses. With that check disabled it copies, and the changes
    the source takes before its replicator sends to the new table never reach it."""
    from cdk_replication.cli.topology import join

    with deploy(steps["loss-before"], e2e_ddb) as dep:
        name = "JoinLoss"
        source = dep.table(name, WEST, ACCOUNT)
        app = Application({WEST: source}, seed=143)
        app.run(60)
        dep.run_until_idle(timeout_s=120)
        # Only the new replica's stack is deployed (`cdk deploy JoinLoss-ap-southeast-2`): its table and its
        # JOINING status exist, the source's replicator does not send to it yet. (Creating the table by hand
        # and then deploying its stack is refused, as CloudFormation refuses a named table that exists.)
        dep.update(steps["loss-joining"], stacks=[f"{name}-{AP}"])
        client = e2e_ddb.client("dynamodb", region=AP, account=ACCOUNT)
        operator = operator_of(dep, ACCOUNT, [OPERATOR])
        specs = [_spec(source), f"{AP}:{name}"]
        refused = operator.cli("join", *specs)
        assert refused.code == 2 and "does not send to" in refused.err, refused.err
        assert client.scan(TableName=name)["Count"] == 0

        monkeypatch.setattr(join, "require_senders", lambda topology, plan: None)
        assert operator.cli("join", *specs).code == 0  # copied and equal, for now
        app.run(30)  # the source changes, and its replicator delivers them, before it sends to the new table ...
        dep.run_until_idle(timeout_s=120)
        dep.update(steps["loss-joining"])
        app.run(30)  # ... and after
        dep.run_until_idle(timeout_s=120)
        new = dep.table(name, AP, ACCOUNT)
        result = compare_tables(source.client(), name, new.client(), name, ["pk"], "_rep_")
        assert not result.equal  # lost for good: no record of those changes will ever reach it
        assert not operator.cli("verify", *specs).code == 0


def test_the_readme_walkthrough_has_the_steps_and_commands_the_end_to_end_test_follows():
    commands = _walkthrough("JoinMulti")
    assert commands["leave"][-1] == f"{EU}:JoinMulti" and commands["status"][1:] == commands["join"][1:]
