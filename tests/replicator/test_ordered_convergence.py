"""Property test for the Kinesis change source: whatever order, duplication and batching Kinesis and Lambda
deliver one history in, with change times that often tie (millisecond precision), the replica ends equal to
the source (rule 1), and no item ever goes back to an older change on the way (rule 2 as Kinesis allows it:
the change time decides, then the images, never the arrival)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from rep_helpers import FakeContext, create_table, kinesis_events, replication_env, sort_items

KEYS = ["a", "b", "c"]
PREFIX = "_rep_"

writes = st.lists(st.tuples(st.sampled_from(["put", "update", "delete"]), st.sampled_from(KEYS)), min_size=1,
                  max_size=16)


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


def _revisits_a_state_within_a_tick(records: list[dict[str, Any]], times: list[int]) -> bool:
    states: dict[tuple[str, int], list[Any]] = {}
    for record, time_ in zip(records, times):
        body = record["dynamodb"]
        chain = states.setdefault((body["Keys"]["pk"]["S"], time_), [repr(body.get("OldImage"))])
        chain.append(repr(body.get("NewImage")))
    return any(len(set(chain)) < len(chain) for chain in states.values())


def _user_view(items: list[dict[str, Any]]) -> list[Any]:
    return sort_items({k: v for k, v in i.items() if not k.startswith(PREFIX)} for i in items
                      if PREFIX + "deleted" not in i)


# Each example creates two tables on DynamoDB Local; shrinking would take minutes, so the failing case is
# printed as generated.
@settings(
    max_examples=15,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=writes, data=st.data())
def test_any_delivery_of_a_history_converges(ddb_local, make_processor, history, data):
    source = create_table(ddb_local, "pksrc", "us-east-1")
    replica = create_table(ddb_local, "pkrep", "eu-west-1", stream=False)
    processor = make_processor(replication_env(source, [replica.ref()], REPLICATION_CHANGE_SOURCE="KINESIS"),
                               "us-east-1")
    c = source.client
    for n, (kind, key) in enumerate(history):
        if kind == "put":
            c.put_item(TableName=source.name, Item={"pk": {"S": key}, "n": {"N": str(n)}, "m": {"M": {}}})
        elif kind == "update":
            c.update_item(TableName=source.name, Key={"pk": {"S": key}}, UpdateExpression="SET n = :n",
                          ExpressionAttributeValues={":n": {"N": str(n)}})
        else:
            c.delete_item(TableName=source.name, Key={"pk": {"S": key}})
    records = source.new_records()
    # Millisecond-precision times that often tie: equal times must be ordered by the images.
    steps = data.draw(st.lists(st.sampled_from([0, 1]), min_size=len(records), max_size=len(records)), label="ticks")
    start = 1_790_000_000_000
    times = [start + sum(steps[: i + 1]) for i in range(len(records))]
    # Same-time changes that bring an item back to a state it had in that tick (create, delete and create
    # again within one millisecond) cannot be ordered by images: the documented limit, left out here.
    assume(not _revisits_a_state_within_a_tick(records, times))
    events = kinesis_events(source, records, times=times)
    seen: dict[str, int] = {}
    for batch in data.draw(deliveries(len(events)), label="batches"):
        result = processor.process({"Records": [events[i] for i in batch]}, FakeContext())
        assert result == {"batchItemFailures": []}
        for item in replica.items():
            changed = int(item[PREFIX + "changedAt"]["N"])
            assert changed >= seen.get(item["pk"]["S"], 0), "an item went back to an older change"
            seen[item["pk"]["S"]] = changed
    assert _user_view(replica.items()) == source.items()
