"""The chaos oracle itself: the documented last-writer-wins order, on hand-made states (no DynamoDB)."""

from __future__ import annotations

from .model import Model, canon_item, canon_value


def _item(key: str, version: str, **attrs: dict[str, str]) -> dict[str, dict[str, str]]:
    return {"pk": {"S": key}, "updatedAt": {"N": version}, **attrs}


def test_the_highest_conflict_value_wins_whatever_the_region() -> None:
    model = Model()
    model.record_write("us-east-1", 0, _item("k", "5"))
    model.record_write("ap-southeast-2", 1, _item("k", "7"))
    winner = model.winner("k")
    assert winner is not None and (winner.region, winner.version) == ("ap-southeast-2", 7)


def test_equal_values_go_to_the_greater_region_id_then_to_the_later_write() -> None:
    model = Model()
    model.record_write("eu-west-1", 0, _item("k", "5", v={"S": "west"}))
    model.record_write("us-east-1", 1, _item("k", "5", v={"S": "east-1"}))
    model.record_write("ap-southeast-2", 2, _item("k", "5", v={"S": "sydney"}))
    model.record_write("us-east-1", 3, _item("k", "5", v={"S": "east-2"}))
    winner = model.winner("k")
    assert winner is not None and dict(winner.user)["v"] == ("S", "east-2")


def test_a_delete_is_versioned_by_the_item_it_removed_and_wins_ties() -> None:
    model = Model()
    model.record_write("eu-west-1", 0, _item("k", "5"))
    model.record_delete("ap-southeast-2", 1, _item("k", "5"))  # removed version 5
    model.record_write("us-east-1", 2, _item("k", "5"))  # same version, greater region: still loses
    model.record_write("us-east-1", 3, _item("k", "4"))  # late and older: must not resurrect
    winner = model.winner("k")
    assert winner is not None and winner.deleted and winner.version == 5
    model.record_write("eu-west-1", 4, _item("k", "6"))  # newer: beats the delete
    winner = model.winner("k")
    assert winner is not None and not winner.deleted


def test_values_compare_exactly() -> None:
    assert canon_value({"N": "2.50"}) == canon_value({"N": "2.5"})
    assert canon_value({"N": "12345678901234567890123456789012345678"}) != canon_value(
        {"N": "12345678901234567890123456789012345679"}
    )
    assert canon_value({"NS": ["-3e10", "1"]}) == canon_value({"NS": ["1", "-30000000000"]})
    assert canon_value({"B": b"\x00"}) != canon_value({"B": b"\x00\x00"})
    assert canon_value({"S": ""}) != canon_value({"NULL": True})
    assert canon_item({"pk": {"S": "k"}, "_rep_origin": {"S": "x"}}) == canon_item({"pk": {"S": "k"}})
