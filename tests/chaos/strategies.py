"""Hypothesis strategies for chaos programs, and the fast and long profiles (``CHAOS_PROFILE``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import strategies as st

from .chaos_app import REGIONS

#: The parallelization factors the examples run at: Lambda's default (one batch per shard at a time) and the
#: most it allows.
FACTORS = (1, 10)
from .harness import FAULT_KINDS, Burst, Deliver, Fault, Program, Restore, Write


@dataclass(frozen=True)
class Profile:
    """How much a run explores.

    Attributes:
        examples: hypothesis examples (each one program on the shared deployment).
        min_ops / max_ops: operations per program (writes, delivery steps and faults together).
        keys: size of the key space (small, so writes to one item collide across regions).
        derandomize: a fixed sequence of examples (CI must be reproducible); the long profile explores.
    """

    name: str
    examples: int
    min_ops: int
    max_ops: int
    keys: int
    derandomize: bool


PROFILES = {
    "fast": Profile("fast", examples=16, min_ops=30, max_ops=80, keys=4, derandomize=True),
    "long": Profile("long", examples=200, min_ops=60, max_ops=250, keys=6, derandomize=False),
}


def profile() -> Profile:
    """The profile named by ``CHAOS_PROFILE`` (default ``fast``); ``CHAOS_EXAMPLES`` overrides its count."""
    name = os.environ.get("CHAOS_PROFILE", "fast")
    if name not in PROFILES:
        raise ValueError(f"CHAOS_PROFILE={name!r} is not one of {sorted(PROFILES)}")
    chosen = PROFILES[name]
    if os.environ.get("CHAOS_EXAMPLES"):
        chosen = Profile(**{**chosen.__dict__, "examples": int(os.environ["CHAOS_EXAMPLES"])})
    return chosen


def _regions() -> st.SearchStrategy[int]:
    return st.integers(0, len(REGIONS) - 1)


def writes(keys: int) -> st.SearchStrategy[Write]:
    return st.builds(
        Write,
        region=_regions(),
        # "expire": DynamoDB's TTL process removes the item in that region (its own schedule: one region).
        kind=st.sampled_from(("put", "update", "delete", "put", "update", "expire")),
        key=st.integers(0, keys - 1),
        # Often a clock that stands still: equal conflict values within a region and, with equal or
        # compensating skews, across regions (a tie between the last writes decides the winner).
        tick=st.sampled_from((0, 1, 0, 2)),
        payload=st.integers(0, 15),
    )


def bursts(keys: int) -> st.SearchStrategy[Burst]:
    return st.builds(
        Burst,
        regions=st.lists(_regions(), min_size=2, max_size=len(REGIONS), unique=True).map(tuple),
        key=st.integers(0, keys - 1),
        payload=st.integers(0, 15),
    )


def restores(keys: int) -> st.SearchStrategy[Restore]:
    return st.builds(Restore, src=_regions(), dst=_regions(), key=st.integers(0, keys - 1))


def delivers() -> st.SearchStrategy[Deliver]:
    return st.builds(Deliver, region=_regions(), steps=st.integers(1, 3))


def faults() -> st.SearchStrategy[Fault]:
    # One strategy (not a one_of per kind): hypothesis flattens nested one_of branches, which would make
    # faults as common as writes. ``arg`` is the count of duplicate/crash/throttle and ignored otherwise.
    return st.builds(Fault, kind=st.sampled_from(FAULT_KINDS), region=_regions(), arg=st.integers(1, 4))


def programs(chosen: Profile) -> st.SearchStrategy[Program]:
    """Programs of ``chosen``'s size: per operation about 36% single writes, 9% concurrent bursts, 9%
    restores from a backup, 27% delivery steps and 18% faults."""
    # Each branch of one_of is equally likely: repeating a branch weights it.
    w, b, d, f, r = writes(chosen.keys), bursts(chosen.keys), delivers(), faults(), restores(chosen.keys)
    op = st.one_of(w, d, w, f, d, w, b, d, w, f, r)
    # Skews between -2 and +2 clock units, or none at all: with ticks of 0-2 the regions' conflict values
    # often meet, and a region whose clock is behind writes values that lose to older writes elsewhere.
    skews = st.one_of(st.just((0,) * len(REGIONS)), st.tuples(*(st.integers(-2, 2) for _ in REGIONS)))
    return st.builds(Program, skews=skews, ops=st.lists(op, min_size=chosen.min_ops, max_size=chosen.max_ops).map(tuple))
