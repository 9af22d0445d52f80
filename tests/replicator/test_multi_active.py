"""MULTI_ACTIVE replication on DynamoDB Local: several regions, each with a table, a stream and a replicator."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from mesh import DELETED, PREFIX, build_mesh
from rep_helpers import json_lines

EAST, WEST, SYDNEY = "us-east-1", "eu-west-1", "ap-southeast-2"


@pytest.fixture
def mesh(ddb_local, make_processor):
    return build_mesh(ddb_local, make_processor, [EAST, WEST, SYDNEY])


def put(mesh, region: str, pk: str, ts: int | str | None, **attrs: Any) -> None:
    item: dict[str, Any] = {"pk": {"S": pk}, **{k: v for k, v in attrs.items()}}
    if ts is not None:
        item["updatedAt"] = {"N": str(ts)}
    mesh.write(region).put_item(TableName=mesh.name(region), Item=item)


def get(mesh, region: str, pk: str) -> dict[str, Any] | None:
    return mesh.write(region).get_item(TableName=mesh.name(region), Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")


def delete(mesh, region: str, pk: str) -> None:
    mesh.write(region).delete_item(TableName=mesh.name(region), Key={"pk": {"S": pk}})


def test_local_writes_reach_every_region(mesh):
    put(mesh, EAST, "a", 100, v={"S": "east"}, b={"B": b"\x00\x01"}, n={"N": "12345678901234567890123456789012345678"})
    put(mesh, WEST, "b", 100, v={"S": "west"}, empty={"M": {}})
    mesh.pump()
    live = mesh.assert_converged()
    assert {i["pk"]["S"] for i in live} == {"a", "b"}
    replicated = get(mesh, SYDNEY, "a")
    assert replicated[PREFIX + "origin"] == {"S": EAST}
    assert replicated["n"] == {"N": "12345678901234567890123456789012345678"}


def test_concurrent_writes_converge_to_the_latest(mesh):
    put(mesh, EAST, "k", 200, v={"S": "east-newer"})
    put(mesh, WEST, "k", 100, v={"S": "west-older"})
    put(mesh, SYDNEY, "k", 150, v={"S": "sydney-middle"})
    mesh.pump()
    live = mesh.assert_converged()
    assert [i["v"]["S"] for i in live] == ["east-newer"]


def test_ties_are_broken_by_origin_region_everywhere(mesh):
    put(mesh, EAST, "k", 100, v={"S": "from-east"})
    put(mesh, WEST, "k", 100, v={"S": "from-west"})
    mesh.pump()
    live = mesh.assert_converged()
    assert [i["v"]["S"] for i in live] == ["from-east"]  # "us-east-1" > "eu-west-1"


def test_replicated_writes_are_not_sent_back(mesh):
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump(only=EAST)
    east_before = mesh.tables[EAST].items()
    assert mesh.tables[EAST].new_records() == []
    for region in (WEST, SYDNEY):
        echoes = mesh.tables[region].new_records()
        assert [r["eventName"] for r in echoes] == ["INSERT"]
        wrote: list[str] = []
        for target in mesh.processors[region].config.targets:
            client = mesh.processors[region].clients.for_table(target)
            client.meta.events.register("before-call.dynamodb.*", lambda model, **_: wrote.append(model.name))
        assert mesh.deliver(region, echoes) == {"batchItemFailures": []}
        assert wrote == []  # not a single request: the echo is recognised from its images
    assert mesh.tables[EAST].items() == east_before
    assert all(mesh.tables[r].new_records() == [] for r in (EAST, WEST, SYDNEY))


def test_application_update_of_a_replicated_item_is_sent(mesh):
    put(mesh, EAST, "k", 100, v={"S": "x"}, keep={"S": "same"})
    mesh.pump()
    mesh.write(WEST).update_item(
        TableName=mesh.name(WEST),
        Key={"pk": {"S": "k"}},
        UpdateExpression="SET v = :v, updatedAt = :t",
        ExpressionAttributeValues={":v": {"S": "updated-in-west"}, ":t": {"N": "200"}},
    )
    mesh.pump()
    live = mesh.assert_converged()
    assert live[0]["v"] == {"S": "updated-in-west"} and live[0]["keep"] == {"S": "same"}


def test_read_modify_write_that_copies_metadata_back_is_sent(mesh):
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    item = get(mesh, SYDNEY, "k")
    assert PREFIX + "marker" in item
    changed = copy.deepcopy(item)
    changed["v"] = {"S": "changed-in-sydney"}
    changed["updatedAt"] = {"N": "300"}
    mesh.write(SYDNEY).put_item(TableName=mesh.name(SYDNEY), Item=changed)
    mesh.pump()
    live = mesh.assert_converged()
    assert live[0]["v"] == {"S": "changed-in-sydney"}


def test_an_update_that_restores_earlier_content_is_still_sent(mesh):
    """The marker matches the content again, but this write did not set it: it is an application write."""
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    for value in ("y", "x"):
        mesh.write(WEST).update_item(
            TableName=mesh.name(WEST),
            Key={"pk": {"S": "k"}},
            UpdateExpression="SET v = :v",
            ExpressionAttributeValues={":v": {"S": value}},
        )
    # Same conflict value as the original (100) on purpose: the tie is decided by origin region, and the
    # east write wins it, so every region must end with east's content, including the west table.
    mesh.pump()
    live = mesh.assert_converged()
    assert live[0]["v"] == {"S": "x"}


def test_a_newer_delete_beats_a_late_older_write(mesh):
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    delete(mesh, EAST, "k")          # deletes version 100
    put(mesh, WEST, "k", 90, v={"S": "late and older"})  # concurrent, older
    mesh.pump()
    mesh.assert_converged()
    assert mesh.live(EAST) == []
    assert [t["updatedAt"] for t in mesh.tombstones(EAST)] == [{"N": "100"}]


def test_a_late_redelivered_write_does_not_resurrect_a_delete(mesh):
    put(mesh, EAST, "k", 100, v={"S": "x"})
    first = mesh.tables[EAST].new_records()
    mesh.deliver(EAST, first)
    mesh.pump()
    delete(mesh, EAST, "k")
    mesh.pump()
    assert mesh.deliver(EAST, first) == {"batchItemFailures": []}  # at-least-once: the old batch again
    mesh.pump()
    mesh.assert_converged()
    assert all(mesh.live(r) == [] for r in mesh.tables)


def test_a_newer_write_beats_an_older_delete(mesh):
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    delete(mesh, EAST, "k")  # deletes version 100
    put(mesh, WEST, "k", 150, v={"S": "newer"})
    mesh.pump()
    live = mesh.assert_converged()
    assert [i["v"]["S"] for i in live] == ["newer"]
    item = get(mesh, EAST, "k")
    assert DELETED not in item and PREFIX + "expiresAt" not in item


def test_tombstones_expire_and_carry_the_delete_version(mesh):
    put(mesh, EAST, "k", 100)
    mesh.pump()
    delete(mesh, EAST, "k")
    mesh.pump()
    for region in mesh.tables:
        tombstone = get(mesh, region, "k")
        assert tombstone[DELETED] == {"BOOL": True}
        assert tombstone["updatedAt"] == {"N": "100"}
        assert tombstone[PREFIX + "origin"] == {"S": EAST}
        assert int(tombstone[PREFIX + "expiresAt"]["N"]) > 0
        assert set(tombstone) == {"pk", "updatedAt", DELETED, PREFIX + "origin", PREFIX + "marker", PREFIX + "expiresAt"}


def test_tombstones_written_are_counted_in_the_emf_totals(mesh, capsys):
    """The dashboard's tombstone widget reads TombstonesWritten (issue 12): one per copy the delete reached."""
    put(mesh, EAST, "k", 100)
    mesh.pump()
    capsys.readouterr()
    delete(mesh, EAST, "k")
    mesh.pump()
    totals = [l for l in json_lines(capsys.readouterr().out) if "RecordsReceived" in l]
    assert sum(l.get("TombstonesWritten", 0) for l in totals) == len(mesh.tables)


def test_application_write_onto_a_tombstone_revives_the_item_everywhere(mesh):
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    delete(mesh, EAST, "k")
    mesh.pump()
    mesh.write(WEST).update_item(
        TableName=mesh.name(WEST),
        Key={"pk": {"S": "k"}},
        UpdateExpression="SET v = :v, updatedAt = :t",
        ExpressionAttributeValues={":v": {"S": "revived"}, ":t": {"N": "500"}},
    )
    mesh.pump()
    live = mesh.assert_converged()
    assert [i["v"]["S"] for i in live] == ["revived"]
    west = get(mesh, WEST, "k")  # the delete flag and expiry the update kept have been removed
    assert DELETED not in west and PREFIX + "expiresAt" not in west


def test_a_local_write_older_than_the_item_it_replaced_loses_in_its_own_region_too(mesh, capsys):
    put(mesh, EAST, "k", 200, v={"S": "newest"})
    mesh.pump()
    put(mesh, WEST, "k", 100, v={"S": "stale clock"})  # replaces a newer item: it lost
    capsys.readouterr()
    mesh.pump()
    live = mesh.assert_converged()
    assert [i["v"]["S"] for i in live] == ["newest"]
    warnings = [l for l in json_lines(capsys.readouterr().out) if l.get("level") == "WARNING"]
    assert warnings and warnings[0]["lost"]["version"] == "100" and warnings[0]["winner"]["version"] == "200"


def test_missing_conflict_attribute_is_reported_not_sent(mesh, capsys):
    put(mesh, EAST, "good-1", 100)
    put(mesh, EAST, "bad", None, v={"S": "no timestamp"})
    put(mesh, EAST, "good-2", 100)
    put(mesh, EAST, "bad", 300, v={"S": "fixed later"})
    records = mesh.tables[EAST].new_records()
    capsys.readouterr()
    result = mesh.deliver(EAST, records)
    assert result == {"batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
    lines = json_lines(capsys.readouterr().out)
    errors = [l for l in lines if l.get("level") == "ERROR"]
    assert [(e["errorCode"], e["key"], e["recordsHeldBack"]) for e in errors] == [
        ("MissingConflictAttribute", {"pk": {"S": "bad"}}, 2)
    ]
    per_code = [l for l in lines if l.get("ErrorCode") == "MissingConflictAttribute"]
    assert per_code and per_code[0]["WriteFailures"] == 1
    assert {i["pk"]["S"] for i in mesh.live(WEST)} == {"good-1", "good-2"}  # the rest went on
    assert get(mesh, WEST, "bad") is None  # and the later, valid write of that item waits its turn


def test_item_too_large_with_metadata_is_reported(mesh, capsys):
    # 409,590 bytes of user data fit DynamoDB's 400 KB limit; the replicator's metadata would not.
    put(mesh, EAST, "big", 100, blob={"S": "x" * 409_570})
    put(mesh, EAST, "small", 100)
    records = mesh.tables[EAST].new_records()
    capsys.readouterr()
    result = mesh.deliver(EAST, records)
    assert result == {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
    errors = [l for l in json_lines(capsys.readouterr().out) if l.get("level") == "ERROR"]
    assert [(e["errorCode"], e["key"]["pk"]["S"]) for e in errors] == [("ItemTooLarge", "big")]
    assert [i["pk"]["S"] for i in mesh.live(WEST)] == ["small"]


def test_string_conflict_attribute_is_rejected(mesh):
    put(mesh, EAST, "k", None, updatedAt={"S": "2024-01-01T00:00:00Z"})
    records = mesh.tables[EAST].new_records()
    assert mesh.deliver(EAST, records)["batchItemFailures"]


def test_ttl_deletes_are_versioned_deletes_by_default(mesh):
    # Skipped TTL deletes let the copies diverge (issue 10, defect 5): an expiry is replicated as a delete of
    # the expired version, with a tombstone in every region, the expiring one included.
    put(mesh, EAST, "k", 100)
    mesh.pump()
    delete(mesh, EAST, "k")
    records = mesh.tables[EAST].new_records()
    assert [r["eventName"] for r in records] == ["REMOVE"]
    records[0]["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert mesh.deliver(EAST, records) == {"batchItemFailures": []}
    mesh.pump()
    mesh.assert_converged()
    for region in mesh.tables:
        tombstone = get(mesh, region, "k")
        assert tombstone[DELETED] == {"BOOL": True} and tombstone["updatedAt"] == {"N": "100"}
    # Every copy of one delete's tombstone expires at the same instant: the delete's time + the lifetime.
    assert len({get(mesh, r, "k")[PREFIX + "expiresAt"]["N"] for r in mesh.tables}) == 1
    deleted_at = records[0]["dynamodb"]["ApproximateCreationDateTime"]
    # Logically at the delete's time + the lifetime (in the marker); DynamoDB's TTL a lifetime after that.
    tombstone = get(mesh, WEST, "k")
    assert int(tombstone[PREFIX + "marker"]["S"].split(".")[5]) == int(deleted_at) + 2 * 24 * 3600
    assert int(tombstone[PREFIX + "expiresAt"]["N"]) == int(deleted_at) + 2 * 2 * 24 * 3600


def test_a_ttl_delete_of_an_item_without_a_conflict_value_is_not_replicated(mesh, capsys):
    mesh.write(EAST).put_item(TableName=mesh.name(EAST), Item={"pk": {"S": "legacy"}, "v": {"S": "no version"}})
    mesh.tables[EAST].new_records()  # its write was reported when it was made (not under test here)
    delete(mesh, EAST, "legacy")
    records = mesh.tables[EAST].new_records()
    records[0]["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    capsys.readouterr()
    assert mesh.deliver(EAST, records) == {"batchItemFailures": []}  # nothing to version: not held back
    warnings = [l for l in json_lines(capsys.readouterr().out) if l.get("level") == "WARNING"]
    assert [(w["key"], w["reason"]) for w in warnings] == [({"pk": {"S": "legacy"}}, "MissingConflictAttribute")]
    assert get(mesh, EAST, "legacy") is None and get(mesh, WEST, "legacy") is None


def test_duplicate_delivery_counts_already_applied(mesh, capsys):
    put(mesh, EAST, "k", 100)
    records = mesh.tables[EAST].new_records()
    mesh.deliver(EAST, records)
    capsys.readouterr()
    assert mesh.deliver(EAST, records) == {"batchItemFailures": []}
    conflicts = [l for l in json_lines(capsys.readouterr().out) if l.get("Kind") == "AlreadyApplied"]
    assert conflicts and conflicts[0]["Conflicts"] == 2


def test_throttled_conditional_writes_are_retried(mesh):
    from botocore.awsrequest import AWSResponse

    calls = [0]

    def throttle(**_: Any) -> Any:
        calls[0] += 1
        if calls[0] <= 3:
            error = {"Code": "ThrottlingException", "Message": "injected"}
            return AWSResponse("http://injected", 400, {}, None), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    east = mesh.processors[EAST]
    west_target = next(t for t in east.config.targets if t.region == WEST)
    east.clients.for_table(west_target).meta.events.register("before-call.dynamodb.PutItem", throttle)
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    mesh.assert_converged()
    assert calls[0] == 4


def test_deleting_a_lost_write_puts_the_winner_back(mesh):
    put(mesh, EAST, "k", 500, v={"S": "winner"})
    mesh.pump()
    put(mesh, WEST, "k", 300, v={"S": "stale"})  # loses to 500 ...
    delete(mesh, WEST, "k")  # ... so deleting it (a delete of version 300) loses too
    mesh.pump()
    live = mesh.assert_converged()
    assert [(i["v"]["S"], i["updatedAt"]["N"]) for i in live] == [("winner", "500")]


# --- TTL expiry (issue 10, defect 5) -------------------------------------------------------------------------
# DynamoDB Local does not run TTL deletions, so they are simulated as DynamoDB does them: the item is deleted
# and its REMOVE record names the TTL service as the user identity.

TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


@pytest.fixture
def ttl_mesh(ddb_local, make_processor):
    """A mesh whose tables expire items through the application's own TTL attribute ``expiresAt``, which the
    replicator also uses for its tombstones (REPLICATION_TTL_ATTRIBUTE, as the construct writes it when the
    table has a TTL attribute of the user's)."""
    return build_mesh(ddb_local, make_processor, [EAST, WEST, SYDNEY], REPLICATION_TTL_ATTRIBUTE="expiresAt")


def expire(mesh, region: str, pk: str) -> None:
    """DynamoDB's TTL process removes ``pk`` from ``region`` (only if the item there has expired), and that
    region's replicator receives the stream records written since its last delivery."""
    item = get(mesh, region, pk)
    if item is not None and "expiresAt" in item and int(item["expiresAt"]["N"]) < time.time():
        delete(mesh, region, pk)
    records = mesh.tables[region].new_records()
    for record in records:
        if record["eventName"] == "REMOVE" and record["dynamodb"]["Keys"]["pk"] == {"S": pk}:
            record["userIdentity"] = dict(TTL_IDENTITY)
    if records:
        assert mesh.deliver(region, records) == {"batchItemFailures": []}


def test_a_lower_versioned_re_create_after_ttl_expiry_converges(ttl_mesh):
    """The issue's case: every region holds v10, expired; us-east-1's TTL removes it first and the
    application re-creates the item there with v1 (with the VERSION strategy it cannot know v10). Before the
    fix us-east-1 kept v1 for good while the others refused it and then expired v10: the copies never agreed."""
    mesh = ttl_mesh
    past = int(time.time()) - 3600
    put(mesh, EAST, "k", 10, v={"S": "old"}, expiresAt={"N": str(past)})
    mesh.pump()
    expire(mesh, EAST, "k")
    put(mesh, EAST, "k", 1, v={"S": "re-created"})
    mesh.pump()
    for region in (WEST, SYDNEY):
        expire(mesh, region, "k")
    mesh.pump()
    mesh.assert_converged()
    # The expiry is a delete of version 10 (as Global Tables replicates TTL deletes): the re-create at a lower
    # version loses to it everywhere, exactly like a re-create after an application delete.
    assert all(mesh.live(r) == [] for r in mesh.tables)
    assert [t["updatedAt"] for t in mesh.tombstones(WEST)] == [{"N": "10"}]


def test_a_late_older_write_does_not_resurrect_an_expired_item(ttl_mesh):
    """A write made before the expiry, with a lower version, that reaches other regions only after their TTL
    removed the item must lose there as it lost where the item was still present."""
    mesh = ttl_mesh
    past = int(time.time()) - 3600
    put(mesh, SYDNEY, "k", 5, v={"S": "older, concurrent"})
    late = mesh.tables[SYDNEY].new_records()  # ap-southeast-2's replicator lags: v5 is not sent yet
    put(mesh, EAST, "k", 10, v={"S": "newer"}, expiresAt={"N": str(past)})
    mesh.pump(only=EAST)  # v10 everywhere (it beats v5 in ap-southeast-2)
    expire(mesh, EAST, "k")
    expire(mesh, WEST, "k")
    assert mesh.deliver(SYDNEY, late) == {"batchItemFailures": []}  # v5 finally sent
    mesh.pump()
    expire(mesh, SYDNEY, "k")
    mesh.pump()
    mesh.assert_converged()
    assert all(mesh.live(r) == [] for r in mesh.tables)


# --- Verbatim restores (issue 10, defect 6) ------------------------------------------------------------------
# A backup copies items with our metadata; restoring one writes a marker that matches its content. Only a
# marker the replicator wrote moments before the record can be its own write coming back.

THREE_DAYS = 3 * 24 * 3600


def backup_of(mesh, region: str, pk: str, age_seconds: int = THREE_DAYS) -> dict[str, Any]:
    """The item as a backup taken ``age_seconds`` after the replicator wrote it would hold it: the same
    attributes, whose marker says it was written that long before now (``<digest>.<sequence>.<token>.<time>``,
    see replicator.metadata)."""
    item = copy.deepcopy(get(mesh, region, pk))
    parts = item[PREFIX + "marker"]["S"].split(".")
    written = int(parts[3]) if len(parts) == 4 else int(time.time())
    item[PREFIX + "marker"] = {"S": ".".join([*parts[:3], str(written - age_seconds), *parts[4:]])}
    return item


def remove_tombstones_by_ttl(mesh, pk: str) -> None:
    """DynamoDB's TTL removes the (expired) tombstones of ``pk`` in every region."""
    for region in mesh.tables:
        assert DELETED in get(mesh, region, pk)
        delete(mesh, region, pk)
        records = mesh.tables[region].new_records()
        for record in records:
            record["userIdentity"] = dict(TTL_IDENTITY)
        assert mesh.deliver(region, records) == {"batchItemFailures": []}


def test_a_verbatim_restore_after_the_tombstone_expired_is_replicated(mesh):
    """Before the fix the restored item's marker matched its content, so its INSERT was taken for the
    replicator's own write and never left eu-west-1."""
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    backup = backup_of(mesh, WEST, "k")  # with its _rep_ attributes
    delete(mesh, EAST, "k")
    mesh.pump()
    remove_tombstones_by_ttl(mesh, "k")
    mesh.write(WEST).put_item(TableName=mesh.name(WEST), Item=backup)
    mesh.pump()
    live = mesh.assert_converged()
    assert [(i["v"]["S"], i["updatedAt"]["N"]) for i in live] == [("x", "100")]
    # The restore brings back the backed-up state itself, whose metadata every copy now carries: it orders
    # the same way everywhere, eu-west-1's restored item included.
    assert {get(mesh, r, "k")[PREFIX + "origin"]["S"] for r in mesh.tables} == {EAST}
    assert get(mesh, WEST, "k") == backup


def test_a_verbatim_restore_over_a_live_tombstone_loses_to_the_delete_everywhere(mesh):
    """The neighbouring case: restored over the tombstone of its own delete (old image with another marker),
    it is an application write of version 100, which the delete of version 100 beats (rule 5). Before the
    fix it was taken for an echo: eu-west-1 kept the item, the others the tombstone."""
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    backup = backup_of(mesh, WEST, "k")
    delete(mesh, EAST, "k")
    mesh.pump()
    mesh.write(WEST).put_item(TableName=mesh.name(WEST), Item=backup)
    mesh.pump()
    mesh.assert_converged()
    assert all(mesh.live(r) == [] for r in mesh.tables)


def test_a_verbatim_restore_over_a_newer_item_loses_everywhere(mesh):
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    backup = backup_of(mesh, WEST, "k")
    put(mesh, SYDNEY, "k", 200, v={"S": "newer"})
    mesh.pump()
    mesh.write(WEST).put_item(TableName=mesh.name(WEST), Item=backup)
    mesh.pump()
    live = mesh.assert_converged()
    assert [i["v"]["S"] for i in live] == ["newer"]


def test_a_verbatim_restore_over_an_older_live_item_wins_everywhere(mesh):
    """The neighbouring case that diverged: the item was deleted and, once its tombstones expired, created
    again at a lower version; the restore (version 100, old image with another marker) beats it, and before
    the fix was taken for an echo that won only in eu-west-1."""
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    backup = backup_of(mesh, WEST, "k")
    delete(mesh, EAST, "k")
    mesh.pump()
    remove_tombstones_by_ttl(mesh, "k")
    put(mesh, SYDNEY, "k", 10, v={"S": "created again"})
    mesh.pump()
    mesh.write(WEST).put_item(TableName=mesh.name(WEST), Item=backup)
    mesh.pump()
    live = mesh.assert_converged()
    assert [(i["v"]["S"], i["updatedAt"]["N"]) for i in live] == [("x", "100")]


def test_a_restored_tombstone_is_a_delete_not_a_live_item(mesh):
    """A whole-table restore brings tombstones back too: each stands for the delete it recorded."""
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    delete(mesh, EAST, "k")
    mesh.pump()
    backup = backup_of(mesh, WEST, "k")
    assert DELETED in backup
    remove_tombstones_by_ttl(mesh, "k")
    put(mesh, SYDNEY, "k", 50, v={"S": "older write, after the tombstones expired"})
    mesh.pump()
    mesh.write(WEST).put_item(TableName=mesh.name(WEST), Item=backup)
    mesh.pump()
    mesh.assert_converged()
    assert all(mesh.live(r) == [] for r in mesh.tables)


# --- Stamped writes that are neither echoes nor restores (review of issue 10, finding 3) --------------------


def update(mesh, region: str, pk: str, expression: str, **values: Any) -> None:
    mesh.write(region).update_item(
        TableName=mesh.name(region),
        Key={"pk": {"S": pk}},
        UpdateExpression=expression,
        ExpressionAttributeValues={f":{k}": v for k, v in values.items()},
    )


def test_a_later_write_back_to_the_stamped_content_is_an_ordinary_write(mesh):
    """An UpdateItem that sets an item back to the content its (fresh) marker was computed for is stamped but
    neither an echo nor a restore: it is sent as an ordinary write of its region. Taken for a restore, it
    carried the stale marker's state (eu-west-1's "one"), which loses the tie to us-east-1's "two", so the
    later write was reverted everywhere, its own region included."""
    put(mesh, WEST, "k", 5, v={"S": "one"})
    mesh.pump()
    update(mesh, EAST, "k", "SET v = :v", v={"S": "two"})  # same version: us-east-1 wins the tie everywhere
    mesh.pump()
    assert [i["v"]["S"] for i in mesh.assert_converged()] == ["two"]
    update(mesh, EAST, "k", "SET v = :v", v={"S": "one"})  # later, same region: matches the old marker
    mesh.pump()
    assert [i["v"]["S"] for i in mesh.assert_converged()] == ["one"]


def test_an_update_of_a_tombstones_ttl_attribute_is_an_ordinary_write(ttl_mesh):
    """An application's UpdateItem of its own TTL attribute on a tombstone keeps the marker matching. It is a
    write of the tombstone's version, which the delete beats: the tombstone is put back as it was everywhere,
    not restamped with a fresh expiry in that region only."""
    mesh = ttl_mesh
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    delete(mesh, EAST, "k")
    mesh.pump()
    expiry = get(mesh, WEST, "k")["expiresAt"]
    update(mesh, WEST, "k", "SET expiresAt = :e", e={"N": str(int(expiry["N"]) + 7 * 24 * 3600)})
    mesh.pump()
    mesh.assert_converged()
    assert {get(mesh, r, "k")["expiresAt"]["N"] for r in mesh.tables} == {expiry["N"]}


# --- Tombstones removed by each region's TTL at its own time (review of issue 10, findings 1 and 2) ------------
# A tombstone expires logically at its delete's time + the tombstone lifetime, the same instant in every copy;
# DynamoDB's TTL may remove it only a lifetime after that. The tests play the days that pass by moving the time
# of the stream records written after the expiry (the writes' own times, which travel in their markers).

LATER = 3 * 24 * 3600  # past the logical expiry of a tombstone written now (default lifetime: 2 days)


def deliver_later(mesh, region: str, seconds: int = LATER) -> None:
    """Deliver ``region``'s new records as if they had been written ``seconds`` later; every REMOVE of a
    tombstone among them is DynamoDB's TTL at work."""
    records = mesh.tables[region].new_records()
    for record in records:
        record["dynamodb"]["ApproximateCreationDateTime"] += seconds
        if record["eventName"] == "REMOVE" and DELETED in record["dynamodb"].get("OldImage", {}):
            record["userIdentity"] = dict(TTL_IDENTITY)
    assert mesh.deliver(region, records) == {"batchItemFailures": []}


def remove_tombstone_later(mesh, region: str, pk: str) -> None:
    """``region``'s TTL removes its tombstone of ``pk``, if it still holds one, days after the delete."""
    item = get(mesh, region, pk)
    if item is not None and DELETED in item:
        delete(mesh, region, pk)
    deliver_later(mesh, region)


def test_a_write_after_the_tombstones_expiry_is_kept_whichever_region_removed_it_first(mesh):
    """The reviewer's case: us-east-1's TTL removes the tombstone of v10 days before the others', and the item
    is created again there at v1. Before the fix us-east-1 kept v1 for good while the others, which still held
    the tombstone, refused it and then removed the tombstone: the copies never agreed again."""
    put(mesh, EAST, "k", 10, v={"S": "old"})
    mesh.pump()
    delete(mesh, EAST, "k")
    mesh.pump()
    assert all(DELETED in get(mesh, r, "k") for r in mesh.tables)
    delete(mesh, EAST, "k")  # us-east-1's TTL removes its tombstone ...
    put(mesh, EAST, "k", 1, v={"S": "created again"})  # ... and the application writes k there
    deliver_later(mesh, EAST)
    mesh.pump()
    for region in (WEST, SYDNEY):
        remove_tombstone_later(mesh, region, "k")
    mesh.pump()
    live = mesh.assert_converged()
    assert [(i["v"]["S"], i["updatedAt"]["N"]) for i in live] == [("created again", "1")]


def test_a_write_after_the_expiry_beats_a_tombstone_still_held_everywhere(mesh):
    """The same write made in a region whose tombstone is still there (its TTL has not run yet) is kept too:
    every region decides from the tombstone's expiry and the write's time, not from what its TTL did."""
    put(mesh, EAST, "k", 10, v={"S": "old"})
    mesh.pump()
    delete(mesh, EAST, "k")
    mesh.pump()
    put(mesh, WEST, "k", 1, v={"S": "created again"})
    deliver_later(mesh, WEST)
    mesh.pump()
    live = mesh.assert_converged()
    assert [(i["v"]["S"], i["updatedAt"]["N"]) for i in live] == [("created again", "1")]
    assert all(DELETED not in get(mesh, r, "k") for r in mesh.tables)


def test_a_restore_after_one_regions_tombstone_expired_converges(mesh):
    """Finding 2 (defect 6 in the same window): eu-west-1's TTL removes its tombstone first and a backup of
    the item is restored there. Before the fix the other regions' tombstones beat the restore (same version; a
    delete wins) and were then removed: eu-west-1 kept the item, the others nothing."""
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    backup = backup_of(mesh, WEST, "k")
    delete(mesh, EAST, "k")
    mesh.pump()
    delete(mesh, WEST, "k")  # eu-west-1's TTL removes its tombstone ...
    mesh.write(WEST).put_item(TableName=mesh.name(WEST), Item=backup)  # ... and the backup is restored there
    deliver_later(mesh, WEST)
    mesh.pump()
    for region in (EAST, SYDNEY):
        remove_tombstone_later(mesh, region, "k")
    mesh.pump()
    live = mesh.assert_converged()
    assert [(i["v"]["S"], i["updatedAt"]["N"]) for i in live] == [("x", "100")]


def test_a_write_made_before_the_expiry_still_loses_to_the_tombstone(mesh):
    """The other side of the rule: a lower write made before the expiry, delivered late, loses everywhere
    (DynamoDB's TTL removes no copy of the tombstone until a lifetime after the expiry)."""
    put(mesh, EAST, "k", 10, v={"S": "old"})
    mesh.pump()
    delete(mesh, EAST, "k")
    mesh.pump()
    put(mesh, SYDNEY, "k", 1, v={"S": "before the expiry"})
    mesh.pump()
    mesh.assert_converged()
    assert all(mesh.live(r) == [] for r in mesh.tables)
    tombstone = get(mesh, WEST, "k")
    marker = tombstone[PREFIX + "marker"]["S"].split(".")
    deleted_at, expires = int(marker[4]), int(marker[5])
    assert expires == deleted_at + 2 * 24 * 3600  # the logical expiry: the delete's time + the lifetime
    assert int(tombstone[PREFIX + "expiresAt"]["N"]) == expires + 2 * 24 * 3600  # TTL: a lifetime later


def test_an_update_of_a_restored_item_is_an_ordinary_write_of_its_region(mesh):
    """After a restore, the item keeps the backup's old marker; an application UpdateItem that changes a user
    attribute breaks the marker's match and is a write of that region like any other (found by the chaos
    suite: the restore branch once tested only the marker's age, and sent such a write with no origin)."""
    put(mesh, EAST, "k", 100, v={"S": "x"})
    mesh.pump()
    backup = backup_of(mesh, WEST, "k")
    mesh.write(WEST).put_item(TableName=mesh.name(WEST), Item=backup)
    mesh.pump()
    update(mesh, WEST, "k", "SET v = :v, updatedAt = :t", v={"S": "changed"}, t={"N": "101"})
    mesh.pump()
    live = mesh.assert_converged()
    assert [(i["v"]["S"], i["updatedAt"]["N"]) for i in live] == [("changed", "101")]
    assert {get(mesh, r, "k")[PREFIX + "origin"]["S"] for r in (EAST, SYDNEY)} == {WEST}
