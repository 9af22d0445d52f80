"""``verify --repair --conflict-attribute`` on DynamoDB Local, with every region's real replicator.

The regions, streams and replicators are those of tests/cli/test_redrive_multi_active.py (its ``world``
fixture). A lost record is a real stream record that its region's replicator never receives (read and thrown
away, as after a batch that went to a failure destination nobody redrove). The repair runs through
:func:`run_verify` as the command does; afterwards the target's replicator must take the repair's write for an
echo (skipped, never sent on, rule 3), and after every replicator ran until quiet the regions must agree
(rule 4), with deletes versioned (rule 5).
"""

from __future__ import annotations

from typing import Any

import pytest

from cdk_replication.cli.conditions import LastWriterWins
from cdk_replication.cli.repair import KEPT, REPAIRED
from cdk_replication.cli.verify import VerifyOptions, run_verify

from .test_redrive_multi_active import (  # noqa: F401  (world is a fixture)
    DELETED,
    EAST,
    ORIGIN,
    SYDNEY,
    WEST,
    FakeContext,
    World,
    _processor,
    marker_parts,
    world,
)


def repair(w: World, source: str, target: str, dry_run: bool = False) -> dict[str, tuple[str, str | None]]:
    """``verify SOURCE TARGET --repair --conflict-attribute updatedAt``: outcome and reason per ``pk``."""
    options = VerifyOptions(segments=1, workers=2, repair=True, dry_run=dry_run,
                            conflict=LastWriterWins("updatedAt"))
    src, dst = w[source].handle, w[target].handle
    assert src is not None and dst is not None
    result = run_verify(src, dst, options, show_progress=False)
    assert result.repair is not None, "no difference found"
    report = result.repair
    return {
        dst.info.key.key_from_id(k)["pk"]["S"]: (outcome, report.reasons.get(k))
        for k, outcome in report.outcomes.items()
    }


def lose(w: World, region: str) -> list[dict[str, Any]]:
    """``region``'s new stream records, taken away from its replicator (returned, to deliver later if wanted)."""
    return w[region].new_records()


def agree(w: World, *regions: str) -> None:
    values = [w[r].live("k") for r in regions]
    assert all(v == values[0] for v in values), values


# --- rule 4: ties -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source, target", [(EAST, WEST), (WEST, EAST)])
def test_a_tie_goes_to_the_greater_region_id_as_the_replicator_decides(world, source, target):
    """Both regions wrote version 100; us-east-1's record to eu-west-1 was lost, so us-east-1 kept its own
    (it won the tie) and eu-west-1 kept its own: different for good. The repair from us-east-1 must write it
    (the replicator's winner); the one from eu-west-1 must keep us-east-1's."""
    w = world([EAST, WEST])
    w[EAST].put("k", 100, v={"S": EAST})
    lose(w, EAST)
    w[WEST].put("k", 100, v={"S": WEST})
    w.pump()  # eu-west-1's write loses the tie in us-east-1
    assert w[EAST].live("k")["v"] == {"S": EAST} and w[WEST].live("k")["v"] == {"S": WEST}

    outcome, _ = repair(w, source, target)["k"]

    assert outcome == (REPAIRED if source == EAST else KEPT)
    assert w[EAST].live("k")["v"] == {"S": EAST}
    w.assert_echo_only(target)
    if source == WEST:
        assert repair(w, EAST, WEST)["k"][0] == REPAIRED  # the other direction brings the winner
        w.assert_echo_only(WEST)
    w.pump()
    agree(w, EAST, WEST)


# --- rule 3: the repair's write carries the replicator's markers and is never sent back ------------------------


def test_a_repaired_item_carries_the_markers_and_comes_back_as_an_echo(world):
    w = world([EAST, WEST])
    w[EAST].put("k", 100, v={"S": "one"})
    w.pump()
    w[EAST].put("k", 200, v={"S": "two"}, b={"B": b"\x00\xff"})
    lose(w, EAST)

    assert repair(w, EAST, WEST)["k"][0] == REPAIRED

    item = w[WEST].get("k")
    assert item[ORIGIN] == {"S": EAST} and item["v"] == {"S": "two"}
    w.assert_echo_only(WEST)  # planned as skipped by eu-west-1's replicator: nothing re-sent to us-east-1
    agree(w, EAST, WEST)


def test_a_third_regions_write_is_sent_with_its_own_origin(world):
    """us-east-1 holds Sydney's newer write (it arrived by replication); Sydney's record to eu-west-1 was lost.
    The repair sends it as Sydney's replicator does: Sydney's origin and stream sequence, not us-east-1's."""
    w = world([EAST, WEST, SYDNEY], targets={SYDNEY: [EAST]})  # Sydney -> eu-west-1 is lost
    w[SYDNEY].put("k", 500, v={"S": "sydney"})
    sydney = w[SYDNEY].new_records()
    assert w[SYDNEY].deliver(sydney) == {"batchItemFailures": []}
    w.pump()

    assert repair(w, EAST, WEST)["k"][0] == REPAIRED

    item = w[WEST].get("k")
    assert item[ORIGIN] == {"S": SYDNEY}
    assert int(marker_parts(item)[1]) == int(sydney[-1]["dynamodb"]["SequenceNumber"])
    w.assert_echo_only(WEST)
    agree(w, EAST, WEST, SYDNEY)


def test_an_unstamped_write_of_an_unraised_version_is_placed_after_the_targets_copy(world):
    """us-east-1 wrote version 100 twice (the application did not raise it); the second record was lost. The
    replicator would order the second after the first by us-east-1's stream; with no record at hand the repair
    places it just after the target's copy of the first (a lower bound of its own sequence), so it wins there,
    its own record (delivered late) still settles it, and a later write of us-east-1 still wins."""
    w = world([EAST, WEST])
    w[EAST].put("k", 100, v={"S": "first"})
    w.pump()
    first_sequence = int(marker_parts(w[WEST].get("k"))[1])
    w[EAST].put("k", 100, v={"S": "second"})
    late = lose(w, EAST)

    assert repair(w, EAST, WEST)["k"][0] == REPAIRED

    assert w[WEST].live("k")["v"] == {"S": "second"}
    assert int(marker_parts(w[WEST].get("k"))[1]) == first_sequence + 1
    w.assert_echo_only(WEST)
    assert w[EAST].deliver(late) == {"batchItemFailures": []}  # the lost record after all
    assert int(marker_parts(w[WEST].get("k"))[1]) == int(late[-1]["dynamodb"]["SequenceNumber"])
    w[EAST].put("k", 100, v={"S": "third"})
    w.pump()
    agree(w, EAST, WEST)
    assert w[WEST].live("k")["v"] == {"S": "third"}


def test_a_target_item_with_a_conflict_value_that_is_not_a_number_is_replaced(world):
    """The replicator orders a state without a usable version before every versioned one and overwrites it."""
    w = world([EAST, WEST])
    w[EAST].put("k", 100, v={"S": "east"})
    lose(w, EAST)
    w[WEST].client.put_item(TableName=w[WEST].name, Item={"pk": {"S": "k"}, "updatedAt": {"S": "soon"}})
    lose(w, WEST)  # its replicator refuses that write (InvalidConflictAttribute) and reports it

    assert repair(w, EAST, WEST)["k"][0] == REPAIRED

    assert w[WEST].live("k") == w[EAST].live("k")
    w.assert_echo_only(WEST)


# --- rule 5: deletes ----------------------------------------------------------------------------------------


def tombstone_not_delivered(w: World, version: int) -> None:
    """us-east-1 writes ``k`` (replicated everywhere), then deletes it; its tombstone reaches Sydney only."""
    w[EAST].put("k", version, v={"S": "deleted"})
    w.pump()
    w[EAST].delete("k")
    partial = _processor(w[EAST], [w[SYDNEY]])
    try:
        assert partial.process({"Records": w[EAST].new_records()}, FakeContext()) == {"batchItemFailures": []}
    finally:
        partial.close()
    w.pump()  # the tombstone's echoes
    assert DELETED in w[EAST].get("k") and w[WEST].live("k") is not None


def test_the_sources_tombstone_deletes_an_older_target_item(world):
    w = world([EAST, WEST, SYDNEY])
    tombstone_not_delivered(w, 100)

    outcome, reason = repair(w, EAST, WEST)["k"]

    assert outcome == REPAIRED, reason
    item = w[WEST].get("k")
    assert item[DELETED] == {"BOOL": True} and item["updatedAt"] == {"N": "100"} and item[ORIGIN] == {"S": EAST}
    assert "v" not in item
    assert marker_parts(item)[5] == marker_parts(w[EAST].get("k"))[5]  # the same logical expiry everywhere
    w.assert_echo_only(WEST)
    agree(w, EAST, WEST, SYDNEY)


def test_the_sources_tombstone_never_deletes_a_newer_target_write(world):
    w = world([EAST, WEST, SYDNEY])
    tombstone_not_delivered(w, 100)
    w[WEST].put("k", 300, v={"S": "west-newer"})

    outcome, reason = repair(w, EAST, WEST)["k"]

    assert outcome == KEPT and "orders after" in reason
    assert w[WEST].live("k")["v"] == {"S": "west-newer"}
    w.pump()
    agree(w, EAST, WEST, SYDNEY)


def test_the_sources_tombstone_is_read_with_the_sources_ttl_attribute(world):
    """us-east-1's tombstones expire on its own TTL attribute ``expiresAt``; eu-west-1 has none (the default
    ``_rep_expiresAt``). Read with the target's attribute, the source's tombstone would not match its marker and
    be sent as a live write of version 100 (a resurrection); it is sent as the delete, expiring on eu-west-1's
    attribute."""
    w = world([EAST, WEST, SYDNEY])
    w[EAST].client.update_time_to_live(TableName=w[EAST].name, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expiresAt"})
    w[EAST].put("k", 100, v={"S": "deleted"})
    w.pump()
    w[EAST].delete("k")
    east = _processor(w[EAST], [w[SYDNEY]], REPLICATION_TTL_ATTRIBUTE="expiresAt")
    try:  # us-east-1's replicator writes its tombstone; eu-west-1 never gets the delete
        assert east.process({"Records": lose(w, EAST)}, FakeContext()) == {"batchItemFailures": []}
    finally:
        east.close()
    lose(w, EAST), lose(w, SYDNEY)
    assert DELETED in w[EAST].get("k") and "expiresAt" in w[EAST].get("k")

    outcome, reason = repair(w, EAST, WEST)["k"]

    assert outcome == REPAIRED, reason
    item = w[WEST].get("k")
    assert item[DELETED] == {"BOOL": True} and item["updatedAt"] == {"N": "100"} and "v" not in item
    assert "expiresAt" not in item and "_rep_expiresAt" in item
    w.assert_echo_only(WEST)


def test_an_item_only_in_the_target_is_kept_and_a_dry_run_writes_nothing(world):
    w = world([EAST, WEST])
    w[WEST].put("k", 100, v={"S": "west only"})
    lose(w, WEST)

    outcome, reason = repair(w, EAST, WEST, dry_run=True)["k"]
    assert outcome == KEPT and "only in the target" in reason
    assert repair(w, EAST, WEST)["k"][0] == KEPT
    assert w[WEST].live("k")["v"] == {"S": "west only"}
    assert w[WEST].new_records() == []
