"""The first condition of a multi-active write decides exactly as :func:`compare` (issue 17: one round trip
for a delete that reaches a replica holding the deleted item at the same conflict value).

Every combination of a stored state (absent, application items, stamped items and tombstones of two origins,
lower, equal and higher values, an item written after a restored tombstone's expiry) and an incoming state
(items and tombstones of two origins, with a future, no or a past logical expiry) is written with
``put_if_newer`` to DynamoDB Local: the table must then hold what :func:`compare` says wins, and a tombstone
over the same value's item must have cost one request.
"""

from __future__ import annotations

import decimal
import itertools
import json
import time
from typing import Any

import pytest

from replicator import metadata
from replicator.clients import ClientFactory
from replicator.conditional_writer import first_condition, put_if_newer
from replicator.config import TableRef, load_config
from replicator.metadata import LATEST, MetadataCodec, State, compare
from replicator.operations import PutIfNewer
from replicator.retry import Deadline

from rep_helpers import create_table

REGION = "eu-west-1"  # the replica's region: unstamped items there originate here
A, B = "ap-southeast-2", "us-east-1"
NOW = int(time.time())
LIFETIME = 2 * 86400


def _codec(table: str) -> MetadataCodec:
    return MetadataCodec(load_config({
        "REPLICATION_MODE": "MULTI_ACTIVE",
        "REPLICATION_SOURCE": json.dumps({"tableName": table, "region": B, "account": "111111111111"}),
        "REPLICATION_TARGETS": json.dumps([{"tableName": table, "region": REGION, "account": "111111111111"}]),
        "REPLICATION_KEY": json.dumps({"partitionKey": "pk", "sortKey": None}),
        "REPLICATION_TOMBSTONE_TTL_SECONDS": str(LIFETIME),
    }))


def _user(version: int, deleted: bool, text: str = "same", pk: str = "k") -> dict[str, Any]:
    user = {"pk": {"S": pk}, "updatedAt": {"N": str(version)}}
    return user if deleted else {**user, "v": {"S": text}}


def _item(version: int, origin: str, seq: int = 5, written: int = NOW - 100, text: str = "same", pk: str = "k") -> State:
    return State(_user(version, False, text, pk), decimal.Decimal(version), False, origin, seq, written=written)


def _tombstone(version: int, origin: str, expires: int | None, seq: int = 5, written: int = NOW - 100,
               pk: str = "k") -> State:
    return State(_user(version, True, pk=pk), decimal.Decimal(version), True, origin, seq, expires, written)


def _stored(codec: MetadataCodec, pk: str = "k") -> list[tuple[str, dict[str, Any] | None]]:
    """(label, item as stored under key ``pk``) for every stored state; the stamped ones carry markers that
    match their content (with that key), so that they are read back as the states they were written for."""
    out: list[tuple[str, dict[str, Any] | None]] = [("absent", None)]
    for v in (1, 2, 3):
        out.append((f"app item {v}", _user(v, False, pk=pk)))
    out.append(("app item 2 on a tombstone", {**_user(2, False, pk=pk), codec.deleted_attr: {"BOOL": True}}))
    for v, origin in itertools.product((1, 2, 3), (A, B)):
        out.append((f"item {v} {origin}", codec.stamp(_item(v, origin, pk=pk), now=NOW - 90)))
        out.append((f"tombstone {v} {origin}",
                    codec.stamp(_tombstone(v, origin, NOW + LIFETIME, pk=pk), now=NOW - 90)))
    out.append(("item 2 other content", codec.stamp(_item(2, A, text="other", pk=pk), now=NOW - 90)))
    # Written after the restored tombstone's expiry (below), at a lower value: it outlives that tombstone.
    out.append(("item 1 written late", codec.stamp(_item(1, A, written=NOW - 500, pk=pk), now=NOW - 400)))
    return out


def _incoming() -> list[tuple[str, State]]:
    return [
        ("item 2 A", _item(2, A)),
        ("item 2 B", _item(2, B)),
        ("tombstone 2 A", _tombstone(2, A, NOW + LIFETIME)),
        ("tombstone 2 B", _tombstone(2, B, NOW + LIFETIME)),
        ("tombstone 2 A without expiry", _tombstone(2, A, None)),
        ("restored tombstone 2 A, expired", _tombstone(2, A, NOW - 1000, written=NOW - 10)),
    ]


@pytest.fixture
def replica(ddb_local, lambda_env):
    lambda_env(REGION)
    table = create_table(ddb_local, "first-condition", REGION, stream=False)
    return table, TableRef(table.name, REGION, "111111111111")


def test_the_first_write_decides_as_compare_does(replica):
    table, ref = replica
    codec = _codec(table.name)
    client = ClientFactory(4, "s").for_table(ref)
    requests: list[str] = []
    client.meta.events.register("before-send.dynamodb.PutItem", lambda **_: requests.append("put"))
    combinations = itertools.product(range(len(_stored(codec))), _incoming())
    for n, (index, (i_label, state)) in enumerate(combinations):
        key = {"pk": {"S": f"c{n}"}}
        s_label, stored = _stored(codec, f"c{n}")[index]
        if stored is not None:
            table.client.put_item(TableName=table.name, Item=stored)
        state = State({**state.user, **key}, state.version, state.deleted, state.origin, state.sequence,
                      state.expires, state.written)
        item = codec.stamp(state)
        requests.clear()
        outcome = put_if_newer(client, ref, PutIfNewer(key, state, item), codec, Deadline(time.monotonic() + 30))
        held = table.client.get_item(TableName=table.name, Key=key, ConsistentRead=True)["Item"]
        label = f"{i_label} onto {s_label}"
        assert outcome.failure is None, label
        if stored is None:
            assert outcome.written and len(requests) == 1, label
            continue
        before = codec.state_of(stored, REGION, LATEST)
        assert codec.stamped_by_replicator(stored) != s_label.startswith("app"), label
        order = compare(before, state)
        wins = order < 0 or (order == 0 and not before.same_content(state))
        assert outcome.written == wins, label
        assert held == (item if wins else stored), label
        if state.deleted and state.expires == NOW + LIFETIME and (s_label == "app item 2" or s_label.startswith("item 2")):
            assert len(requests) == 1, f"{label}: {len(requests)} requests"


def test_a_tombstone_expiring_soon_is_decided_from_the_stored_item(replica):
    codec = _codec(replica[1].table_name)
    soon = _tombstone(2, A, NOW + 60)
    assert first_condition(codec, soon, now=NOW)[0] == "attribute_not_exists(#k)"
    assert "attribute_not_exists(#d)" in first_condition(codec, _tombstone(2, A, NOW + LIFETIME), now=NOW)[0]
    assert "#d" not in first_condition(codec, _item(2, A), now=NOW)[1]
    assert metadata.clock() >= NOW
