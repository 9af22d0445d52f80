"""Adversarial review of the multi-active redrive/repair (``cli/redrive/multi_active.py``): races between the
resync's read of the target and its conditional write, on DynamoDB Local with the real replicator."""

from __future__ import annotations

from typing import Any

from cdk_replication.cli.repair import KEPT
from cdk_replication.cli.tables import TableHandle

from .test_redrive_multi_active import AGE, EAST, WEST, world  # noqa: F401  (world is a fixture)


class _WriteFirst:
    """The target's client, with an application write made just before the resync's first ``put_item``
    (between its read of the target and its conditional write)."""

    def __init__(self, client: Any, before_put: Any) -> None:
        self._client, self._before_put, self._done = client, before_put, False

    def put_item(self, **kwargs: Any) -> Any:
        if not self._done:
            self._done = True
            self._before_put()
        return self._client.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_an_expired_delete_never_overwrites_a_re_create_that_lands_during_the_resync(world):
    """The delete (version 7) failed three weeks ago; eu-west-1 never held the item. Between the resync's read
    of eu-west-1 (nothing there) and its write, the application re-creates the item in eu-west-1 at version 1,
    long after the tombstone expired logically: every region must keep it (rule 5: a write made after the
    expiry finds the tombstone absent). The resync's guard for this case (``_judge``) saw only its read;
    ``put_if_newer``'s condition ``#c < :v`` lets the expired tombstone overwrite the re-create. eu-west-1's
    replicator then sends the re-create to us-east-1 (kept there) and, in a later batch, takes the tombstone
    for an echo: us-east-1 holds the item, eu-west-1 the delete, for good."""
    w = world([EAST, WEST])
    w[EAST].put("k", 7, v={"S": "deleted"})
    w[EAST].new_records(AGE)  # eu-west-1 never got it
    w[EAST].delete("k")
    failed = w[EAST].new_records(AGE)
    target = w[WEST]
    assert target.handle is not None
    plain = target.handle
    target.handle = TableHandle(plain.info, _WriteFirst(plain.client,
                                                        lambda: target.put("k", 1, v={"S": "re-created"})))
    try:
        outcome, reason = w.resync(EAST, WEST, "k", failed)
    finally:
        target.handle = plain
    assert outcome == KEPT and "re-create" in reason, (outcome, reason)
    records = target.new_records()
    assert [r["eventName"] for r in records] == ["INSERT"]  # the re-create; the resync wrote nothing over it
    for record in records:
        assert target.deliver([record]) == {"batchItemFailures": []}
    w.pump()

    assert w[EAST].live("k") == w[WEST].live("k"), (outcome, reason, w[EAST].get("k"), w[WEST].get("k"))
    assert w[WEST].live("k") == {"pk": {"S": "k"}, "updatedAt": {"N": "1"}, "v": {"S": "re-created"}}


def test_an_update_back_to_the_markers_content_is_left_for_a_check_by_hand(world):
    """Sydney wrote version 100 "a" (everywhere); us-east-1's application updated it to "b" at the same version
    (replicated as us-east-1's write, which wins the tie), then back to "a" without touching the marker. The
    replicator sends that last write as us-east-1's (docs/conflicts.md: a write back to the marker's content
    is the application's); its record was lost. Without the record, ``verify --repair`` cannot tell that write
    from Sydney's stamped write: read as Sydney's, "b" beats it (the reverse direction would overwrite the
    application's latest "a" with "b"); read as us-east-1's, it beats "b". Neither guess is safe, so the repair
    writes nothing in any direction (KEPT, naming the key and both origins, to check by hand): the regions differ
    as the lost record left them, no further."""
    from .test_redrive_multi_active import SYDNEY
    from .test_repair_multi_active import repair

    w = world([EAST, WEST, SYDNEY])
    w[SYDNEY].put("k", 100, v={"S": "a"})
    w.pump()

    def update(value: str) -> None:
        w[EAST].client.update_item(TableName=w[EAST].name, Key={"pk": {"S": "k"}},
                                   UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": {"S": value}})

    update("b")
    w.pump()
    assert {w[r].live("k")["v"]["S"] for r in (EAST, WEST, SYDNEY)} == {"b"}
    update("a")
    w[EAST].new_records()  # its record is lost

    for source, target in ((EAST, WEST), (EAST, SYDNEY), (WEST, EAST), (SYDNEY, EAST)):
        outcome, reason = repair(w, source, target)["k"]
        assert outcome == KEPT and "by hand" in reason, (source, target, outcome, reason)
        assert '"pk": {"S": "k"}' in reason and SYDNEY in reason and EAST in reason, reason
    w.pump()
    assert w[EAST].live("k")["v"] == {"S": "a"}, "the application's latest write was overwritten"
    assert w[WEST].live("k")["v"] == w[SYDNEY].live("k")["v"] == {"S": "b"}
