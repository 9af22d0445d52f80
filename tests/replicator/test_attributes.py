"""Pure unit tests of the event-to-wire conversion, keys, digests and item sizes."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdk_replication.local.stream_records import to_json_attribute_value
from replicator.attributes import (
    MAX_ITEM_BYTES,
    InvalidAttributeValue,
    digest,
    from_event_image,
    from_event_value,
    item_key,
    item_size,
    key_for_log,
    key_item,
)

numbers = st.decimals(allow_nan=False, allow_infinity=False, places=None).map(lambda d: format(d, "f")).filter(
    lambda s: len(s.replace("-", "").replace(".", "").strip("0")) <= 38
)
scalars = st.one_of(
    st.text().map(lambda s: {"S": s}),
    st.binary().map(lambda b: {"B": b}),
    numbers.map(lambda n: {"N": n}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.sets(st.text(), min_size=1, max_size=4).map(lambda s: {"SS": sorted(s)}),
    st.sets(st.binary(), min_size=1, max_size=4).map(lambda s: {"BS": sorted(s)}),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda l: {"L": l}),
        st.dictionaries(st.text(max_size=5), inner, max_size=4).map(lambda m: {"M": m}),
    ),
    max_leaves=12,
)


@given(values)
def test_event_json_round_trips_to_wire_form(value):
    assert from_event_value(to_json_attribute_value(value)) == value


def test_numbers_keep_every_digit_and_binary_becomes_bytes():
    n = "-0.00000000000000000000000000000000000012345678901234567890123456789012345678"
    assert from_event_value({"N": n}) == {"N": n}
    image = {"b": {"BS": [base64.b64encode(b"\x00").decode(), ""]}, "m": {"M": {}}, "s": {"S": ""}}
    assert from_event_image(image) == {"b": {"BS": [b"\x00", b""]}, "m": {"M": {}}, "s": {"S": ""}}


@pytest.mark.parametrize("bad", [{}, {"S": "a", "N": "1"}, {"X": 1}, {"B": "***"}, {"B": 5}])
def test_invalid_values_are_rejected(bad):
    with pytest.raises(InvalidAttributeValue):
        from_event_value(bad)


def test_keys_are_hashable_and_round_trip():
    item = {"pk": {"B": b"\x01"}, "sk": {"N": "5"}, "other": {"S": "x"}}
    key = item_key(item, ("pk", "sk"))
    assert hash(key) == hash(item_key(dict(reversed(item.items())), ("pk", "sk")))
    assert key_item(key) == {"pk": {"B": b"\x01"}, "sk": {"N": "5"}}
    assert key_for_log(key) == {"pk": {"B": "AQ=="}, "sk": {"N": "5"}}
    with pytest.raises(InvalidAttributeValue, match="'sk'"):
        item_key({"pk": {"S": "a"}}, ("pk", "sk"))


def test_digest_ignores_order_of_sets_maps_and_number_spelling():
    a = {"x": {"SS": ["a", "b"]}, "m": {"M": {"p": {"N": "1.50"}, "q": {"BS": [b"\x01", b"\x02"]}}}}
    b = {"m": {"M": {"q": {"BS": [b"\x02", b"\x01"]}, "p": {"N": "1.5"}}}, "x": {"SS": ["b", "a"]}}
    assert digest(a, "us-east-1") == digest(b, "us-east-1")
    assert digest(a, "us-east-1") != digest(a, "eu-west-1")
    assert digest(a) != digest({**a, "x": {"SS": ["a"]}})
    assert digest({"v": {"S": "1"}}) != digest({"v": {"N": "1"}})
    assert len(digest(a)) == 22


def test_item_size_follows_dynamodb_rules():
    assert item_size({"ab": {"S": "xyz"}}) == 5
    assert item_size({"b": {"B": b"\x00" * 10}}) == 11
    assert item_size({"n": {"N": "12345"}}) == 1 + 4  # 5 significant digits: 3 bytes + 1
    assert item_size({"n": {"N": "1000000"}}) == 1 + 2  # trailing zeros do not count
    assert item_size({"f": {"BOOL": True}, "z": {"NULL": True}}) == 4
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + 1 + 1 + 1
    assert item_size({"big": {"S": "x" * MAX_ITEM_BYTES}}) > MAX_ITEM_BYTES


#: Number shapes whose size DynamoDB counts in base-100 digits aligned on the decimal point (issue 10 review:
#: item_size under-counted "1.1", "-1", "-12.5", a number set and a map by 1-2 bytes).
NUMBER_SHAPES = [
    {"N": "1.1"},
    {"N": "-1"},
    {"N": "-12.5"},
    {"N": "123"},
    {"N": "0"},
    {"N": "0.001"},
    {"N": "12.34"},
    {"N": "1000000"},
    {"N": "-0.5"},
    {"N": "99999999999999999999999999999999999999"},
    {"N": "-12345678901234567890123456789012345678"},
    {"N": "1.2345678901234567890123456789012345678"},
    {"N": "1E+125"},
    {"N": "-1.5E-100"},
    {"NS": ["1.1", "2.1"]},
    {"M": {"a": {"N": "1.1"}}},
    {"L": [{"N": "-12.5"}, {"N": "7"}]},
]


def test_item_size_of_numbers_matches_dynamodb_locals_limit(ddb_local):
    """An item ``item_size`` puts at exactly 400 KB is accepted and one byte more is refused, for each shape."""
    from rep_helpers import create_table

    table = create_table(ddb_local, "size", "us-east-1", stream=False)

    def accepted(item: dict) -> bool:
        try:
            table.client.put_item(TableName=table.name, Item=item)
        except table.client.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "ValidationException", exc
            return False
        return True

    wrong = []
    for shape in NUMBER_SHAPES:
        base = {"pk": {"S": "k"}, "n": shape}
        pad = MAX_ITEM_BYTES - item_size({**base, "p": {"S": ""}})
        exact, over = {**base, "p": {"S": "x" * pad}}, {**base, "p": {"S": "x" * (pad + 1)}}
        assert item_size(exact) == MAX_ITEM_BYTES
        if not (accepted(exact) and not accepted(over)):
            wrong.append(shape)
    assert not wrong, f"item_size differs from DynamoDB Local for {wrong}"
