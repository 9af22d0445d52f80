"""Hand-written chaos programs for the cases the rules name explicitly, and a cheap mutant check.

They run through the same harness and checks as the property test, so each one also shows that the checks
can fail (see ``test_the_checks_catch_a_broken_tie_break``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .strategies import FACTORS
from .harness import ChaosFailure, Deliver, Fault, Program, Run, Topology, Write

EAST, WEST, SYDNEY = 0, 1, 2  # us-east-1, eu-west-1, ap-southeast-2: us-east-1 wins ties


@pytest.fixture(autouse=True, params=FACTORS, ids=[f"factor{f}" for f in FACTORS])
def at_factor(request: pytest.FixtureRequest, chaos_topology: Topology) -> Iterator[int]:
    """Each program of this file runs with every mapping at each factor (one batch per shard; ten at once)."""
    chaos_topology.factor = request.param
    yield request.param
    chaos_topology.factor = 1


def run(topology: Topology, *ops: Write | Deliver | Fault, skews: tuple[int, int, int] = (0, 0, 0)) -> Run:
    execution = Run.start(topology, Program(skews, ops))
    execution.execute()
    execution.check()
    return execution


def test_concurrent_writes_with_equal_clocks_resolve_to_the_greatest_region(chaos_topology: Topology) -> None:
    done = run(chaos_topology, Write(WEST, "put", 0, 1, 1), Write(EAST, "put", 0, 0, 2), Write(SYDNEY, "update", 0, 0, 3))
    winner = done.model.winner(done.prefix + "0")
    assert winner is not None and winner.region == "us-east-1"


def test_a_late_older_write_does_not_resurrect_a_newer_delete(chaos_topology: Topology) -> None:
    done = run(
        chaos_topology,
        Write(EAST, "put", 0, 5, 1),
        Deliver(EAST, 1),
        Write(WEST, "delete", 0, 0, 0),  # deletes version base+5 in eu-west-1
        Write(SYDNEY, "put", 0, 0, 2),  # older clock (skew -2), not yet seen anywhere
        Deliver(WEST, 1),
        Fault("duplicate", SYDNEY, 2),
        Deliver(SYDNEY, 1),
        skews=(0, 0, -2),
    )
    winner = done.model.winner(done.prefix + "0")
    assert winner is not None and winner.deleted


def test_a_newer_write_beats_an_older_delete_under_replays_and_a_crash(chaos_topology: Topology) -> None:
    done = run(
        chaos_topology,
        Write(EAST, "put", 0, 1, 1),
        Deliver(EAST, 1),
        Write(WEST, "delete", 0, 1, 0),
        Fault("crash", WEST, 1),
        Deliver(WEST, 2),
        Write(SYDNEY, "update", 0, 3, 5),
        Fault("replay_last", EAST),
        Fault("pause", SYDNEY),
        Deliver(EAST, 2),
        Deliver(WEST, 2),
    )
    winner = done.model.winner(done.prefix + "0")
    assert winner is not None and not winner.deleted and winner.region == "ap-southeast-2"


def test_the_checks_catch_a_broken_tie_break(chaos_topology: Topology) -> None:
    """Mutation check in the normal suite: with the origin tie-break switched off, equal clocks in two regions
    resolve to whichever arrived last: here eu-west-1's write, delivered last, although us-east-1's must win."""
    with chaos_topology.mutant("tiebreak"):
        with pytest.raises(ChaosFailure, match="expected write@"):
            run(chaos_topology, Write(EAST, "put", 0, 1, 1), Write(WEST, "put", 0, 0, 2), Deliver(WEST, 1), Deliver(EAST, 1))


def test_the_checks_report_records_lost_to_a_permanent_fault(chaos_topology: Topology) -> None:
    """The failure-queue check can fail: a permanent fault (every write denied) sends the record there."""
    execution = Run.start(chaos_topology, Program((0, 0, 0), (Write(WEST, "put", 0, 1, 1),)))
    chaos_topology.regions[WEST].function.faults.fail_writes(None, "AccessDeniedException", fraction=1.0)
    try:
        execution.execute()
        with pytest.raises(ChaosFailure, match="failure destination"):
            execution.check()
    finally:
        chaos_topology.regions[WEST].function.faults.clear()


def test_an_expiry_then_a_re_create_with_a_lower_value_converges(chaos_topology: Topology) -> None:
    """Issue 10, defect 5: ap-southeast-2's TTL process removes the item (everywhere else it is still there,
    expired) and the application there writes it again with a lower conflict value (its clock is 3 behind).
    The expiry is a delete of the expired version, so the lower re-create loses to it in every region."""
    done = run(
        chaos_topology,
        Write(EAST, "put", 0, 5, 1),
        Deliver(EAST, 1),
        Write(SYDNEY, "expire", 0, 0, 0),
        Write(SYDNEY, "put", 0, 0, 2),  # base+2: below the expired base+5
        Write(WEST, "update", 0, 0, 3),  # a concurrent write in eu-west-1 (ties base+5, loses), delivered late
        Fault("pause", WEST),
        Deliver(SYDNEY, 2),
        Write(EAST, "expire", 0, 0, 0),  # the item is a tombstone in us-east-1 by now: nothing to expire
        skews=(0, 0, -3),
    )
    winner = done.model.winner(done.prefix + "0")
    assert winner is not None and winner.deleted and winner.region == "ap-southeast-2"
