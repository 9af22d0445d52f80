"""Pure unit tests of the multi-active rules: markers, the order of states, echo detection."""

from __future__ import annotations

import decimal
import json
import time
from typing import Any

import pytest

from replicator.config import load_config
from replicator.metadata import LATEST, ConflictValueError, MetadataCodec, State, compare
from replicator.multi_active import MultiActiveReplication
from replicator.records import Change

REGION = "us-east-1"


@pytest.fixture
def config():
    return load_config(
        {
            "REPLICATION_MODE": "MULTI_ACTIVE",
            "REPLICATION_SOURCE": json.dumps({"tableName": "t", "region": REGION, "account": "111111111111"}),
            "REPLICATION_TARGETS": json.dumps([{"tableName": "t", "region": "eu-west-1", "account": "111111111111"}]),
            "REPLICATION_KEY": json.dumps({"partitionKey": "pk", "sortKey": None}),
        }
    )


@pytest.fixture
def codec(config):
    return MetadataCodec(config)


def item(ts: str = "10", **attrs: Any) -> dict[str, Any]:
    return {"pk": {"S": "k"}, "updatedAt": {"N": ts}, **attrs}


def state(version: str | None, deleted: bool = False, origin: str = "us-east-1") -> State:
    return State({}, None if version is None else decimal.Decimal(version), deleted, origin)


def test_order_version_then_delete_then_origin():
    assert state("2").order > state("1", deleted=True).order
    assert state("1", deleted=True).order > state("1", origin="zz-last-9").order
    assert state("1", origin="us-east-1").order > state("1", origin="eu-west-1").order
    assert state(None).order < state("-1000").order
    assert state("1E+2").order == state("100").order


def test_one_regions_equal_versions_follow_its_stream_and_survive_the_stamp(codec):
    earlier = State({}, decimal.Decimal(5), False, "eu-west-1", 66)
    later = State({}, decimal.Decimal(5), False, "eu-west-1", 67)
    assert later.order > earlier.order  # a re-delivered earlier write never replaces the later one
    assert State({}, decimal.Decimal(5), False, "us-east-1", 1).order > later.order  # origin still first
    stamped = codec.stamp(State(item(v={"S": "x"}), decimal.Decimal(10), False, "eu-west-1", 67))
    assert codec.state_of(stamped, "us-east-1").sequence == 67
    # an application write found in the table counts as the newest of its region
    assert codec.state_of(item(v={"S": "y"}), "us-east-1", unstamped_sequence=LATEST).sequence == LATEST


def test_stamp_is_recognised_and_any_user_change_breaks_it(codec):
    stamped = codec.stamp(State(item(v={"S": "x"}), decimal.Decimal(10), False, "eu-west-1"))
    assert codec.stamped_by_replicator(stamped)
    assert codec.state_of(stamped, REGION).origin == "eu-west-1"
    changed = {**stamped, "v": {"S": "y"}}
    assert not codec.stamped_by_replicator(changed)
    assert codec.state_of(changed, REGION).origin == REGION  # a stale stamp: written here
    assert not codec.stamped_by_replicator({**stamped, "_rep_origin": {"S": "us-east-1"}})
    assert not codec.stamped_by_replicator(item())


def test_tombstones(codec):
    tombstone = codec.stamp(codec.tombstone_state(item("7", v={"S": "gone"}), REGION, 7), now=1000)
    assert set(tombstone) == {"pk", "updatedAt", "_rep_deleted", "_rep_origin", "_rep_marker", "_rep_expiresAt"}
    assert tombstone["_rep_expiresAt"] == {"N": str(1000 + 172800)}
    assert codec.is_tombstone(tombstone)
    revived = {**tombstone, "v": {"S": "back"}}  # an UpdateItem on the tombstone
    assert not codec.is_tombstone(revived)
    assert codec.has_stale_tombstone_attributes(revived)
    with pytest.raises(ConflictValueError) as missing:
        codec.tombstone_state({"pk": {"S": "k"}}, REGION, 1)
    assert missing.value.code == "MissingConflictAttribute"


def change(old: dict[str, Any] | None, new: dict[str, Any] | None, name: str = "MODIFY") -> Change:
    return Change(0, "1", name, (("pk", "S", "k"),), new, old, None, False)


@pytest.mark.parametrize(
    ("old", "new", "echo"),
    [
        (None, "stamp_a", True),  # replicated INSERT
        ("stamp_a", "stamp_b", True),  # replicated over replicated
        ("plain", "stamp_a", True),  # replicated over a local write
        (None, "plain", False),  # application PutItem
        ("stamp_a", "stamp_a_changed", False),  # application UpdateItem on a replicated item
        ("stamp_a_changed", "stamp_a", False),  # application UpdateItem that restores the stamped content
        ("stamp_a", "stamp_a_expiry", True),  # replicator rewrote only its own metadata
    ],
)
def test_echo_is_decided_from_old_and_new_images(config, codec, old, new, echo):
    a = codec.stamp(State(item("10", v={"S": "a"}), decimal.Decimal(10), False, "eu-west-1"))
    images = {
        "plain": item("5", v={"S": "p"}),
        "stamp_a": a,
        "stamp_b": codec.stamp(State(item("11", v={"S": "b"}), decimal.Decimal(11), False, "eu-west-1")),
        "stamp_a_changed": {**a, "v": {"S": "changed"}},
        "stamp_a_expiry": {**a, "_rep_expiresAt": {"N": "5"}},
    }
    replication = MultiActiveReplication(config, clients=None, logger=None)  # type: ignore[arg-type]
    assert replication._is_echo(change(images.get(old), images[new])) is echo


def aged(image: dict[str, Any], seconds: int) -> dict[str, Any]:
    """``image`` with a marker written ``seconds`` earlier (as a backup restored that much later holds it)."""
    digest_part, sequence, token, stamped, *rest = image["_rep_marker"]["S"].split(".")
    marker = ".".join([digest_part, sequence, token, str(int(stamped) - seconds), *rest])
    return {**image, "_rep_marker": {"S": marker}}


def test_the_marker_carries_when_the_replicator_wrote_it(codec):
    stamped = codec.stamp(State(item("10", v={"S": "a"}), decimal.Decimal(10), False, "eu-west-1", 42), now=1_000_000)
    digest_part, sequence, token, at, written = stamped["_rep_marker"]["S"].split(".")
    assert (len(digest_part), sequence, len(token), at, written) == (22, "42", 8, "1000000", "")
    assert codec.stamped_at(stamped) == 1_000_000
    assert codec.state_of(stamped, REGION).sequence == 42
    legacy = {**stamped, "_rep_marker": {"S": ".".join(stamped["_rep_marker"]["S"].split(".")[:3])}}
    assert codec.stamped_by_replicator(legacy) and codec.stamped_at(legacy) is None  # written before the time
    assert codec.state_of(legacy, REGION).sequence == 42


@pytest.mark.parametrize(
    ("age", "record_delay", "echo"),
    [
        (0, 0, True),  # the replicator's write coming back
        (0, 900, True),  # written at the end of a 15-minute invocation that stamped it at the start
        (0, -60, True),  # the record's time is rounded down (DynamoDB Local: to the minute)
        (7200, 0, False),  # a restored backup whose marker is two hours old
        (3 * 86400, 0, False),
    ],
)
def test_a_marker_older_than_its_record_allows_is_a_restore_not_an_echo(config, codec, age, record_delay, echo):
    now = time.time()
    fresh = codec.stamp(State(item("10", v={"S": "a"}), decimal.Decimal(10), False, "eu-west-1"), now=now)
    new = aged(fresh, age)
    replication = MultiActiveReplication(config, clients=None, logger=None)  # type: ignore[arg-type]
    for old in (None, item("5", v={"S": "p"})):  # over nothing, over another item
        record = Change(0, "1", "MODIFY", (("pk", "S", "k"),), new, old, now + record_delay, False)
        assert replication._is_echo(record) is echo
    # Without a record time the bound is the tombstone lifetime (beyond retention + maximum record age).
    no_time = Change(0, "1", "INSERT", (("pk", "S", "k"),), aged(fresh, 3 * 86400), None, None, False)
    assert replication._is_echo(no_time) is False


def test_a_restored_state_is_the_backed_up_state_written_at_the_restore(codec):
    live = codec.stamp(State(item("10", v={"S": "a"}), decimal.Decimal(10), False, "eu-west-1", 7, written=4), now=5)
    restored = codec.restored_state(live, written_at=1_000_000)
    assert (restored.origin, restored.sequence, restored.deleted, restored.version) == ("eu-west-1", 7, False, 10)
    assert restored.written == 1_000_000  # the restore is a write made now: an expired tombstone is absent for it
    tombstone = codec.stamp(codec.tombstone_state(item("10"), "eu-west-1", 8, deleted_at=5), now=5)
    assert tombstone["_rep_expiresAt"] == {"N": str(5 + 2 * 172800)}  # a lifetime after the logical expiry
    again = codec.restored_state(tombstone, written_at=1_000_000)
    # The same delete, with the logical expiry every other copy of it carries (a fresh one would let this
    # region refuse writes the others keep).
    assert again.deleted and again.origin == "eu-west-1" and again.expires == 5 + 172800
    assert codec.stamp(again)["_rep_expiresAt"] == {"N": str(5 + 2 * 172800)}
    # A tombstone written before markers carried the expiry never expires logically, as its other copies;
    # restored, it gets a fresh TTL (the backup's may have passed).
    legacy = {**tombstone, "_rep_marker": {"S": ".".join(tombstone["_rep_marker"]["S"].split(".")[:4])}}
    old = codec.restored_state(legacy, written_at=1_000_000)
    assert old.deleted and old.expires is None
    assert codec.stamp(old, now=1_000_000)["_rep_expiresAt"] == {"N": str(1_000_000 + 172800)}


def test_a_tombstone_is_absent_for_a_write_made_at_or_after_its_logical_expiry(codec):
    tombstone = codec.tombstone_state(item("10"), "us-east-1", 8, deleted_at=1_000)
    assert (tombstone.written, tombstone.expires) == (1_000, 1_000 + 172800)
    stamped = codec.stamp(tombstone, now=1_001)
    assert codec.state_of(stamped, "eu-west-1") == tombstone  # both times travel in the marker
    def write(version: str, written: int | None) -> State:
        return State({}, decimal.Decimal(version), False, "eu-west-1", 1, written=written)
    assert compare(write("1", 1_000 + 172800), tombstone) == 1  # at the expiry: the tombstone is absent
    assert compare(tombstone, write("1", 1_000 + 172800)) == -1
    assert compare(write("1", 1_000 + 172799), tombstone) == -1  # before it: the delete of v10 wins
    assert compare(write("1", None), tombstone) == -1  # time unknown (an earlier version's marker): by order
    assert compare(write("11", 2_000), tombstone) == 1  # a newer write wins anyway
    never = State({}, decimal.Decimal(10), True, "us-east-1", 8, expires=None, written=None)
    assert compare(write("1", 10**9), never) == -1  # no logical expiry: by order, as before
    # A tombstone written after another's expiry beats it too (both deletes, ordered by time, then by order).
    later = State({}, decimal.Decimal(1), True, "eu-west-1", 2, expires=1_000 + 3 * 172800, written=1_000 + 172800)
    assert compare(later, tombstone) == 1 and compare(tombstone, later) == -1
