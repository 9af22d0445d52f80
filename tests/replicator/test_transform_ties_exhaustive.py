"""Every delivery of small same-millisecond histories to a FILTERED or PROJECTED replica (review r15a).

test_ordered_ties_exhaustive.py enumerates schedules for an exact copy. A transformed target differs in two
ways that the review showed can hide a tie (ordered_one_way.py, "Targets with a transform"): batches whose
images all fail the filter are skipped, and its state stamps merge source states. Here the same enumeration
(every history of up to three changes, every split into one or two ticks, every delivery order with up to
one duplicate, every cut into batches) runs against a target with a filter (``v = "A"``: B does not match,
so it merges with "no item") and one with a projection (``d`` dropped: B and C differ only in ``d``),
and the replica must end at the transform of the source's last state. Before the fix, schedules such as
``A -> - -> B -> A`` delivered as ``[A->-] [-->B] [B->A, A->-]`` ended wrong.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from replicator.config import load_config
from replicator.ordered_one_way import OrderedOneWayReplication
from replicator.records import Change
from replicator.retry import Deadline
from replicator.telemetry import InvocationMetrics
from replicator.transform import Transform, with_digest

from test_ordered_ties_exhaustive import ENV, KEY, StandIn, schedules

#: The source states (None: no item) and their images: B and C differ only in the dropped attribute ``d``.
VALUES = {"A": ("A", "1"), "B": ("B", "1"), "C": ("B", "2")}
FILTERED = {"version": 1, "filter": {"op": "eq", "attr": "v", "value": {"S": "A"}}, "keep": None, "drop": None,
            "masks": {}, "secretArn": None}
PROJECTED = {"version": 1, "filter": None, "keep": None, "drop": ["d"], "masks": {}, "secretArn": None}


def image(state: str | None) -> dict[str, Any] | None:
    if state is None:
        return None
    v, d = VALUES[state]
    return {"pk": {"S": "k"}, "v": {"S": v}, "d": {"N": d}}


class Source(StandIn):
    """The stand-in, with this module's images for the source's final state."""

    def get_item(self, TableName: str, Key: Any, ConsistentRead: bool) -> dict[str, Any]:  # noqa: N803
        assert TableName == "src" and ConsistentRead
        item = image(self.source)
        return {} if item is None else {"Item": item}


def user_view(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if item is None or "_rep_deleted" in item:
        return None
    return {k: v for k, v in item.items() if not k.startswith("_rep_")}


#: What replay returns when the item was reported for repair instead of written.
REPORTED = {"reported": {"BOOL": True}}


def replay(walk: tuple[str | None, ...], times: list[int], batches: list[list[int]], pool: Any,
           spec: dict[str, Any], by_ttl: tuple[bool, ...] | None = None) -> dict[str, Any] | None:
    """The replica's item (user attributes) after delivering ``batches`` of the walk's changes, or
    :data:`REPORTED`. ``by_ttl`` (default: none) marks the changes that are TTL deletes, which are skipped."""
    transform = Transform.from_spec(spec, None, ["pk"])
    ttl = by_ttl or (False,) * (len(walk) - 1)
    env = {**ENV, "REPLICATION_TARGETS": json.dumps([{"tableName": "dst", "region": "eu-west-1",
                                                      "account": "111111111111", "transform": spec}])}
    if by_ttl is not None:
        env["REPLICATION_TTL_DELETES"] = "SKIP"
    before = transform.apply(image(walk[0]))
    target = None if before is None else {**before, "_rep_changedAt": {"N": "1"}, "_rep_state": {"S": "old"}}
    stand_in = Source(walk[-1], target)  # type: ignore[arg-type]
    replication = OrderedOneWayReplication(load_config(env), stand_in, logging.getLogger("exhaustive"))  # type: ignore[arg-type]
    for batch in batches:
        changes = []
        for position, i in enumerate(batch):
            old, new = walk[i], walk[i + 1]
            event = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
            changes.append(Change(position, str(1000 + i), event, KEY, image(new), image(old), None, ttl[i], times[i]))
        plan = replication.plan(KEY, changes)
        failures = replication.apply([plan], pool, Deadline(float("inf")), InvocationMetrics("src", io.StringIO()))
        if failures:
            codes = {f.failure.code for f in failures[KEY]}
            assert codes == {"UnsettledTie"} and by_ttl is not None and walk[-1] is None, codes
            return REPORTED
    return user_view(stand_in.target)


@pytest.mark.parametrize(
    ("spec", "states"),
    # Three states each keep the run short: "B" merges with "no item" under the filter, "C" with "B" under the
    # projection.
    [(FILTERED, (None, "A", "B")), (PROJECTED, ("A", "B", "C"))],
    ids=["filter", "projection"],
)
def test_every_delivery_of_every_small_tied_history_ends_at_the_transformed_source_state(
    spec: dict[str, Any], states: tuple[str | None, ...]
) -> None:
    spec = with_digest(spec)
    transform = Transform.from_spec(spec, None, ["pk"])
    checked, wrong = 0, []
    with ThreadPoolExecutor(2) as pool:
        for length in (1, 2, 3):
            for walk in itertools.product(states, repeat=length + 1):
                if any(a == b for a, b in zip(walk, walk[1:])):
                    continue
                expected = transform.apply(image(walk[-1]))
                for times, batches in schedules(length):
                    checked += 1
                    if replay(walk, times, batches, pool, spec) != expected:
                        wrong.append((walk, times, batches))
    assert not wrong, f"{len(wrong)} of {checked} schedules diverged, e.g. {wrong[:3]}"
    assert checked > 10_000
