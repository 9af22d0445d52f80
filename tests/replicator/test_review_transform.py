"""Adversarial review of the replica transform (issue 15, rules 1, 2, 6 and 10): each test here states what the
transform must guarantee. They were marked ``xfail(strict=True)`` while the merged code did not (review r15a);
the fixes (F15a) removed the marks."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from replicator import secrets
from replicator.transform import Transform, hmac_value, with_digest

from rep_helpers import create_table, kinesis_events, replication_env
from rep_helpers import run_batch as run

SOURCE_REGION, REPLICA_REGION = "us-east-1", "eu-west-1"
KEY = b"review-hmac-key"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:111111111111:secret:review-hmac-AbCdEf"


@pytest.fixture(autouse=True)
def hmac_key(monkeypatch) -> None:
    """The secret's value, as Secrets Manager would return it."""
    monkeypatch.setattr(secrets, "_boto3_key_loader", lambda: (lambda arn: KEY if arn == SECRET_ARN else b""))


def active_only(**fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"version": 1, "filter": {"op": "eq", "attr": "status", "value": {"S": "active"}},
                            "keep": None, "drop": None, "masks": {"email": {"kind": "hmac"}},
                            "secretArn": SECRET_ARN}
    spec.update(fields)
    return with_digest(spec)


def tie_copies(ddb_local, make_processor, prefix: str, spec: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """A Kinesis-fed source, an exact copy (the control) and a copy with ``spec``: (source, exact, transformed,
    processor)."""
    source = create_table(ddb_local, f"{prefix}src", SOURCE_REGION)
    exact = create_table(ddb_local, f"{prefix}exact", REPLICA_REGION, stream=False)
    transformed = create_table(ddb_local, f"{prefix}tf", REPLICA_REGION, stream=False)
    processor = make_processor(replication_env(source, [exact.ref(), {**transformed.ref(), "transform": spec}],
                                               REPLICATION_CHANGE_SOURCE="KINESIS"), SOURCE_REGION)
    return source, exact, transformed, processor


def deliver_tie(processor: Any, source: Any) -> None:
    """The source's four records -- a first write, then three changes within one millisecond (in the past, so
    a settle need not wait for the tick to close) -- in the batches [1st], [2nd], [3rd], [4th, 2nd again]:
    out of order and duplicated, as Kinesis may deliver them."""
    t = int(time.time() * 1000) - 10_000
    first, second, third, fourth = kinesis_events(source, source.new_records(), times=[t - 5, t, t, t])
    for batch in ([first], [second], [third], [fourth, second]):
        assert run(processor, batch) == {"batchItemFailures": []}


def user_view(table: Any) -> list[dict[str, Any]]:
    """The items an application sees: tombstones left out, metadata stripped."""
    return [{k: v for k, v in i.items() if not k.startswith("_rep_")} for i in table.items() if "_rep_deleted" not in i]


def test_a_kinesis_tie_of_an_item_never_held_sends_nothing_to_the_replica(ddb_local, make_processor):
    """Changes of one millisecond that return to a state are settled from the source. When neither the
    records nor the source item match the filter, the replica never held the item and must receive nothing:
    ``_settle`` writes a tombstone under the item's key anyway, so the target account learns that a
    filtered-out item exists (its key, or its hashed key, and when it changed) -- the Streams path and the
    untied Kinesis path send nothing for such an item (one_way.py's docstring: "not even its key")."""
    source = create_table(ddb_local, "rvtsrc", SOURCE_REGION)
    replica = create_table(ddb_local, "rvtreplica", REPLICA_REGION, stream=False)
    env = replication_env(source, [{**replica.ref(), "transform": active_only()}],
                          REPLICATION_CHANGE_SOURCE="KINESIS")
    processor = make_processor(env, SOURCE_REGION)
    c = source.client
    hidden = {"pk": {"S": "filtered-out-customer"}, "status": {"S": "closed"}, "email": {"S": "x@example.com"}}
    c.put_item(TableName=source.name, Item=hidden)
    c.put_item(TableName=source.name, Item={**hidden, "email": {"S": "y@example.com"}})
    c.put_item(TableName=source.name, Item=hidden)  # back to the first state within the tick: a cycle
    records = source.new_records()
    stamp = int(time.time() * 1000)
    assert run(processor, kinesis_events(source, records, times=[stamp] * len(records))) == {"batchItemFailures": []}
    assert replica.items() == []  # fails: [{'pk': 'filtered-out-customer', '_rep_deleted': True, ...}]


def test_negative_zero_equals_zero_in_the_filter_as_in_dynamodb() -> None:
    """DynamoDB stores ``-0`` as ``0`` and its condition expressions find ``n = :v`` true for ``n = 0`` and
    ``:v = -0`` (checked against DynamoDB Local: it also reads ``-0`` and ``-0.0`` back as ``0``, and a key
    ``-0`` is the item ``0``). ``equal`` compares canonical encodings, and ``_canonical_number`` keeps the
    sign of zero (Decimal.normalize), so a filter built with ``Filter.eq("n", -0.0)`` matches nothing."""
    item = {"pk": {"S": "k"}, "n": {"N": "0"}}
    for node in ({"op": "eq", "attr": "n", "value": {"N": "-0"}},
                 {"op": "in", "attr": "n", "values": [{"N": "-0.0"}]},
                 {"op": "not", "arg": {"op": "ne", "attr": "n", "value": {"N": "-0"}}}):
        assert Transform.from_spec(with_digest({"version": 1, "filter": node}), None).matches(item), node


def test_hmac_of_a_number_depends_only_on_its_value() -> None:
    """Same input, same output, always (contract C): DynamoDB numbers ``0``, ``-0`` and ``-0.00`` are one value
    (one key), so a replica key or a join value computed by the CLI from a user-given ``-0`` must equal the
    replicator's from the stream's ``0``. ``1``, ``1.0``, ``01`` and ``1E0`` already agree (checked here too)."""
    assert len({json.dumps(hmac_value(KEY, {"N": n})) for n in ("1", "1.0", "01", "1E0", "1.000")}) == 1
    assert hmac_value(KEY, {"N": "-0"}) == hmac_value(KEY, {"N": "0"})


def test_a_kinesis_tie_through_non_matching_states_converges(ddb_local, make_processor):
    """Rule 1 with Kinesis ties (ordered_one_way.py's convergence argument). In one millisecond the item goes
    A (matches) -> deleted -> B (does not match) -> A. The untied records are delivered in three batches,
    the last with a duplicate of the delete (Kinesis delivers out of order and more than once):

    1. [A -> -]: a tombstone stamped t, state ``-``;
    2. [- -> B]: the untransformed path writes B at t, is refused by the tombstone of the same time with
       another state, and settles the item from the source (A). The transformed path skips the batch
       (``never_held``: no image matches), so nothing notices the tie;
    3. [B -> A, A -> -]: these two records alone form the chain B -> A -> -, whose tail is the delete, so a
       tombstone stamped t, state ``-`` is written; refused by the equal tombstone, a "duplicate".

    The exact copy ends with A (the control); the transformed replica ends without the item, although the
    source holds A, which matches the filter. The docstring of ``_put_if_later`` ("every change that leaves a
    matching state has a matching old image and is written, with a later change time") overlooks changes of
    the same time, whose order only the refused writes reveal. Not skipping batch 2 is not enough: its
    write (a tombstone, state ``-``, since B does not match) would be refused by the equal replica state as a
    harmless duplicate. Ties are judged by replica-state digests, which merge source states (B and "no item"
    are both ``-``) that the chain check tells apart; a keyed digest of the SOURCE state (HMAC under the
    transform's secret) would keep the tie detection without letting the target confirm guesses."""
    spec = active_only()
    source, exact, masked, processor = tie_copies(ddb_local, make_processor, "rvk", spec)
    c = source.client
    a = {"pk": {"S": "p"}, "status": {"S": "active"}, "email": {"S": "a@example.com"}}
    b = {"pk": {"S": "p"}, "status": {"S": "inactive"}, "email": {"S": "b@example.com"}}
    c.put_item(TableName=source.name, Item=a)
    c.delete_item(TableName=source.name, Key={"pk": {"S": "p"}})
    c.put_item(TableName=source.name, Item=b)
    c.put_item(TableName=source.name, Item=a)
    deliver_tie(processor, source)
    assert user_view(exact) == [a]  # the control: the exact copy converges
    expected = Transform.from_spec(spec, KEY, ["pk"]).apply(a)
    assert user_view(masked) == [expected]  # fails: [] (a tombstone stamped t, state '-')


def key_refresh_copies(ddb_local, make_processor, monkeypatch, prefix: str, reads_ok: int,
                       **env: str) -> tuple[Any, Any, Any, Any]:
    """A source (Streams-fed unless ``env`` says otherwise), an exact copy and a masked one, whose key reads
    succeed ``reads_ok`` times and are then denied: (source, exact, masked, processor)."""
    from botocore.exceptions import ClientError

    calls = {"n": 0}

    def flaky(arn: str) -> bytes:
        calls["n"] += 1
        if calls["n"] > reads_ok:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "GetSecretValue")
        return KEY

    monkeypatch.setattr(secrets, "_boto3_key_loader", lambda: flaky)
    source = create_table(ddb_local, f"{prefix}src", SOURCE_REGION)
    exact = create_table(ddb_local, f"{prefix}exact", REPLICA_REGION, stream=False)
    masked = create_table(ddb_local, f"{prefix}masked", REPLICA_REGION, stream=False)
    targets = [exact.ref(), {**masked.ref(), "transform": active_only()}]
    processor = make_processor(replication_env(source, targets, **env), SOURCE_REGION)
    return source, exact, masked, processor


def test_a_failed_key_refresh_fails_only_the_masked_target(ddb_local, make_processor, monkeypatch, capsys):
    """After the cold start the key is re-read every 15 minutes (``TargetTransforms.get`` per item plan). When
    that read fails (throttling, a secret deleted or its policy changed, a KMS outage), ``plan()`` raised, the
    whole invocation failed, and Lambda retried the batch until its retries ran out: every target stalled,
    including exact copies that need no secret, and no partial batch response, metric or log line named an
    item (rule 6). Now the key read before is kept while a refresh fails (values stay masked, with the key of
    before), logged and counted (``KeyRefreshFailures``); both copies are written."""
    source, exact, masked, processor = key_refresh_copies(ddb_local, make_processor, monkeypatch, "rvf", 1)
    item = {"pk": {"S": "p"}, "status": {"S": "active"}, "email": {"S": "e@example.com"}}
    source.client.put_item(TableName=source.name, Item=item)
    response = run(processor, source.new_records())
    assert response == {"batchItemFailures": []}
    assert exact.items() == [item]
    assert masked.items() == [Transform.from_spec(active_only(), KEY, ["pk"]).apply(item)]
    out = capsys.readouterr().out
    assert '"KeyRefreshFailures":1' in out and "AccessDeniedException" in out


@pytest.mark.parametrize("change_source", ["DYNAMODB_STREAMS", "KINESIS"])
def test_with_no_key_at_all_only_the_masked_targets_records_fail(ddb_local, make_processor, monkeypatch,
                                                                 change_source):
    """With no key ever read (the cold start's read failed), the exact copy is still written and the masked
    target's records are reported (partial batch response, with the item's key in the log): never an
    invocation error that stalls every target."""
    prefix = "rvn" if change_source == "KINESIS" else "rvm"
    source, exact, masked, processor = key_refresh_copies(ddb_local, make_processor, monkeypatch, prefix, 0,
                                                          REPLICATION_CHANGE_SOURCE=change_source)
    source.client.put_item(TableName=source.name, Item={"pk": {"S": "p"}, "status": {"S": "active"}})
    records = source.new_records()
    response = run(processor, kinesis_events(source, records) if change_source == "KINESIS" else records)
    assert user_view(exact) == [{"pk": {"S": "p"}, "status": {"S": "active"}}]
    assert masked.items() == []
    assert len(response["batchItemFailures"]) == 1


def test_a_kinesis_tie_of_status_flips_converges(ddb_local, make_processor):
    """The same defect as above with updates only -- an application flipping a status within a millisecond.
    Batches [A->X], [X->Y], [Y->A, A->X (a duplicate)]: X and Y do not match, so the first writes a tombstone
    (state ``-``), the second is skipped (and would be a "duplicate" ``-`` anyway), and the third's chain
    Y -> A -> X ends in a non-matching state: a tombstone, refused as a duplicate of the stored ``-``. The
    exact copy settles the tie from the source and ends with A; the transformed replica ends without A."""
    spec = active_only()
    source, exact, masked, processor = tie_copies(ddb_local, make_processor, "rvs", spec)
    a = {"pk": {"S": "p"}, "status": {"S": "active"}}
    for status in ("active", "x", "y", "active"):
        source.client.put_item(TableName=source.name, Item={"pk": {"S": "p"}, "status": {"S": status}})
    deliver_tie(processor, source)
    assert user_view(exact) == [a]  # the control
    assert user_view(masked) == [Transform.from_spec(spec, KEY, ["pk"]).apply(a)]  # fails: []


def test_a_kinesis_tie_through_states_a_projection_merges_converges(ddb_local, make_processor):
    """The tie defect does not need a filter: ties are judged by digests of the *replica's* state, and a
    projection merges source states too. In one millisecond: A (email a, d 1) -> X (email b, d 1) -> Y (email
    b, d 2) -> A, with ``d`` dropped, so X and Y are one replica state. Batches [A->X], [X->Y], [Y->A, A->X]:
    X is written; Y is refused as a "duplicate" of X; the chain Y -> A -> X ends at X, refused as a duplicate
    again. The exact copy settles from the source (A); the projected replica keeps X's email."""
    spec = with_digest({"version": 1, "filter": None, "keep": None, "drop": ["d"], "masks": {},
                        "secretArn": None})
    source, exact, projected, processor = tie_copies(ddb_local, make_processor, "rvp", spec)
    c = source.client
    states = [("a@example.com", "1"), ("b@example.com", "1"), ("b@example.com", "2"), ("a@example.com", "1")]
    for email, d in states:
        c.put_item(TableName=source.name, Item={"pk": {"S": "p"}, "email": {"S": email}, "d": {"N": d}})
    deliver_tie(processor, source)
    a = {"pk": {"S": "p"}, "email": {"S": "a@example.com"}, "d": {"N": "1"}}
    assert user_view(exact) == [a]  # the control
    assert user_view(projected) == [{"pk": {"S": "p"}, "email": {"S": "a@example.com"}}]  # fails: b@...


def test_an_item_too_large_only_for_the_masked_copy_still_reaches_the_exact_copy(ddb_local, make_processor):
    """``hmac`` maps each ``NS`` element to a number of up to 38 digits, so a set of small numbers grows about
    five-fold: a 100 KB source item becomes a replica item over DynamoDB's 400 KB. ``OrderedOneWayReplication
    .plan`` then marks the whole item blocked (``ItemTooLarge``) and clears the writes of EVERY target, so the
    exact copy -- which could hold the item -- never gets it and the record ends in the failure destination
    (a redrive hits the same wall). The Streams path fails only the masked target's write. Expected: the
    exact copy is written; only the masked target's write is reported."""
    source = create_table(ddb_local, "rvbsrc", SOURCE_REGION)
    exact = create_table(ddb_local, "rvbexact", REPLICA_REGION, stream=False)
    masked = create_table(ddb_local, "rvbmasked", REPLICA_REGION, stream=False)
    spec = active_only(filter=None, masks={"codes": {"kind": "hmac"}})
    processor = make_processor(replication_env(source, [exact.ref(), {**masked.ref(), "transform": spec}],
                                               REPLICATION_CHANGE_SOURCE="KINESIS"), SOURCE_REGION)
    item = {"pk": {"S": "big"}, "codes": {"NS": [str(n) for n in range(10_000, 35_000)]}}
    source.client.put_item(TableName=source.name, Item=item)
    response = run(processor, kinesis_events(source, source.new_records()))
    assert len(response["batchItemFailures"]) == 1  # the masked copy cannot hold it: reported
    assert [i["pk"] for i in exact.items()] == [{"S": "big"}]  # fails: [] -- the exact copy was not written


def test_a_replica_rebuilt_after_a_rotation_holds_only_new_key_hashes(ddb_local, make_processor, monkeypatch):
    """Key rotation (docs/architecture.md "Replica transforms", docs/cli.md "Rotating the HMAC key"). A warm
    container keeps the old key for up to the refresh period (``load_hmac_key``'s cache, 15 minutes), so a
    rebuild started at once lets a change applied in that window land under the OLD hashed key in the rebuilt
    replica (an item no later change deletes, while the backfilled copy under the new hash misses the change;
    review r15a). The replicator cannot tell on its own that the secret changed (it would have to call Secrets
    Manager per batch), so the procedure holds it: put the new value, wait out the refresh period (plus the
    function's timeout, for an invocation that planned with the old key), and only then rebuild while the
    replicator keeps applying changes. The old-key writes made while waiting land in the replica that the
    rebuild then replaces; the test fails if a container kept the old key past its refresh period."""

    class RotatingSecrets:
        value = "old-key"

        def get_secret_value(self, SecretId: str) -> dict[str, Any]:
            return {"SecretString": self.value}

    secrets.forget_cached_keys()
    store, now = RotatingSecrets(), [0.0]
    monkeypatch.setattr(secrets, "_boto3_key_loader",
                        lambda: (lambda arn: secrets.load_hmac_key(store, arn, clock=lambda: now[0])))
    source = create_table(ddb_local, "rvrsrc", SOURCE_REGION)
    replica = create_table(ddb_local, "rvrreplica", REPLICA_REGION, stream=False)
    spec = active_only(filter=None, masks={"pk": {"kind": "hmac"}})
    processor = make_processor(replication_env(source, [{**replica.ref(), "transform": spec}]), SOURCE_REGION)
    c = source.client
    c.put_item(TableName=source.name, Item={"pk": {"S": "p"}, "n": {"N": "1"}})
    assert run(processor, source.new_records()) == {"batchItemFailures": []}
    store.value = "new-key"  # 1. the rotation: put-secret-value
    c.put_item(TableName=source.name, Item={"pk": {"S": "p"}, "n": {"N": "2"}})  # the warm container: old key
    assert run(processor, source.new_records()) == {"batchItemFailures": []}
    now[0] += secrets.DEFAULT_REFRESH_SECONDS + 1  # 2. wait out the refresh period
    for item in replica.items():  # 3. the rebuild: empty the replica, backfill it with the new key
        replica.client.delete_item(TableName=replica.name, Key={"pk": item["pk"]})
    new = Transform.from_spec(spec, b"new-key", ["pk"])
    for item in source.items():
        replica.client.put_item(TableName=replica.name, Item=new.apply(item))
    c.put_item(TableName=source.name, Item={"pk": {"S": "p"}, "n": {"N": "3"}})  # the replicator keeps applying
    assert run(processor, source.new_records()) == {"batchItemFailures": []}
    secrets.forget_cached_keys()
    assert replica.items() == [new.apply(item) for item in source.items()]


def test_a_transformed_kinesis_duplicate_settles_only_when_a_tie_could_hide(ddb_local, make_processor, capsys):
    """The tie fix's cost, pinned: a transformed target cannot tell a duplicate by its (merged) state, so a
    re-delivered record that writes a matching state is settled from the source; a re-delivered delete, whose
    batch enters no matching state, stays a refused write (``Superseded``): no source read for it."""
    spec = active_only()
    source, exact, masked, processor = tie_copies(ddb_local, make_processor, "rvd", spec)
    c = source.client
    a = {"pk": {"S": "p"}, "status": {"S": "active"}, "email": {"S": "a@example.com"}}
    c.put_item(TableName=source.name, Item=a)
    c.delete_item(TableName=source.name, Key={"pk": {"S": "p"}})
    put, delete = kinesis_events(source, source.new_records(), first_us=int(time.time() * 1e6) - 10_000_000)
    for batch in ([put], [put]):
        assert run(processor, batch) == {"batchItemFailures": []}
    assert '"Kind":"SettledFromSource"' in capsys.readouterr().out  # the duplicate put: settled (source: none)
    for batch in ([delete], [delete]):
        assert run(processor, batch) == {"batchItemFailures": []}
    out = capsys.readouterr().out
    assert '"Kind":"Superseded"' in out and "SettledFromSource" not in out
    assert user_view(exact) == [] and user_view(masked) == []
