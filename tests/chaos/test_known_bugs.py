"""Regression tests: minimal reproductions of the replicator bugs the chaos suite found (docs/chaos.md,
"Bugs found"), run with no allowance. They failed before the fix in conditional_writer.put_if_unchanged
(decide with the stored item in view) and metadata.stamp (a marker unique to each write)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .strategies import FACTORS
from .harness import Deliver, Fault, Program, Run, Topology, Write

EAST, WEST, SYDNEY = 0, 1, 2  # region ids order us-east-1 > eu-west-1 > ap-southeast-2


@pytest.fixture(autouse=True, params=FACTORS, ids=[f"factor{f}" for f in FACTORS])
def at_factor(request: pytest.FixtureRequest, chaos_topology: Topology) -> Iterator[int]:
    """Each program of this file runs with every mapping at each factor (one batch per shard; ten at once)."""
    chaos_topology.factor = request.param
    yield request.param
    chaos_topology.factor = 1


def strict_run(topology: Topology, skews: tuple[int, int, int], *ops: Write | Deliver | Fault) -> Run:
    """Run a program and check every rule."""
    execution = Run.start(topology, Program(skews, ops))
    execution.execute()
    execution.check()
    return execution


def test_a_redelivered_delete_after_a_newer_write_is_not_sent_to_the_failure_queue(chaos_topology: Topology) -> None:
    strict_run(
        chaos_topology,
        (0, 0, 0),
        Write(EAST, "put", 0, 1, 1),
        Deliver(EAST, 1),
        Deliver(WEST, 1),
        Write(WEST, "delete", 0, 0, 0),  # a delete of version base+1 ...
        Deliver(WEST, 1),  # ... replicated with its tombstones: this batch is the mapping's last
        Write(SYDNEY, "put", 0, 5, 2),  # a newer write, replicated over the tombstones
        Deliver(SYDNEY, 2),
        Fault("replay_last", WEST),  # a lost checkpoint: the REMOVE is delivered again
        Deliver(WEST, 1),
    )


def test_a_late_older_write_is_not_resurrected_when_the_local_tombstone_was_not_written(chaos_topology: Topology) -> None:
    # One write at a time, in the order the planner lists them (targets first, its own table last), so that
    # "crash after 2 writes" stops exactly before the local tombstone.
    with chaos_topology.environment({"REPLICATION_MAX_CONCURRENCY": "1"}, regions=[WEST]):
        strict_run(
            chaos_topology,
            (0, 0, -3),
            Write(EAST, "put", 0, 5, 1),  # X at base+5
            Write(SYDNEY, "put", 0, 0, 2),  # Z at base+2 (clock 3 behind), concurrent with X
            Deliver(SYDNEY, 1),  # Z reaches eu-west-1 (empty) and loses in us-east-1
            Deliver(EAST, 1),  # X everywhere
            Deliver(WEST, 1),
            Write(WEST, "delete", 0, 0, 0),  # deletes X: tombstone at base+5
            Fault("crash", WEST, 2),
            Deliver(WEST, 1),  # tombstones written to us-east-1 and ap-southeast-2, then the container dies
            Fault("replay_last", SYDNEY),  # at-least-once: Z delivered again, late
            Deliver(SYDNEY, 1),  # ... into eu-west-1's empty slot
        )


def test_a_repair_of_a_lost_local_write_is_not_sent_on(chaos_topology: Topology) -> None:
    strict_run(
        chaos_topology,
        (0, -2, 0),
        Write(EAST, "put", 0, 5, 1),  # X at base+5 from us-east-1
        Deliver(EAST, 1),
        Write(WEST, "update", 0, 0, 2),  # eu-west-1's clock is 2 behind: base+3 over X, it lost
        Deliver(WEST, 1),  # the replicator puts X back (Repair) ...
        Deliver(WEST, 1),  # ... and must recognise that write as its own
    )


def test_a_repair_does_not_change_who_wins_a_later_tie(chaos_topology: Topology) -> None:
    strict_run(
        chaos_topology,
        (-2, 0, 0),
        Write(SYDNEY, "put", 0, 5, 1),  # X at base+5 from ap-southeast-2 (the lowest region id)
        Deliver(SYDNEY, 1),
        Write(EAST, "update", 0, 0, 2),  # us-east-1's clock is 2 behind: base+3 over X, it lost
        Deliver(EAST, 2),  # Repair of X in us-east-1, then that write re-sent as us-east-1's
        Write(WEST, "put", 0, 0, 3),  # Y at base+5 from eu-west-1: ties X and beats it (eu > ap)
    )
