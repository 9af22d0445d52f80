"""``verify --repair`` on a replica fed by a Kinesis data stream keeps the replicator's ordering guard
(issue 10 review, finding 4).

The replicator writes such a replica with ``attribute_not_exists(<prefix>changedAt) OR <prefix>changedAt <
:t``. A repair that deletes plainly, or writes an item without a change time, lets a late duplicate of an
older change pass that condition and bring older data back for good. The repair now writes what a settle
writes: the source's item, or a tombstone, stamped with a change time no later than its source read and
``state=settled``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .helpers import put_many, scan_all

OLD_CHANGE_US = 1_700_000_000_000_001  # a change the replicator applied long ago
#: The replicator's condition for a change record (lambda_src/replicator/ordered_one_way.py, PutIfLater).
LATE_WRITE = "attribute_not_exists(#t) OR #t < :t"


def late_duplicate(ddb: Any, table: str, item: dict[str, Any], change_time_us: int) -> bool:
    """Deliver a late duplicate of an old change as the replicator writes it; ``True`` if it was applied."""
    stamped = {**item, "_rep_changedAt": {"N": str(change_time_us)}, "_rep_state": {"S": "digest"}}
    try:
        ddb.put_item(TableName=table, Item=stamped, ConditionExpression=LATE_WRITE,
                     ExpressionAttributeNames={"#t": "_rep_changedAt"},
                     ExpressionAttributeValues={":t": {"N": str(change_time_us)}})
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
        return False
    return True


@pytest.fixture()
def kinesis_pair(ddb, make_table):
    """A source and a Kinesis-fed replica (TTL on ``_rep_expiresAt``) with three differences: ``gone`` was
    deleted at the source, ``new`` is missing in the replica, ``stale`` differs."""
    source, target = make_table("ksrc"), make_table("ktgt", stream=False)
    ddb.update_time_to_live(TableName=target,
                            TimeToLiveSpecification={"Enabled": True, "AttributeName": "_rep_expiresAt"})
    stamp = {"_rep_changedAt": {"N": str(OLD_CHANGE_US)}, "_rep_state": {"S": "digest"}}
    put_many(ddb, source, [{"pk": {"S": "new"}, "v": {"S": "s"}}, {"pk": {"S": "stale"}, "v": {"S": "s2"}}])
    put_many(ddb, target, [{"pk": {"S": "gone"}, "v": {"S": "t"}, **stamp},
                           {"pk": {"S": "stale"}, "v": {"S": "s1"}, **stamp}])
    return source, target


def test_a_repaired_kinesis_fed_replica_refuses_late_duplicates_of_older_changes(cli, ddb, kinesis_pair):
    source, target = kinesis_pair
    before_us = int(time.time() * 1e6)
    run = cli("verify", source, target, "--repair", "--json")
    after_us = int(time.time() * 1e6)
    assert run.code == 0, run.out
    assert run.json()["repair"]["counts"] == {"repaired": 3}

    after = scan_all(ddb, target)
    for key in ("gone", "new", "stale"):
        stamp = int(after[(key,)]["_rep_changedAt"]["N"])
        # Stamped with (at most) the time the source was read: later changes still apply over it.
        assert before_us - 5_000_000 < stamp <= after_us - 1_000_000, key
        assert after[(key,)]["_rep_state"] == {"S": "settled"}
    tombstone = after[("gone",)]
    assert tombstone["_rep_deleted"] == {"BOOL": True} and "v" not in tombstone
    assert int(tombstone["_rep_expiresAt"]["N"]) > time.time() + 24 * 3600  # expires, after the stream's records
    assert after[("new",)]["v"] == {"S": "s"} and after[("stale",)]["v"] == {"S": "s2"}

    # Late duplicates of the changes the replica had seen, and of one made before the source was read: refused.
    assert not late_duplicate(ddb, target, {"pk": {"S": "gone"}, "v": {"S": "t"}}, OLD_CHANGE_US)
    assert not late_duplicate(ddb, target, {"pk": {"S": "new"}, "v": {"S": "older"}}, OLD_CHANGE_US)
    assert not late_duplicate(ddb, target, {"pk": {"S": "stale"}, "v": {"S": "s1"}}, OLD_CHANGE_US)
    # A change made after the repair still applies.
    assert late_duplicate(ddb, target, {"pk": {"S": "stale"}, "v": {"S": "s3"}}, after_us + 1)


def test_a_replica_without_change_times_is_repaired_as_before(cli, ddb, make_table):
    """A replica fed by DynamoDB Streams carries no change times: a delete stays a plain delete (a tombstone
    there would be an item to its readers)."""
    source, target = make_table("psrc"), make_table("ptgt", stream=False)
    put_many(ddb, target, [{"pk": {"S": "gone"}, "v": {"S": "t"}}])
    put_many(ddb, source, [{"pk": {"S": "new"}, "v": {"S": "s"}}])
    assert cli("verify", source, target, "--repair").code == 0
    assert scan_all(ddb, target) == {("new",): {"pk": {"S": "new"}, "v": {"S": "s"}}}
