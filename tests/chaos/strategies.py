"""Hypothesis strategies for chaos programs, and the fast and long profiles (``CHAOS_PROFILE``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import strategies as st

from .chaos_app import REGIONS
from .harness import Deliver, Fault, Program, Write


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
    "fast": Profile("fast", examples=12, min_ops=30, max_ops=80, keys=4, derandomize=True),
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
        kind=st.sampled_from(("put", "update", "delete")),
        key=st.integers(0, keys - 1),
        # Mostly a clock that moves, sometimes one that stands still (ties within a region, and with the
        # skews, across regions).
        tick=st.sampled_from((1, 0, 2, 1)),
        payload=st.integers(0, 15),
    )


def delivers() -> st.SearchStrategy[Deliver]:
    return st.builds(Deliver, region=_regions(), steps=st.integers(1, 3))


def faults() -> st.SearchStrategy[Fault]:
    return st.one_of(
        st.builds(Fault, kind=st.just("duplicate"), region=_regions(), arg=st.integers(1, 3)),
        st.builds(Fault, kind=st.just("replay_last"), region=_regions()),
        st.builds(Fault, kind=st.just("crash"), region=_regions(), arg=st.integers(1, 4)),
        st.builds(Fault, kind=st.just("throttle"), region=_regions(), arg=st.integers(1, 3)),
        st.builds(Fault, kind=st.just("pause"), region=_regions()),
        st.builds(Fault, kind=st.just("resume"), region=_regions()),
        # Re-reads the region's whole stream, earlier examples included: costly, so rarer (one branch of six
        # within the faults, which are themselves one operation in five).
        st.builds(Fault, kind=st.just("replay_all"), region=_regions()),
    )


def programs(chosen: Profile) -> st.SearchStrategy[Program]:
    """Programs of ``chosen``'s size: about 55% writes, 30% delivery steps, 15% faults."""
    op = st.one_of(writes(chosen.keys), writes(chosen.keys), delivers(), writes(chosen.keys), delivers(),
                   writes(chosen.keys), faults())
    # Skews between -3 and +3 clock units: with ticks of 0-2 the regions' conflict values often meet.
    skews = st.tuples(*(st.integers(-3, 3) for _ in REGIONS))
    return st.builds(Program, skews=skews, ops=st.lists(op, min_size=chosen.min_ops, max_size=chosen.max_ops).map(tuple))
