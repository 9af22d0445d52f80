"""The demo's poison record: a write the replica cannot accept goes to the mapping's on-failure destination.

After the workload is replicated and verified, the demo gives the first replica a global secondary index whose
key attribute is a number (``CostCenter``, type ``N``; the source has no such index) and writes one item to the
source whose ``CostCenter`` is a string. DynamoDB refuses that item on the replica ("Type mismatch for Index
Key"), the replicator reports it failed, Lambda retries it until ``MaximumRetryAttempts`` is used up and sends
it to the on-failure destination: with an S3 destination an object holding the record itself, with SQS only
its shard and sequence range. The replica then lacks exactly that item, which the demo states (it is expected
to differ; it is not hidden from the comparison).

The index is a drift only this demo makes (``app.py`` declares none); dropping it is the fix at the cause,
after which ``cdk-replication redrive`` brings the item over from the source's current state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from cdk_replication.local.bucket import FAILURE_PREFIX, LocalBucket
from cdk_replication.local.compare import compare_tables
from cdk_replication.local.deploy import LocalDeployment, LocalTable
from cdk_replication.local import workload

INDEX, ATTRIBUTE = "ByCostCenter", "CostCenter"
#: The poison item's key is the workload's key of this index (far beyond any item the workload writes).
POISON_INDEX = 990_001


class _Ui(Protocol):
    def step(self, label: str, detail: str, seconds: float | None = None, ok: bool = True) -> None: ...

    def print(self, text: str = "") -> None: ...

    def dim(self, text: str) -> str: ...


class _Replication(Protocol):
    mapping: Any
    source: LocalTable
    targets: list[LocalTable]
    metadata_prefix: str


@dataclass
class PoisonOutcome:
    """What happened to the poison record; ``problems`` is empty when everything went as expected."""

    key_text: str
    stored_at: str | None = None
    problems: list[str] = field(default_factory=list)


def run_poison(ui: _Ui, deployment: LocalDeployment, rep: _Replication, key_names: tuple[str, ...],
               tombstone: str | None) -> PoisonOutcome:
    """Break the first target for one item, write it, let the mapping give up on it and check the outcome."""
    t = time.monotonic()
    target = rep.targets[0]
    _add_number_index(target)
    key = _poison_key(rep.source, key_names)
    outcome = PoisonOutcome(key_text=", ".join(f"{n}={next(iter(v.values()))}" for n, v in key.items()))
    seen = _failure_locations(rep.mapping.destination)
    discarded = rep.mapping.stats.records_discarded
    rep.source.client().put_item(TableName=rep.source.name, Item={**key, "Name": {"S": "Poison Pill"},
                                                                  ATTRIBUTE: {"S": "CC-17"}})
    deployment.run_until_idle(timeout_s=60)
    ui.step("Poisoned", f"{outcome.key_text} with {ATTRIBUTE} \"CC-17\"; replica index {INDEX} wants N",
            time.monotonic() - t)
    new = {k: v for k, v in _failure_locations(rep.mapping.destination).items() if k not in seen}
    if rep.mapping.stats.records_discarded - discarded != 1 or len(new) != 1:
        outcome.problems.append(f"the poison record was not discarded to the failure destination exactly once "
                                f"({rep.mapping.stats.records_discarded - discarded} discarded, "
                                f"{len(new)} failure record(s))")
        return outcome
    ((location, record),) = new.items()
    outcome.stored_at = _report_record(ui, rep.mapping.destination, location, record,
                                       _table_specs(rep.source, target))
    outcome.problems += _check_only_poison_differs(rep, target, key_names, tombstone, key)
    return outcome


def _add_number_index(target: LocalTable) -> None:
    """A GSI on the replica only, keyed by a number attribute the source writes as a string."""
    client = target.client()
    client.update_table(
        TableName=target.name,
        AttributeDefinitions=[{"AttributeName": ATTRIBUTE, "AttributeType": "N"}],
        GlobalSecondaryIndexUpdates=[{"Create": {
            "IndexName": INDEX, "KeySchema": [{"AttributeName": ATTRIBUTE, "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
            **({} if _on_demand(client, target.name) else
               {"ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}})}}],
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        indexes = client.describe_table(TableName=target.name)["Table"].get("GlobalSecondaryIndexes", [])
        if all(i.get("IndexStatus", "ACTIVE") == "ACTIVE" for i in indexes):
            return
        time.sleep(0.1)


def _on_demand(client: Any, table: str) -> bool:
    summary = client.describe_table(TableName=table)["Table"].get("BillingModeSummary", {})
    return summary.get("BillingMode") == "PAY_PER_REQUEST"


def _poison_key(source: LocalTable, key_names: tuple[str, ...]) -> dict[str, Any]:
    types = {d["AttributeName"]: d["AttributeType"] for d in
             source.client().describe_table(TableName=source.name)["Table"]["AttributeDefinitions"]}
    return {name: workload.key_value(types[name], POISON_INDEX) for name in key_names}


def _failure_locations(destination: Any) -> dict[str, dict[str, Any]]:
    """The failure records of ``destination`` by where they are: object key (S3) or position (queue)."""
    if destination is None:
        return {}
    if isinstance(destination, LocalBucket):
        return {o.key: o.json() for o in destination.objects(FAILURE_PREFIX)}
    return {str(i): record for i, record in enumerate(destination.failure_records())}


def _table_specs(source: LocalTable, target: LocalTable) -> str:
    """SOURCE and TARGET as the command line names them: ``region:name`` in one account, else ARNs."""
    if source.account == target.account:
        return f"{source.region}:{source.name} {target.region}:{target.name}"
    return f"{source.arn} {target.arn}"


def _report_record(ui: _Ui, destination: Any, location: str, record: dict[str, Any], tables: str) -> str:
    """Print where the failure record is and how to bring the item right (``tables``: the command's SOURCE
    and TARGET); returns its location."""
    info = record.get("DDBStreamBatchInfo") or record.get("KinesisBatchInfo") or {}
    attempts = record.get("requestContext", {}).get("approximateInvokeCount")
    if isinstance(destination, LocalBucket):
        ui.step("Held back", f"1 record, {attempts} attempts -> S3 failure bucket, with the record itself")
        ui.print(ui.dim(f"      file: {destination.path(location)}"))
        ui.print(ui.dim(f"      fix the cause (drop {INDEX}), then bring the item over from the source:"))
        ui.print(ui.dim(f"        cdk-replication redrive {tables} --from-dir {destination.directory}"))
        return "the file above"
    ui.step("Held back", f"1 record, {attempts} attempts -> failure queue (metadata only, no record)")
    ui.print(ui.dim(f"      queue {destination.name}: shard {info.get('shardId')}, "
                    f"sequence {info.get('startSequenceNumber')}"))
    ui.print(ui.dim(f"      fix the cause (drop {INDEX}), then, while the stream still holds the record (24 h):"))
    ui.print(ui.dim(f"        cdk-replication redrive {tables} --queue-url <queue url>"))
    return f"queue {destination.name}"


def _check_only_poison_differs(rep: _Replication, target: LocalTable, key_names: tuple[str, ...],
                               tombstone: str | None, key: dict[str, Any]) -> list[str]:
    result = compare_tables(rep.source.client(), rep.source.name, target.client(), target.name, list(key_names),
                            rep.metadata_prefix, tombstone_attribute=tombstone)
    item = target.client().get_item(TableName=target.name, Key=key, ConsistentRead=True).get("Item")
    if item is None and len(result.missing) == 1 and not result.different and not result.unexpected:
        return []
    return [f"after the poison record, {target.name} should lack exactly that item; it has "
            f"{len(result.missing)} missing, {len(result.different)} differing, {len(result.unexpected)} extra"]
