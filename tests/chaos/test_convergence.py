"""Rules 1, 3, 4 and 5 under random multi-region workloads with injected delivery faults (docs/chaos.md)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from hypothesis import HealthCheck, Phase, given, settings

from .harness import Program, Run, Topology
from .strategies import FACTORS, profile, programs

PROFILE = profile()
#: ``CHAOS_SHRINK=0`` reports the first failing program as found (the mutant runner uses it: shrinking a
#: program whose every run replays a whole stream can take minutes).
PHASES = tuple(p for p in Phase if p is not Phase.shrink or os.environ.get("CHAOS_SHRINK", "1") != "0")


@settings(
    max_examples=PROFILE.examples,
    deadline=None,
    derandomize=PROFILE.derandomize,
    database=None,
    print_blob=True,
    phases=PHASES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(program=programs(PROFILE))
@pytest.mark.parametrize("factor", FACTORS, ids=[f"factor{f}" for f in FACTORS])
def test_every_region_converges_to_the_last_writer(chaos_topology: Topology, factor: int, program: Program) -> None:
    """After any program and quiescence: identical copies equal to the model, no echo, no failure record. Every
    program runs with each mapping at each factor: one batch per shard at a time, and ten at once."""
    run = Run.start(chaos_topology, dataclasses.replace(program, factor=factor))
    run.execute()
    run.check()
