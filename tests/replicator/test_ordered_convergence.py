"""Property test for the Kinesis change source: whatever order, duplication and batching Kinesis and Lambda
deliver one history in, with change times that often tie (millisecond precision), the replica ends equal to
the source (rule 1), and no item ever goes back to an older change on the way (rule 2 as Kinesis allows it:
the change time decides, then the records where they can, else the source; never the arrival).

Values come from a small set, so an item often returns to a state it had within one tick (create, delete,
create; v1, v2, v1): the case where records alone cannot order equal times.

Beside the exact copy, the same deliveries go to two transformed copies (transformed_targets.py: a filter on
``n`` that items enter and leave, a dropped ``address``, a hashed ``email``, and once a hashed partition
key): each must end at the transform of the source, hold no older change on the way, and never receive a
raw hashed or dropped value (rule 10).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from replicator.processor import Processor

from rep_helpers import FakeContext, Table, create_table, kinesis_events, replication_env, sort_items
from transformed_targets import FILTERED, KEYED, Copy, check_copies, install_key, write_history

KEYS = ["a", "b", "c"]
PREFIX = "_rep_"

#: (kind, key, value): values from a small set make an item revisit states.
writes = st.lists(
    st.tuples(st.sampled_from(["put", "update", "delete"]), st.sampled_from(KEYS), st.integers(0, 2)),
    min_size=1,
    max_size=20,
)


@st.composite
def deliveries(draw: Any, count: int) -> list[list[int]]:
    """Batches of record indices: every record at least once, in any order, some more than once."""
    if count == 0:
        return []  # e.g. only deletes of absent items: nothing reaches the stream
    order = draw(st.permutations(range(count)))
    again = draw(st.lists(st.integers(0, count - 1), max_size=count))
    sequence = list(order) + again
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(sequence) - 1)), max_size=6))))
    bounds = [0, *[c for c in cuts if c < len(sequence)], len(sequence)]
    return [sequence[a:b] for a, b in zip(bounds, bounds[1:]) if a < b]


@dataclass
class Pair:
    """One source, its copies (exact first, then transformed) and one replicator for all examples of a test,
    each example writing its own keys, and one client per table: creating tables and clients per example
    would cost most of the test's time."""

    source: Table
    copies: list[Copy]
    processor: Processor
    source_client: Any

    def source_items(self, prefix: str) -> list[dict[str, Any]]:
        """The example's source items, strongly consistent, in a canonical order."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.source.name, "ConsistentRead": True}
        while True:
            page = self.source_client.scan(**kwargs)
            items.extend(i for i in page["Items"] if i["pk"]["S"].startswith(prefix))
            if "LastEvaluatedKey" not in page:
                return sort_items(items)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture
def pair(ddb_local, make_processor, monkeypatch) -> Pair:
    install_key(monkeypatch)
    source = create_table(ddb_local, "pksrc", "us-east-1")
    copies = [Copy.of(create_table(ddb_local, name, "eu-west-1", stream=False), spec)
              for name, spec in (("pkrep", None), ("pkfilt", FILTERED), ("pkkeyed", KEYED))]
    processor = make_processor(replication_env(source, [c.target() for c in copies],
                                               REPLICATION_CHANGE_SOURCE="KINESIS"), "us-east-1")
    for copy in copies:
        copy.record(processor)
    return Pair(source, copies, processor, source.client)


# Shrinking would take minutes on DynamoDB Local, so the failing case is printed as generated. On the image
# rule this replaced (an equal-time change applies if its old image is the stored state), 4 of 5 seeds found
# a divergence, typically within the first 5-15 examples. For the transformed copies, each of these mutants of
# ordered_one_way.py failed on every seed tried (2 to 5): the transform applied to the old image, no tombstone
# when an item enters a state the filter does not match, a settle that writes the untransformed source item.
@settings(
    max_examples=100,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=writes, data=st.data())
def test_any_delivery_of_a_history_converges(pair, history, data):
    source, processor = pair.source, pair.processor
    prefix = f"{uuid.uuid4().hex[:8]}-"
    pks = [prefix + name for name in KEYS]
    write_history(pair.source_client, source, prefix, history)
    records = source.new_records()
    # Millisecond-precision times that often tie (three in four records share the previous one's tick).
    steps = data.draw(st.lists(st.sampled_from([0, 0, 0, 1]), min_size=len(records), max_size=len(records)),
                      label="ticks")
    start = 1_790_000_000_000
    times = [start + sum(steps[: i + 1]) for i in range(len(records))]
    events = kinesis_events(source, records, times=times)
    seen: dict[tuple[int, str], int] = {}
    for copy in pair.copies:
        copy.sent.clear()
    for batch in data.draw(deliveries(len(events)), label="batches"):
        result = processor.process({"Records": [events[i] for i in batch]}, FakeContext())
        assert result == {"batchItemFailures": []}
        for n, copy in enumerate(pair.copies):
            for item in copy.stored(pks):
                changed = int(item[PREFIX + "changedAt"]["N"])
                assert changed >= seen.get((n, item["pk"]["S"]), 0), f"copy {n}: an item went back to an older change"
                seen[(n, item["pk"]["S"])] = changed
    check_copies(pair.copies, pair.source_items(prefix), prefix, pks)
