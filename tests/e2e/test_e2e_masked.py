"""Issue 15 end to end: a masked, filtered cross-account replica converges under one-way faults, verifies clean,
and no raw value ever reaches the target account (DESIGN rule 10) — by any path.

The app (apps/masked_app.py) replicates production (111111111111/us-west-2) to development
(222222222222/us-east-1): active customers only, emails hashed, addresses removed, notes dropped. Every
request the deployment's gateway serves is recorded (:class:`TargetRequests`, a wrapper of ``Gateway.handle``);
one is the target account's when its signer belongs to that account (the replicator's session of the writer
role, the development operator) or it names a table of that account. The leak check fails when such a request
carries an original email, an address, a note, or the name of a dropped attribute. Paths covered: stream
replication (with duplicated batches, a crash mid-batch, throttling and bisection), the failure path (a poison
record: its failure record, raw images included, stays in the source account's bucket), ``redrive`` of it,
``backfill``, ``verify`` and ``verify --repair``.

How the check was seen to fail: ``test_the_leak_check_fails_against_a_raw_repair`` runs ``verify --repair``
with a mutant repair that writes the source item as it is, and the same check then names the leaked value.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdk_replication.local.bucket import LocalBucket

# tests/e2e is no package: its conftest's fixtures come by name, these types as Any.
Topology = Any

SOURCE_ACCOUNT, TARGET_ACCOUNT = "111111111111", "222222222222"
_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/,\s]+)/")
POISON = "POISON-7f3a"
#: The production operator reads the published transform and the HMAC key; the development one only DynamoDB.
PROD_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["dynamodb:*", "ssm:GetParameter", "secretsmanager:GetSecretValue"],
     "Resource": "*"}]}
NO_PARAMETER = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["dynamodb:*", "secretsmanager:GetSecretValue"], "Resource": "*"}]}
NO_SECRET = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["dynamodb:*", "ssm:GetParameter"], "Resource": "*"}]}
DEV_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]}


class TargetRequests:
    """Every request the gateway serves for the target account, as text (bodies, and the signer's account)."""

    def __init__(self, gateway: Any, account: str) -> None:
        self.gateway, self.account = gateway, account
        self.bodies: list[str] = []
        self.seen = 0
        self.recording = True
        self._lock = threading.Lock()
        original = gateway.handle

        def handle(headers: dict[str, str], body: bytes) -> Any:
            self._record({k.lower(): v for k, v in headers.items()}, body)
            return original(headers, body)

        gateway.handle = handle  # the gateway's HTTP handler calls this attribute for every request

    def _record(self, headers: dict[str, str], body: bytes) -> None:
        text = body.decode("utf-8", "replace")
        match = _CREDENTIAL.search(headers.get("authorization", ""))
        identity = self.gateway.identity(match["key"]) if match else None
        signer = identity.principal.account if identity is not None else None
        with self._lock:
            self.seen += 1
            if self.recording and (signer == self.account or f":{self.account}:" in text):
                self.bodies.append(text)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The test's own tampering with the replica is not a request of the replicator or the CLI."""
        self.recording = False
        try:
            yield
        finally:
            self.recording = True

    def assert_clean(self, forbidden: list[str]) -> None:
        assert self.bodies, f"no request reached account {self.account}: the recorder sees nothing"
        for body in self.bodies:
            for value in forbidden:
                assert value not in body, f"{value!r} reached account {self.account} in {body[:400]}"


def customer(i: int, status: str = "active", email: str | None = None) -> dict[str, Any]:
    return {"pk": {"S": f"c{i:03}"}, "name": {"S": f"Customer {i}"}, "status": {"S": status},
            "email": {"S": email or f"person{i}@example.com"}, "address": {"S": f"{i} Secret Street"},
            "notes": {"S": f"private note {i}"}}


def forbidden_values(items: list[dict[str, Any]]) -> list[str]:
    """The originals of every masked or dropped value, and the dropped attributes' names (as JSON keys)."""
    values = [item[name]["S"] for item in items for name in ("email", "address", "notes") if name in item]
    return sorted(set(values)) + ['"address"', '"notes"']


class Profiles:
    """Two operators registered in the gateway and named as AWS profiles: ``prod`` (source) and ``dev``."""

    def __init__(self, topology: Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 prod_policy: dict[str, Any] = PROD_POLICY) -> None:
        self.gateway = topology.deployment.gateway
        lines = []
        for profile, account, policy in (("prod", SOURCE_ACCOUNT, prod_policy), ("dev", TARGET_ACCOUNT, DEV_POLICY)):
            creds = self.gateway.register_principal(f"arn:aws:iam::{account}:user/{profile}-operator", [policy])
            lines += [f"[{profile}]", f"aws_access_key_id = {creds.access_key_id}",
                      f"aws_secret_access_key = {creds.secret_access_key}"]
        path = tmp_path / "credentials"
        path.write_text("\n".join(lines) + "\n")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                     "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SSM",
                     "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.chdir(tmp_path)
        self.tables = (f"{topology.source.region}:{topology.source.name}",
                       f"arn:aws:dynamodb:{topology.replica.region}:{TARGET_ACCOUNT}:table/{topology.replica.name}")

    def cli(self, command: str, *args: str) -> Any:
        """``cdk-replication COMMAND SOURCE TARGET ARGS`` with production's and development's credentials:
        ``code``, ``out``, ``err`` and ``json()``."""
        import io
        from types import SimpleNamespace

        from cdk_replication.cli import main

        out, err = io.StringIO(), io.StringIO()
        code = main([command, *self.tables, "--source-profile", "prod", "--target-profile", "dev", "--quiet",
                     "--endpoint-url", self.gateway.endpoint_url, *args], stdout=out, stderr=err)
        text = out.getvalue()
        return SimpleNamespace(code=code, out=text, err=err.getvalue(), json=lambda: json.loads(text))


def _write_workload(topology: Topology, count: int) -> list[dict[str, Any]]:
    """Inserts (every fourth inactive), then status flips both ways, email changes and deletes; returns every
    item version written (for the forbidden values)."""
    client, name = topology.source.client(), topology.source.name
    written = []
    for i in range(count):
        written.append(customer(i, "inactive" if i % 4 == 3 else "active"))
        client.put_item(TableName=name, Item=written[-1])
    for i in range(0, count, 5):
        written.append(customer(i, "inactive" if i % 10 == 0 else "active", email=f"changed{i}@example.com"))
        client.put_item(TableName=name, Item=written[-1])  # flips: stops or starts matching
    for i in range(1, count, 7):
        client.delete_item(TableName=name, Key={"pk": {"S": f"c{i:03}"}})
    return written


def _replica_items(topology: Topology) -> dict[str, dict[str, Any]]:
    client = topology.replica.client()
    pages = client.get_paginator("scan").paginate(TableName=topology.replica.name, ConsistentRead=True)
    return {item["pk"]["S"]: item for page in pages for item in page["Items"]}


def test_masked_replica_converges_under_faults_and_nothing_raw_reaches_the_target(
        masked_app: Path, topology_of: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    topology = topology_of(masked_app, bucket_root=tmp_path / "buckets", stacks=stacks_of("MaskedCustomers"))
    assert topology.replica.account == TARGET_ACCOUNT
    requests = TargetRequests(topology.deployment.gateway, TARGET_ACCOUNT)
    profiles = Profiles(topology, tmp_path, monkeypatch)
    faults, mapping = topology.function.faults, topology.mapping
    mapping.duplicate_next_batches(2)
    faults.crash_after_writes(1)
    faults.throttle_writes(topology.replica.name, calls=5)
    faults.fail_writes(topology.replica.name, "ValidationException", fraction=1.0,
                       message="Item size has exceeded the maximum allowed size", matching=POISON)
    written = _write_workload(topology, 40)
    poison = {**customer(500), "name": {"S": POISON}}
    written.append(poison)
    topology.source.client().put_item(TableName=topology.source.name, Item=poison)
    topology.settle(timeout_s=240)

    # The failure path: the poison record's failure record, raw images and all, is in the SOURCE account's bucket.
    bucket = topology.failure_destination
    assert isinstance(bucket, LocalBucket) and bucket.account == SOURCE_ACCOUNT
    (failure,) = topology.failures()
    assert "person500@example.com" in failure["payload"]  # held in the source account, never sent on
    assert "c500" not in _replica_items(topology)
    faults.clear()
    redrive = profiles.cli("redrive", "--from-dir", str(bucket.directory), "--json")
    assert redrive.code == 0, redrive.err + redrive.out

    # backfill, verify and --repair, after tampering with the replica (not recorded: the test's own requests).
    with requests.paused():
        replica = topology.replica.client()
        for key in ("c000", "c002", "c004"):
            replica.delete_item(TableName=topology.replica.name, Key={"pk": {"S": key}})
        replica.update_item(TableName=topology.replica.name, Key={"pk": {"S": "c005"}},
                            UpdateExpression="SET #n = :n", ExpressionAttributeNames={"#n": "name"},
                            ExpressionAttributeValues={":n": {"S": "stale"}})
    backfill = profiles.cli("backfill", "--json")
    assert backfill.code == 0, backfill.err
    assert backfill.json()["counts"]["filtered"] > 0 and backfill.json()["counts"]["copied"] >= 2
    repaired = profiles.cli("verify", "--repair", "--json")
    assert repaired.code == 0, repaired.err + repaired.out
    final = profiles.cli("verify", "--json")
    assert final.code == 0 and final.json()["inSync"], final.err + final.out

    held = _replica_items(topology)
    source_items = topology.source.client().scan(TableName=topology.source.name, ConsistentRead=True)["Items"]
    active = {i["pk"]["S"] for i in source_items if i["status"]["S"] == "active"}
    assert set(held) == active and "c500" in held
    assert all("address" not in i and "notes" not in i and re.fullmatch(r"[0-9a-f]{64}", i["email"]["S"])
               for i in held.values())
    requests.assert_clean(forbidden_values(written))


def test_the_leak_check_fails_against_a_raw_repair(masked_app: Path, topology_of: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The mutant: ``verify --repair`` writes SOURCE's item as it is. The recorder must catch it. Before that,
    the safety net: without the permission to read the transform or its key, nothing is written."""
    from cdk_replication.cli import repair
    from cdk_replication.cli.transforms import IDENTITY

    topology = topology_of(masked_app, bucket_root=tmp_path / "buckets", stacks=stacks_of("MaskedAccounts"))
    requests = TargetRequests(topology.deployment.gateway, TARGET_ACCOUNT)
    item = customer(1)
    topology.source.client().put_item(TableName=topology.source.name, Item=item)
    topology.settle()
    (held,) = _replica_items(topology)  # under its hashed key: this app hashes the partition key too
    for policy, permission in ((NO_PARAMETER, "ssm:GetParameter"), (NO_SECRET, "secretsmanager:GetSecretValue")):
        refused = Profiles(topology, tmp_path, monkeypatch, policy).cli("backfill")
        assert refused.code == 2 and permission in refused.err and "nothing was written" in refused.err, refused.err
        assert list(_replica_items(topology)) == [held]
    profiles = Profiles(topology, tmp_path, monkeypatch)

    def lose_the_copy() -> None:
        with requests.paused():
            topology.replica.client().delete_item(TableName=topology.replica.name, Key={"pk": {"S": held}})

    lose_the_copy()
    assert profiles.cli("verify", "--repair").code == 0  # the real repair: the check passes
    requests.assert_clean(forbidden_values([item]))
    lose_the_copy()
    real_init = repair.Repairer.__init__

    def raw_repairer(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self.view = IDENTITY  # the mutation

    monkeypatch.setattr(repair.Repairer, "__init__", raw_repairer)
    assert profiles.cli("verify", "--repair").code in (0, 1)
    with pytest.raises(AssertionError, match="person1@example.com"):
        requests.assert_clean(forbidden_values([item]))


@pytest.fixture(scope="session")
def masked_app(assemblies: dict[str, Path]) -> Path:
    """apps/masked_app.py: ``MaskedCustomers`` and ``MaskedAccounts`` (deploy one with :func:`stacks_of`)."""
    return assemblies["masked_app"]


def stacks_of(name: str) -> list[str]:
    """The stacks of one ``ReplicatedTable`` of apps/masked_app.py: each test deploys its own tables."""
    return [f"{name}-us-west-2", f"{name}-{TARGET_ACCOUNT}-us-east-1"]
