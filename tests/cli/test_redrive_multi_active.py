"""``resync_multi_active`` (redrive of a multi-active key) on DynamoDB Local, with the real replicator.

Each region is a table in its own region database of one DynamoDB Local, with a stream and the replicator's
own ``Processor`` (multi-active, every other region as target). A "failed" record is a real stream record of
the source region that its replicator never applied (it is kept aside, as the S3 failure destination keeps
it); ``AGE`` moves the time of those records weeks back, as a redrive weeks after the failure sees them.
After every resync the regions' replicators run over their streams until quiet: the write the resync made must
come back to the target's replicator as an echo (skipped, never sent on), and the regions must agree.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from cdk_replication._lambda.replicator.config import load_config
from cdk_replication._lambda.replicator.processor import Processor
from cdk_replication._lambda.replicator.records import parse_record
from cdk_replication.cli.conditions import LastWriterWins
from cdk_replication.cli.redrive.multi_active import (
    DEFAULT_TOMBSTONE_TTL_SECONDS,
    MultiActiveResync,
    resync_multi_active,
)
from cdk_replication.cli.repair import FAILED, KEPT, REPAIRED, SETTLED, WOULD_DELETE, WOULD_PUT
from cdk_replication.cli.pacing import Retrier
from cdk_replication.cli.tables import Connection, TableHandle, TableRef, describe_table
from cdk_replication.local import DynamoDBLocal, credentials_for_account
from cdk_replication.local.stream_records import aws_stream_arn, read_all_records, to_lambda_record

ACCOUNT = "111111111111"
EAST, WEST, SYDNEY = "us-east-1", "eu-west-1", "ap-southeast-2"
PREFIX = "_rep_"
DELETED, MARKER, ORIGIN = PREFIX + "deleted", PREFIX + "marker", PREFIX + "origin"
#: How long before the redrive the failed records were written: three weeks, far past the tombstones' lifetime.
AGE = 21 * 24 * 3600
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


@dataclass
class FakeContext:
    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class Region:
    """One region: its table, a low-level client, its stream's unread records and its replicator."""

    ddb: DynamoDBLocal
    region: str
    name: str
    stream_arn: str
    processor: Processor | None = None
    handle: TableHandle | None = None
    _seen: set[str] = field(default_factory=set)

    @property
    def client(self) -> Any:
        return self.ddb.client(region=self.region, account=ACCOUNT)

    def put(self, pk: str, version: int | None, **attrs: Any) -> None:
        item = {"pk": {"S": pk}, **attrs}
        if version is not None:
            item["updatedAt"] = {"N": str(version)}
        self.client.put_item(TableName=self.name, Item=item)

    def delete(self, pk: str) -> None:
        self.client.delete_item(TableName=self.name, Key={"pk": {"S": pk}})

    def get(self, pk: str) -> dict[str, Any] | None:
        return self.client.get_item(TableName=self.name, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")

    def live(self, pk: str) -> dict[str, Any] | None:
        """The item as the application sees it: ``None`` for a tombstone, metadata left out."""
        item = self.get(pk)
        if item is None or DELETED in item:
            return None
        return {k: v for k, v in item.items() if not k.startswith(PREFIX)}

    def new_records(self, age: int = 0) -> list[dict[str, Any]]:
        """Stream records written since the last call, in Lambda's shape, dated ``age`` seconds earlier."""
        streams = self.ddb.client("dynamodbstreams", region=self.region, account=ACCOUNT)
        arn = aws_stream_arn(self.stream_arn, self.region, ACCOUNT)
        out = []
        for raw in read_all_records(streams, self.stream_arn):
            if raw["dynamodb"]["SequenceNumber"] not in self._seen:
                self._seen.add(raw["dynamodb"]["SequenceNumber"])
                record = to_lambda_record(raw, self.region, arn)
                record["dynamodb"]["ApproximateCreationDateTime"] -= age
                out.append(record)
        return out

    def deliver(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        assert self.processor is not None
        return self.processor.process({"Records": records}, FakeContext())


@dataclass
class World:
    regions: dict[str, Region]

    def __getitem__(self, region: str) -> Region:
        return self.regions[region]

    def pump(self, age: int = 0, rounds: int = 6) -> int:
        """Every region's replicator over its new stream records until none has any; returns how many."""
        delivered = 0
        for _ in range(rounds):
            moved = 0
            for region in self.regions.values():
                records = region.new_records(age)
                if records:
                    assert region.deliver(records) == {"batchItemFailures": []}, region.region
                    moved += len(records)
            if moved == 0:
                return delivered
            delivered += moved
        raise AssertionError("replication did not quiesce")

    def resync(self, source: str, target: str, pk: str, failed: list[dict[str, Any]],
               dry_run: bool = False) -> tuple[str, str | None]:
        options = MultiActiveResync(LastWriterWins("updatedAt"), Retrier(), PREFIX, dry_run=dry_run)
        src, dst = self.regions[source].handle, self.regions[target].handle
        assert src is not None and dst is not None
        return resync_multi_active(src, dst, {"pk": {"S": pk}}, failed, options)

    def assert_echo_only(self, region: str) -> None:
        """``region``'s new stream records (the resync's write) are, to its replicator, echoes: planned as
        skipped with no write; delivered, they change no other region."""
        records = self.regions[region].new_records()
        processor = self.regions[region].processor
        assert processor is not None
        for index, record in enumerate(records):
            change = parse_record(index, record, processor.config.key)
            plan = processor.replication.plan(change.key, [change])
            assert plan.skipped == [change] and not plan.writes, f"not an echo: {record['eventName']}"
        assert self.regions[region].deliver(records) == {"batchItemFailures": []}
        assert self.pump() == 0, "the resync's write was sent on"


@pytest.fixture
def world(ddb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., World]]:
    """``world(regions, targets=None)``: a table, stream and replicator per region (``targets`` overrides a
    region's targets, to make one of its deliveries fail)."""
    for name, value in {**ddb_local.endpoint_env(), **credentials_for_account(ACCOUNT).as_env()}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", EAST)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    processors: list[Processor] = []

    def build(names: list[str], targets: dict[str, list[str]] | None = None) -> World:
        regions = {r: _create(ddb_local, r) for r in names}
        for region in regions.values():
            others = (targets or {}).get(region.region, [r for r in names if r != region.region])
            region.processor = _processor(region, [regions[r] for r in others])
            processors.append(region.processor)
            ref = TableRef.parse(f"{region.region}:{region.name}")
            region.handle = describe_table(Connection(endpoint_url=ddb_local.endpoint_url), ref, "table")
        return World(regions)

    yield build
    for processor in processors:
        processor.close()


def _create(ddb: DynamoDBLocal, region: str) -> Region:
    name = f"redrive-ma-{uuid.uuid4().hex[:10]}"
    client = ddb.client(region=region, account=ACCOUNT)
    client.create_table(
        TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    arn = client.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    return Region(ddb, region, name, arn)


def _processor(region: Region, targets: list[Region], **extra_env: str) -> Processor:
    """``region``'s replicator to ``targets``; ``extra_env``: more of its environment variables."""
    def ref(r: Region) -> dict[str, str]:
        return {"tableName": r.name, "region": r.region, "account": ACCOUNT}

    env = {**extra_env,
        "REPLICATION_MODE": "MULTI_ACTIVE",
        "REPLICATION_SOURCE": json.dumps(ref(region)),
        "REPLICATION_TARGETS": json.dumps([ref(t) for t in targets]),
        "REPLICATION_KEY": json.dumps({"partitionKey": "pk", "sortKey": None}),
        "REPLICATION_TOMBSTONE_TTL_SECONDS": str(DEFAULT_TOMBSTONE_TTL_SECONDS),
    }
    return Processor(load_config(env))


def marker_parts(item: dict[str, Any]) -> list[str]:
    """``<digest>.<sequence>.<token>.<stamped>.<written>[.<expires>]`` (replicator.metadata)."""
    return item[MARKER]["S"].split(".")


# --- the source holds the item ----------------------------------------------------------------------------


def test_a_newer_source_item_reaches_the_target_as_the_replicator_sends_it(world):
    w = world([EAST, WEST])
    w[EAST].put("k", 100, v={"S": "one"})
    w.pump()
    w[EAST].put("k", 200, v={"S": "two"}, b={"B": b"\x00\xff"})
    failed = w[EAST].new_records(AGE)  # never applied: the failure destination kept them

    assert w.resync(EAST, WEST, "k", failed) == (REPAIRED, None)

    assert w[WEST].live("k") == w[EAST].live("k")
    item = w[WEST].get("k")
    parts = marker_parts(item)
    # The metadata A's replicator writes for that record: origin, its stream sequence and its time.
    assert item[ORIGIN] == {"S": EAST}
    assert int(parts[1]) == int(failed[-1]["dynamodb"]["SequenceNumber"])
    assert parts[4] == str(int(failed[-1]["dynamodb"]["ApproximateCreationDateTime"]))
    w.assert_echo_only(WEST)
    assert w.resync(EAST, WEST, "k", failed) == (SETTLED, None)  # a second run finds it done


def test_a_newer_write_in_the_target_is_kept(world):
    w = world([EAST, WEST])
    w[EAST].put("k", 100, v={"S": "one"})
    w.pump()
    w[EAST].put("k", 200, v={"S": "two"})
    failed = w[EAST].new_records(AGE)
    w[WEST].put("k", 300, v={"S": "west-newer"})

    outcome, reason = w.resync(EAST, WEST, "k", failed)

    assert outcome == KEPT and "orders after" in reason
    assert w[WEST].live("k")["v"] == {"S": "west-newer"}
    w.pump()
    assert w[EAST].live("k") == w[WEST].live("k") and w[EAST].live("k")["v"] == {"S": "west-newer"}


@pytest.mark.parametrize("source, target", [(EAST, WEST), (WEST, EAST)])
def test_a_tie_has_the_replicators_winner(world, source, target):
    """Equal versions: the greater origin region id wins (us-east-1 over eu-west-1), in both directions."""
    w = world([EAST, WEST])
    w[source].put("k", 100, v={"S": source})
    failed = w[source].new_records(AGE)
    w[target].put("k", 100, v={"S": target})  # its record is still to be delivered

    outcome, _ = w.resync(source, target, "k", failed)

    winner = max(source, target)
    assert outcome == (REPAIRED if winner == source else KEPT)
    assert w[target].live("k")["v"] == {"S": winner}
    w.pump()
    assert w[EAST].live("k") == w[WEST].live("k") and w[EAST].live("k")["v"] == {"S": winner}


def test_a_write_from_a_third_region_is_sent_as_that_regions_replicator_sends_it(world):
    """The source holds a newer write of Sydney whose delivery to the target failed as well: the target gets
    it with Sydney's own metadata, so Sydney's replicator, redelivering it, finds it already applied."""
    w = world([EAST, WEST, SYDNEY], targets={SYDNEY: [EAST]})  # Sydney -> eu-west-1 "fails"
    w[EAST].put("k", 100, v={"S": "east"})
    failed = w[EAST].new_records(AGE)
    w[SYDNEY].put("k", 500, v={"S": "sydney"})
    sydney_records = w[SYDNEY].new_records()
    assert w[SYDNEY].deliver(sydney_records) == {"batchItemFailures": []}
    assert w[EAST].deliver(w[EAST].new_records()) == {"batchItemFailures": []}  # its echo, skipped

    outcome, reason = w.resync(EAST, WEST, "k", failed)

    assert outcome == REPAIRED and SYDNEY in reason
    item = w[WEST].get("k")
    assert item[ORIGIN] == {"S": SYDNEY} and item["v"] == {"S": "sydney"}
    assert int(marker_parts(item)[1]) == int(sydney_records[-1]["dynamodb"]["SequenceNumber"])
    w.assert_echo_only(WEST)
    full = _processor(w[SYDNEY], [w[EAST], w[WEST]])  # Sydney's replicator, its target fixed
    try:
        assert full.process({"Records": sydney_records}, FakeContext()) == {"batchItemFailures": []}
    finally:
        full.close()
    assert w[WEST].get("k")[MARKER] == item[MARKER]  # AlreadyApplied: not even rewritten


def test_a_write_made_after_the_failed_record_is_sent_and_its_own_record_settles_it(world):
    """The usual poison: a write without a conflict value (blocked), then the writer fixed and the item written
    again. That later write is sent placed just after the failed record; its own record, delivered later,
    rewrites it with the exact metadata and changes nothing else."""
    w = world([EAST, WEST])
    w[EAST].put("k", None, v={"S": "no version"})
    failed = w[EAST].new_records(AGE)
    result = w[EAST].deliver(failed)
    assert result["batchItemFailures"], "the write without a conflict value must fail"
    w[EAST].put("k", 200, v={"S": "fixed"})
    pending = w[EAST].new_records()

    assert w.resync(EAST, WEST, "k", failed)[0] == REPAIRED

    assert w[WEST].live("k") == w[EAST].live("k")
    assert int(marker_parts(w[WEST].get("k"))[1]) == int(failed[-1]["dynamodb"]["SequenceNumber"]) + 1
    w.assert_echo_only(WEST)
    assert w[EAST].deliver(pending) == {"batchItemFailures": []}
    assert int(marker_parts(w[WEST].get("k"))[1]) == int(pending[-1]["dynamodb"]["SequenceNumber"])
    w.pump()
    assert w[EAST].live("k") == w[WEST].live("k")


def test_a_source_item_without_a_conflict_value_fails(world):
    w = world([EAST, WEST])
    w[EAST].put("k", None, v={"S": "no version"})
    failed = w[EAST].new_records(AGE)

    outcome, reason = w.resync(EAST, WEST, "k", failed)

    assert outcome == FAILED and "MissingConflictAttribute" in reason
    assert w[WEST].get("k") is None


# --- the source deleted the item ---------------------------------------------------------------------------


def failed_delete(w: World, version: int) -> list[dict[str, Any]]:
    """us-east-1 writes ``k`` at ``version`` (replicated everywhere), then deletes it three weeks ago; returns
    the delete's record, which never reached eu-west-1."""
    w[EAST].put("k", version, v={"S": "deleted"})
    w.pump(age=AGE)
    w[EAST].delete("k")
    return w[EAST].new_records(AGE)


def test_a_failed_delete_becomes_a_versioned_delete_in_the_target(world):
    w = world([EAST, WEST])
    failed = failed_delete(w, 100)

    assert w.resync(EAST, WEST, "k", failed) == (REPAIRED, None)

    item = w[WEST].get("k")
    assert item[DELETED] == {"BOOL": True} and item["updatedAt"] == {"N": "100"} and item[ORIGIN] == {"S": EAST}
    assert "v" not in item
    w.assert_echo_only(WEST)
    assert w[EAST].live("k") is None


def test_the_sources_tombstone_of_a_third_regions_delete_is_sent(world):
    """Sydney deleted the item (version 100) yesterday; its tombstone reached us-east-1 but not eu-west-1, which
    holds an older write of its own: us-east-1's tombstone is sent, Sydney's delete as Sydney sent it."""
    w = world([EAST, WEST, SYDNEY], targets={SYDNEY: [EAST]})  # Sydney -> eu-west-1 "fails"
    w[EAST].put("k", 40, v={"S": "east"})
    failed = w[EAST].new_records()
    w[WEST].put("k", 50, v={"S": "west"})
    assert w[WEST].deliver(w[WEST].new_records()) == {"batchItemFailures": []}
    w[SYDNEY].put("k", 100, v={"S": "sydney"})
    w[SYDNEY].delete("k")
    w.pump()  # Sydney's write and delete reach us-east-1, which skips their echoes

    outcome, reason = w.resync(EAST, WEST, "k", failed)

    assert (outcome, reason) == (REPAIRED, "the source's tombstone")
    item = w[WEST].get("k")
    assert item[DELETED] == {"BOOL": True} and item["updatedAt"] == {"N": "100"} and item[ORIGIN] == {"S": SYDNEY}
    assert item[MARKER] != w[EAST].get("k")[MARKER] and marker_parts(item)[5] == marker_parts(w[EAST].get("k"))[5]
    w.assert_echo_only(WEST)


def test_a_newer_write_in_the_target_beats_the_delete(world):
    w = world([EAST, WEST])
    failed = failed_delete(w, 100)
    w[WEST].put("k", 300, v={"S": "west-newer"})

    outcome, _ = w.resync(EAST, WEST, "k", failed)

    assert outcome == KEPT
    assert w[WEST].live("k")["v"] == {"S": "west-newer"}
    w.pump()
    assert w[EAST].live("k") == w[WEST].live("k")


def test_an_old_failed_write_never_resurrects_an_item_deleted_since(world):
    """The failed INSERT is three weeks old; the item was deleted since, and its tombstones expired and were
    removed everywhere. Replayed, the INSERT would bring the item back for good."""
    w = world([EAST, WEST])
    w[EAST].put("k", 100, v={"S": "old"})
    failed = w[EAST].new_records(AGE)
    w[EAST].delete("k")
    w.pump(age=AGE - 60)
    for region in (EAST, WEST):  # DynamoDB's TTL removes the tombstones
        assert DELETED in w[region].get("k")
        w[region].delete("k")
        records = w[region].new_records()
        for record in records:
            record["userIdentity"] = dict(TTL_IDENTITY)
        assert w[region].deliver(records) == {"batchItemFailures": []}

    outcome, reason = w.resync(EAST, WEST, "k", failed)

    assert outcome == KEPT and "deleted in the source" in reason
    assert w[WEST].get("k") is None
    assert w.pump() == 0


def test_a_delete_known_only_from_a_removed_tombstone_is_still_sent(world):
    """The delete never reached eu-west-1, which still holds the deleted version; by the redrive, the source's
    TTL has removed its tombstone, and the failed record is that removal: its tombstone's delete is sent."""
    w = world([EAST, WEST, SYDNEY])
    w[EAST].put("k", 100, v={"S": "one"})
    w.pump(age=AGE)
    w[EAST].delete("k")
    partial = _processor(w[EAST], [w[SYDNEY]])  # the delete's delivery to eu-west-1 fails
    try:
        assert partial.process({"Records": w[EAST].new_records(AGE)}, FakeContext()) == {"batchItemFailures": []}
    finally:
        partial.close()
    w.pump(age=AGE)  # the tombstone's echoes
    w[EAST].delete("k")  # DynamoDB's TTL removes the source's tombstone
    failed = w[EAST].new_records()
    for record in failed:
        record["userIdentity"] = dict(TTL_IDENTITY)

    assert w.resync(EAST, WEST, "k", failed)[0] == REPAIRED

    item = w[WEST].get("k")
    assert item[DELETED] == {"BOOL": True} and item["updatedAt"] == {"N": "100"} and item[ORIGIN] == {"S": EAST}
    w.assert_echo_only(WEST)


def test_a_failed_write_that_lost_in_its_own_region_says_how_to_put_the_winner_back(world):
    """us-east-1's application wrote version 100 over version 200 (a clock behind); its replicator's put-back
    of 200 failed with the record. Nothing is sent (the write lost), and the reason says what does put the
    winner back: ``verify --repair`` from the target to the source, which then makes the regions agree."""
    from .test_repair_multi_active import repair

    w = world([EAST, WEST])
    w[EAST].put("k", 200, v={"S": "winner"})
    w.pump()
    w[EAST].put("k", 100, v={"S": "late"})
    failed = w[EAST].new_records(AGE)

    outcome, reason = w.resync(EAST, WEST, "k", failed)

    assert outcome == KEPT and f"verify --repair from {WEST} to {EAST}" in reason, reason
    assert repair(w, WEST, EAST)["k"][0] == REPAIRED
    w.pump()
    assert w[EAST].live("k") == w[WEST].live("k") and w[WEST].live("k")["v"] == {"S": "winner"}


def test_an_expired_delete_is_not_sent_over_a_target_write_of_unknown_time(world):
    """VERSION strategy: the item deleted at version 7 three weeks ago; the target holds a write of its own
    region at version 1 whose time nobody knows: a re-create after the tombstone expired is kept everywhere,
    so the delete must not remove it."""
    w = world([EAST, WEST])
    failed = failed_delete(w, 7)
    w[WEST].put("k", 1, v={"S": "re-created"})

    outcome, reason = w.resync(EAST, WEST, "k", failed)

    assert outcome == KEPT and "re-create" in reason
    assert w[WEST].live("k")["v"] == {"S": "re-created"}


# --- dry run ------------------------------------------------------------------------------------------------


def test_a_dry_run_decides_without_writing(world):
    w = world([EAST, WEST])
    for pk in ("put", "delete", "kept"):
        w[EAST].put(pk, 100, v={"S": "one"})
    w.pump(age=AGE)
    w[EAST].put("put", 200, v={"S": "two"})
    w[EAST].delete("delete")
    w[EAST].put("kept", 200, v={"S": "two"})
    failed = w[EAST].new_records(AGE)
    w[WEST].put("kept", 300, v={"S": "west"})
    w[WEST].new_records()
    before = {pk: w[WEST].get(pk) for pk in ("put", "delete", "kept")}

    def of(pk: str) -> list[dict[str, Any]]:
        return [r for r in failed if r["dynamodb"]["Keys"]["pk"]["S"] == pk]

    assert w.resync(EAST, WEST, "put", of("put"), dry_run=True)[0] == WOULD_PUT
    assert w.resync(EAST, WEST, "delete", of("delete"), dry_run=True)[0] == WOULD_DELETE
    assert w.resync(EAST, WEST, "kept", of("kept"), dry_run=True)[0] == KEPT
    assert {pk: w[WEST].get(pk) for pk in before} == before
    assert w[WEST].new_records() == []


def test_the_condition_of_an_expired_delete_names_every_attribute_of_the_item_it_replaces():
    """The compare-and-set of an expired delete (``_still_holds``): nothing there, every attribute of the item
    read, or, for an item too large to name every attribute, its conflict value, marker and origin."""
    from cdk_replication.cli.redrive.multi_active import MAX_CONDITION_CHARS, _still_holds

    codec = type("Codec", (), {"conflict_attr": "updatedAt", "marker_attr": MARKER, "origin_attr": ORIGIN})()
    assert _still_holds("pk", None, codec) == ("attribute_not_exists(#k)", {"#k": "pk"}, {})  # type: ignore[arg-type]
    item = {"pk": {"S": "k"}, "updatedAt": {"N": "1"}, "v": {"S": "x"}}
    expression, names, values = _still_holds("pk", item, codec)  # type: ignore[arg-type]
    assert sorted(names.values()) == sorted(["pk", *item]) and sorted(map(str, values.values())) == sorted(
        map(str, item.values()))
    assert expression.count(" = ") == 3
    wide = {**item, MARKER: {"S": "m"}, ORIGIN: {"S": EAST}, **{f"a{i}": {"N": str(i)} for i in range(300)}}
    expression, names, _ = _still_holds("pk", wide, codec)  # type: ignore[arg-type]
    assert len(expression) <= MAX_CONDITION_CHARS
    assert sorted(names.values()) == sorted(["pk", "updatedAt", MARKER, ORIGIN])
