"""The filtered replica's exhaustive tie test with TTL deletes skipped (review r15a): a file of its own so
that pytest-xdist can run it beside test_transform_ties_exhaustive.py (each takes tens of seconds)."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

from replicator.transform import Transform, with_digest

from test_ordered_ties_exhaustive import schedules, ttl_variants
from test_transform_ties_exhaustive import FILTERED, REPORTED, image, replay


def test_with_ttl_deletes_skipped_a_filtered_replica_ends_at_the_last_replicated_state_or_is_reported() -> None:
    """As test_ordered_ties_exhaustive's TTL test, for the filtered replica: TTL deletes are not replicated,
    so the replica ends at the transform of the state the last other change left (or the item is reported
    for repair: a settle that finds no source item cannot tell a TTL delete from another delete).

    One more outcome is allowed, on both change sources (docs/architecture.md): an item the source expired
    and then re-created in a state that does not match, in another batch, lingers in the replica as it was
    before its expiry (the re-creation's batch matches nowhere and is skipped, so that the replica never
    learns of items it never held) until the replica's own TTL deletes it, as it deletes any expired item
    with TTL deletes skipped. Only an expired state may linger, and only where nothing should be held."""
    spec = with_digest(FILTERED)
    transform = Transform.from_spec(spec, None, ["pk"])
    checked, wrong = 0, []
    with ThreadPoolExecutor(2) as pool:
        for length in (1, 2, 3):
            for walk in itertools.product((None, "A", "B"), repeat=length + 1):
                if any(a == b for a, b in zip(walk, walk[1:])):
                    continue
                for by_ttl, last_replicated in ttl_variants(walk):
                    expected = transform.apply(image(last_replicated))
                    expired = [transform.apply(image(walk[i])) for i in range(length) if by_ttl[i]]
                    for times, batches in schedules(length):
                        checked += 1
                        got = replay(walk, times, batches, pool, spec, by_ttl)
                        lingers = expected is None and got in expired
                        if got != REPORTED and got != expected and not lingers:
                            wrong.append((walk, by_ttl, times, batches, got))
    assert not wrong, f"{len(wrong)} of {checked} schedules diverged, e.g. {wrong[:3]}"
    assert checked > 5_000
