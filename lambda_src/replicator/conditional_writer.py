"""Multi-active writes: PutItem with a condition, so that every region keeps the same winner.

Two kinds of write:

* :func:`put_if_newer` (to the other regions): the common case costs one request, conditioned on the stored
  conflict attribute being lower. When that check fails, DynamoDB returns the stored item
  (``ReturnValuesOnConditionCheckFailure=ALL_OLD``) and the full order (version, delete-beats-write,
  origin region) is decided here; if the incoming state still wins, it is written conditioned on the stored
  item being unchanged (compare-and-set), and the loop repeats if it changed meanwhile.
* :func:`put_if_unchanged` (to the source table): a tombstone after a local delete, or the winning state put
  back after a local write that lost; conditioned on the item still being what the stream showed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import lean_put
from .attributes import Item
from .config import TableRef
from . import metadata
from .metadata import LATEST, MetadataCodec, State, compare
from .operations import PutIfNewer, PutIfUnchanged, WriteFailure
from .retry import DEADLINE_EXCEEDED, Deadline, error_code, is_retryable, wait_before_retry

#: Compare-and-set rounds before giving up on an item that keeps changing under us (reported, re-delivered).
MAX_CAS_ROUNDS = 5

CONDITION_FAILED = "ConditionalCheckFailedException"

#: Seconds a tombstone's logical expiry must lie beyond the replicator's clock for the first condition to decide
#: it against a stored write without reading that write's time (:func:`first_condition`): more than any clock
#: skew between the regions' stream times and this function's clock.
EXPIRY_MARGIN_S = 3600


@dataclass(frozen=True)
class Outcome:
    """What happened to one conditional write.

    ``conflict`` is ``None`` when the item was written, ``TargetNewer`` when the target holds a state that
    orders after ours (ours lost: success), ``AlreadyApplied`` when it holds exactly ours.
    """

    written: bool
    conflict: str | None = None
    stored: State | None = None
    failure: WriteFailure | None = None


def _unchanged_condition(codec: MetadataCodec, stored: Item | None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A condition that holds only while the table still holds ``stored`` (as far as a write can tell: its
    conflict attribute and marker, which every replicator write and every well-behaved application write
    change)."""
    names = {"#k": codec.key_names[0]}
    if stored is None:
        return "attribute_not_exists(#k)", names, {}
    names.update({"#c": codec.conflict_attr, "#m": codec.marker_attr})
    values: dict[str, Any] = {}
    parts = ["attribute_exists(#k)"]
    if codec.conflict_attr in stored:
        parts.append("#c = :c")
        values[":c"] = stored[codec.conflict_attr]
    else:
        parts.append("attribute_not_exists(#c)")
    if codec.marker_attr in stored:
        parts.append("#m = :m")
        values[":m"] = stored[codec.marker_attr]
    else:
        parts.append("attribute_not_exists(#m)")
    return " AND ".join(parts), names, values


def conditional_put(
    client: Any,
    table: TableRef,
    item: Item,
    condition: tuple[str, dict[str, str], dict[str, Any]],
    deadline: Deadline,
    return_stored: bool = True,
) -> tuple[bool, Item | None, WriteFailure | None]:
    """One conditional PutItem with retries of transient errors: (written, stored item if the condition
    failed and ``return_stored``, failure)."""
    expression, names, values = condition
    kwargs: dict[str, Any] = {
        "TableName": table.request_name,
        "Item": item,
        "ConditionExpression": expression,
        "ExpressionAttributeNames": names,
    }
    if return_stored:
        kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    if values:
        kwargs["ExpressionAttributeValues"] = values
    if deadline.passed():
        return False, None, WriteFailure(DEADLINE_EXCEEDED, "not started: the deadline had passed", True)
    attempt = 0
    while True:
        try:
            lean_put.put_item(client, kwargs)
            return True, None, None
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False, exc.response.get("Item"), None  # type: ignore[union-attr]
            if not is_retryable(exc):
                return False, None, WriteFailure(error_code(exc), str(exc)[:500])
            if not wait_before_retry(deadline, attempt):
                return False, None, WriteFailure(error_code(exc), str(exc)[:500], retries_exhausted=True)
            attempt += 1


def first_condition(codec: MetadataCodec, state: State, now: float | None = None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The condition of the first PutItem of ``state``: it holds only where :func:`.metadata.compare` puts
    ``state`` after what the table holds, for the cases that need no look at the stored item (``now``: epoch
    seconds, default the replicator's clock).

    * Nothing stored, or a lower conflict value: ``state`` wins (a stored state orders after a higher
      version only when :func:`.metadata.compare` finds one of them outlived by the other, below).
    * A tombstone over a stored item that is not a tombstone (no delete flag) at the *same* value: the delete
      wins (delete beats write at equal version), so a delete reaching a replica that holds the deleted item
      costs one request, not a refused one, a read of the stored item and a compare-and-set.
    * A tombstone whose logical expiry is not well in the future (a restored backup's, whose delete is long
      past): a stored write made at or after that expiry orders after it whatever its version, which no
      condition can see (the time is inside the marker), so it is decided by :func:`.metadata.compare` from
      the stored item. Every other state was written no later than now, so a tombstone expiring more than
      ``EXPIRY_MARGIN_S`` from now cannot be outlived by anything already stored.

    Anything else (equal values between two writes or two tombstones: origin and sequence decide) fails the
    condition and is decided from the stored item that comes back.
    """
    names = {"#k": codec.key_names[0], "#c": codec.conflict_attr}
    values = {":v": state.user[codec.conflict_attr]}
    if not state.deleted:
        return "attribute_not_exists(#k) OR #c < :v", names, values
    if state.expires is not None and state.expires <= (metadata.clock() if now is None else now) + EXPIRY_MARGIN_S:
        return "attribute_not_exists(#k)", {"#k": names["#k"]}, {}
    names["#d"] = codec.deleted_attr
    return "attribute_not_exists(#k) OR #c < :v OR (#c = :v AND attribute_not_exists(#d))", names, values


def put_if_newer(client: Any, table: TableRef, op: PutIfNewer, codec: MetadataCodec, deadline: Deadline) -> Outcome:
    """Apply ``op`` to ``table`` by the conflict rules (see the module docstring)."""
    condition = first_condition(codec, op.state)
    for _ in range(MAX_CAS_ROUNDS):
        written, stored_item, failure = conditional_put(client, table, op.item, condition, deadline)
        if written:
            return Outcome(written=True)
        if failure is not None:
            return Outcome(written=False, failure=failure)
        if stored_item is None:
            # The item vanished between our read of it and the compare-and-set: treat it as absent.
            condition = _unchanged_condition(codec, None)
            continue
        stored = codec.state_of(stored_item, table.region, LATEST)
        order = compare(stored, op.state)
        if order > 0:
            return Outcome(written=False, conflict="TargetNewer", stored=stored)
        if order == 0 and stored.same_content(op.state):
            return Outcome(written=False, conflict="AlreadyApplied", stored=stored)
        condition = _unchanged_condition(codec, stored_item)
    return Outcome(
        written=False,
        failure=WriteFailure("ConcurrentUpdates", f"the item changed during {MAX_CAS_ROUNDS} compare-and-set rounds"),
    )


def put_if_unchanged(client: Any, table: TableRef, op: PutIfUnchanged, codec: MetadataCodec, deadline: Deadline) -> Outcome:
    """Apply ``op`` with compare-and-set on what the table holds.

    If the item changed since the stream record, the decision is made here with the stored item in view:
    Lambda re-delivers the same records (never the later one that changed the item), so reporting the change
    would only fail the record until it is discarded. A stored state that orders at or after ours needs
    nothing (a newer one has its own record, which is replicated); an older one is overwritten by the winner.
    """
    expected = op.expected
    for _ in range(MAX_CAS_ROUNDS):
        written, stored_item, failure = conditional_put(
            client, table, op.item, _unchanged_condition(codec, expected), deadline
        )
        if written:
            return Outcome(written=True)
        if failure is not None:
            return Outcome(written=False, failure=failure)
        stored = codec.state_of(stored_item, table.region, LATEST) if stored_item else None
        order = compare(stored, op.state) if stored is not None else -1
        if stored is not None and order >= 0:
            same = order == 0 and stored.same_content(op.state)
            return Outcome(written=False, conflict="AlreadyApplied" if same else "TargetNewer", stored=stored)
        expected = stored_item  # an older state (or nothing) took its place: put the winner over it
    return Outcome(
        written=False,
        failure=WriteFailure("ConcurrentUpdates", f"{op.reason}: the item changed during {MAX_CAS_ROUNDS} compare-and-set rounds"),
    )
