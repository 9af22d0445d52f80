"""Unit tests of the replica transform engine (lambda_src/replicator/transform.py): filter, projection, masks.

The filter is checked against an independent reference evaluation written over Python values here (and, in
test_transform_reference.py, against DynamoDB Local's own FilterExpression).
"""

from __future__ import annotations

import base64
import decimal
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.transform import (
    Transform,
    TransformError,
    compile_condition,
    hmac_value,
    spec_digest,
    with_digest,
)

KEY = b"pinned-test-key"


def spec(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"version": 1, "filter": None, "keep": None, "drop": None, "masks": {}, "secretArn": None}
    base.update(fields)
    return with_digest(base)


# --- strategies -----------------------------------------------------------------------------------------------

numbers = st.decimals(allow_nan=False, allow_infinity=False, places=None).map(lambda d: format(d, "f")).filter(
    lambda s: len(s.replace("-", "").replace(".", "").strip("0")) <= 38
)
small_text = st.text(alphabet=st.sampled_from("ab\u00e9\uffff\U0001F600"), max_size=3)
scalars = st.one_of(
    small_text.map(lambda s: {"S": s}),
    st.binary(max_size=3).map(lambda b: {"B": b}),
    st.sampled_from(["0", "1", "1.0", "-1", "2.5", "10", "99999999999999999999999999999999999999"]).map(
        lambda n: {"N": n}
    ),
    numbers.map(lambda n: {"N": n}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.sets(small_text, min_size=1, max_size=3).map(lambda s: {"SS": sorted(s)}),
    st.sets(st.sampled_from(["1", "2", "3.5"]), min_size=1, max_size=3).map(lambda s: {"NS": sorted(s)}),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda l: {"L": l}),
        st.dictionaries(st.sampled_from("xyz"), inner, max_size=3).map(lambda m: {"M": m}),
    ),
    max_leaves=6,
)
ATTRS = ["a", "b", "c"]
images = st.fixed_dictionaries({"pk": st.just({"S": "k"})}, optional={a: values for a in ATTRS})


def _json_value(value: dict[str, Any]) -> dict[str, Any]:
    """A wire-form value in the spec's JSON notation (binary as base64)."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "M":
        return {"M": {k: _json_value(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_json_value(v) for v in inner]}
    return {kind: inner}


def conditions_from(values: st.SearchStrategy[Any], scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Filter conditions over :data:`ATTRS` whose operands are drawn from ``values`` (``scalars`` for the
    ordered operators and ``in``)."""
    return st.recursive(
        st.one_of(
            st.builds(lambda op, a, v: {"op": op, "attr": a, "value": _json_value(v)},
                      st.sampled_from(["eq", "ne"]), st.sampled_from(ATTRS), values),
            st.builds(lambda op, a, v: {"op": op, "attr": a, "value": _json_value(v)},
                      st.sampled_from(["lt", "le", "gt", "ge"]), st.sampled_from(ATTRS),
                      scalars.filter(lambda v: next(iter(v)) in ("S", "N", "B"))),
            st.builds(lambda a, v: {"op": "begins_with", "attr": a, "value": _json_value(v)},
                      st.sampled_from(ATTRS), scalars.filter(lambda v: next(iter(v)) in ("S", "B"))),
            st.builds(lambda a, vs: {"op": "in", "attr": a, "values": [_json_value(v) for v in vs]},
                      st.sampled_from(ATTRS), st.lists(scalars, min_size=1, max_size=3)),
            st.builds(lambda op, a: {"op": op, "attr": a}, st.sampled_from(["exists", "not_exists"]),
                      st.sampled_from(ATTRS)),
        ),
        lambda inner: st.one_of(
            st.builds(lambda op, args: {"op": op, "args": args}, st.sampled_from(["and", "or"]),
                      st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda arg: {"op": "not", "arg": arg}, inner),
        ),
        max_leaves=5,
    )


conditions = conditions_from(values, scalars)


# --- an independent reference evaluation ----------------------------------------------------------------------


def _py(value: dict[str, Any]) -> Any:
    """A wire-form value as a Python value whose ``==`` is DynamoDB's (type-tagged)."""
    ((kind, inner),) = value.items()
    if kind == "N":
        return ("N", decimal.Decimal(inner))
    if kind == "B":
        return ("B", bytes(inner))
    if kind == "NS":
        return ("NS", frozenset(decimal.Decimal(n) for n in inner))
    if kind in ("SS", "BS"):
        return (kind, frozenset(inner))
    if kind == "M":
        return ("M", frozenset((k, _py(v)) for k, v in inner.items()))
    if kind == "L":
        return ("L", tuple(_py(v) for v in inner))
    return (kind, inner)


def _spec_py(value: dict[str, Any]) -> Any:
    """A spec value (binary as base64) as :func:`_py` gives it."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return ("B", base64.b64decode(inner))
    if kind == "BS":
        return ("BS", frozenset(base64.b64decode(b) for b in inner))
    if kind in ("M", "L"):
        return _py(_wire(value))
    return _py(value)


def _wire(value: dict[str, Any]) -> dict[str, Any]:
    """A spec value in wire form."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "M":
        return {"M": {k: _wire(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_wire(v) for v in inner]}
    return {kind: inner}


def reference(node: dict[str, Any], image: dict[str, Any]) -> bool:
    op = node["op"]
    if op == "and":
        return all(reference(a, image) for a in node["args"])
    if op == "or":
        return any(reference(a, image) for a in node["args"])
    if op == "not":
        return not reference(node["arg"], image)
    present = node["attr"] in image
    if op in ("exists", "not_exists"):
        return present == (op == "exists")
    if not present:
        return op == "ne"
    have = _py(image[node["attr"]])
    if op == "in":
        return any(have == _spec_py(v) for v in node["values"])
    want = _spec_py(node["value"])
    if op in ("eq", "ne"):
        return (have == want) == (op == "eq")
    if have[0] != want[0]:
        return False
    x, y = have[1], want[1]
    if have[0] == "S":
        x, y = x.encode("utf-8"), y.encode("utf-8")
    if op == "begins_with":
        return x.startswith(y)
    return {"lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y}[op]


@settings(max_examples=400, deadline=None)
@given(conditions, images)
def test_filter_agrees_with_reference(condition: dict[str, Any], image: dict[str, Any]) -> None:
    t = Transform.from_spec(spec(filter=condition), None)
    assert t.matches(image) == reference(condition, image)
    assert (t.apply(image) is None) == (not reference(condition, image))


def test_numbers_compare_with_all_38_digits() -> None:
    big = "12345678901234567890123456789012345678"
    bigger = "12345678901234567890123456789012345679"
    t = Transform.from_spec(spec(filter={"op": "lt", "attr": "a", "value": {"N": bigger}}), None)
    assert t.matches({"a": {"N": big}})
    assert not t.matches({"a": {"N": bigger}})
    eq = Transform.from_spec(spec(filter={"op": "eq", "attr": "a", "value": {"N": "1.50"}}), None)
    assert eq.matches({"a": {"N": "1.5"}})


def test_strings_compare_bytewise_in_utf8() -> None:
    # U+FFFF sorts before U+1F600 in UTF-8 (EF.. < F0..) but after it in UTF-16; DynamoDB uses UTF-8.
    t = Transform.from_spec(spec(filter={"op": "gt", "attr": "a", "value": {"S": "\uffff"}}), None)
    assert t.matches({"a": {"S": "\U0001F600"}})


def test_type_mismatch_is_not_matching_never_an_error() -> None:
    gt = Transform.from_spec(spec(filter={"op": "gt", "attr": "a", "value": {"N": "1"}}), None)
    ne = Transform.from_spec(spec(filter={"op": "ne", "attr": "a", "value": {"N": "1"}}), None)
    for image in ({"a": {"S": "5"}}, {"a": {"SS": ["5"]}}, {"a": {"NULL": True}}, {}):
        assert not gt.matches(image)
        assert ne.matches(image)  # DynamoDB's <> holds for a missing attribute and another type


# --- projection and masks ---------------------------------------------------------------------------------------


@given(images, st.sets(st.sampled_from(["pk", *ATTRS])), st.booleans())
def test_key_attributes_are_always_kept(image: dict[str, Any], names: set[str], keep: bool) -> None:
    listed = sorted(names - {"pk"})
    projection = {"keep": listed} if keep else {"drop": listed}
    t = Transform.from_spec(spec(**projection, masks={"pk": {"kind": "hmac"}}), KEY, key_names=["pk"])
    out = t.apply(image)
    assert out is not None and out["pk"] == t.key({"pk": image["pk"]})["pk"]
    assert set(out) <= set(image)
    for name in ATTRS:
        kept = (name in names) == keep
        assert (name in out) == (kept and name in image)


SECRET = "SECRET-"
secret_scalars = st.one_of(
    small_text.map(lambda s: {"S": SECRET + s}),
    st.binary(max_size=3).map(lambda b: {"B": SECRET.encode() + b}),
    st.sets(small_text, min_size=1, max_size=3).map(lambda s: {"SS": sorted(SECRET + x for x in s)}),
)
secret_values = st.recursive(
    secret_scalars,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda l: {"L": l}),
        st.dictionaries(st.sampled_from("xyz"), inner, min_size=1, max_size=3).map(lambda m: {"M": m}),
    ),
    max_leaves=5,
)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries({a: secret_values for a in ATTRS}),
    st.fixed_dictionaries({a: st.sampled_from(["hmac", "redact", "remove"]) for a in ATTRS}),
)
def test_a_masked_raw_value_appears_nowhere_in_the_output(raw: dict[str, Any], kinds: dict[str, str]) -> None:
    masks = {a: {"kind": k, **({"value": {"S": "REDACTED"}} if k == "redact" else {})} for a, k in kinds.items()}
    t = Transform.from_spec(spec(masks=masks), KEY, key_names=["pk"])
    image = {"pk": {"S": "k"}, "plain": {"S": "visible"}, **raw}
    out = t.apply(image)
    assert out is not None and out["plain"] == {"S": "visible"}
    for leaf in _leaves(out):
        text = leaf.decode("latin-1") if isinstance(leaf, bytes) else str(leaf)
        assert SECRET not in text, (leaf, out)


@given(images, images)
def test_masking_is_deterministic_and_equal_inputs_join(first: dict[str, Any], second: dict[str, Any]) -> None:
    masks = {a: {"kind": "hmac"} for a in ATTRS}
    one = Transform.from_spec(spec(masks=masks), KEY)
    two = Transform.from_spec(json.loads(json.dumps(spec(masks=masks))), KEY)
    assert one.apply(first) == two.apply(first)
    for a in set(first) & set(second) & set(ATTRS):
        out_first, out_second = one.apply(first), one.apply(second)
        assert out_first and out_second
        same = _py(first[a]) == _py(second[a])
        assert (out_first[a] == out_second[a]) == same


def test_hmac_outputs_are_pinned() -> None:
    """The encoding is part of the data: a change would re-key every masked replica (rotation docs)."""
    expected = hmac.new(KEY, b'["S","alice@example.com"]', hashlib.sha256).hexdigest()
    assert hmac_value(KEY, {"S": "alice@example.com"}) == {"S": expected}
    assert expected == "626b504fbad19d3512fa17fe356c92c42dcdf0b0d50130e7d840cc05367171c5"
    assert hmac_value(KEY, {"N": "1.50"}) == {"N": "43576821372915732017360071650224533972"}
    assert hmac_value(KEY, {"N": "1.5"}) == hmac_value(KEY, {"N": "1.50"})
    assert hmac_value(KEY, {"B": b"\x00\x01"})["B"][:4] == b"pr\x02\x9d"
    assert hmac_value(KEY, {"BOOL": True}) == {
        "S": "236114f4a40890af9d14e68628ab2b3d1ec6fad25168b9aa49485b3811c49ae4"
    }


@given(values)
def test_hmac_keeps_key_types_and_number_range(value: dict[str, Any]) -> None:
    out = hmac_value(KEY, value)
    kind = next(iter(value))
    if kind in ("S", "N", "B", "SS", "NS", "BS"):
        assert next(iter(out)) == kind
    else:
        assert next(iter(out)) == "S"
    if kind == "N":
        assert out["N"].isdigit() and len(out["N"]) <= 38
    if kind in ("SS", "NS", "BS"):
        assert len(set(out[kind])) == len(value[kind])
    assert hmac_value(b"another key", value) != out


def test_key_maps_a_source_key_to_the_replica_key() -> None:
    t = Transform.from_spec(spec(masks={"pk": {"kind": "hmac"}, "email": {"kind": "hmac"}}), KEY, ["pk", "sk"])
    key = t.key({"pk": {"N": "7"}, "sk": {"S": "x"}})
    assert key == {"pk": hmac_value(KEY, {"N": "7"}), "sk": {"S": "x"}}
    assert t.apply({"pk": {"N": "7"}, "sk": {"S": "x"}, "email": {"S": "e"}}) == {
        **key, "email": hmac_value(KEY, {"S": "e"})
    }


def test_redact_and_remove() -> None:
    t = Transform.from_spec(
        spec(masks={"name": {"kind": "redact", "value": {"S": "REDACTED"}}, "address": {"kind": "remove"}}), None
    )
    out = t.apply({"pk": {"S": "k"}, "name": {"S": "Bob"}, "address": {"M": {"x": {"S": "1 Rd"}}}})
    assert out == {"pk": {"S": "k"}, "name": {"S": "REDACTED"}}
    assert not Transform.needs_secret(t.spec)


# --- spec checks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "key", "message"),
    [
        ({"filter": {"op": "contains", "attr": "a", "value": {"S": "x"}}}, None, r"filter\.op='contains' is not one of"),
        ({"filter": {"op": "lt", "attr": "a", "value": {"SS": ["x"]}}}, None, "lt compares B/N/S values, not SS"),
        ({"filter": {"op": "begins_with", "attr": "a", "value": {"N": "1"}}}, None, "begins_with compares B/S"),
        ({"filter": {"op": "eq", "attr": "a.b", "value": {"S": "x"}, "extra": 1}}, None, "unknown field"),
        ({"filter": {"op": "and", "args": []}}, None, "non-empty list"),
        ({"filter": {"op": "in", "attr": "a", "values": []}}, None, "list of 1 to 100"),
        ({"keep": ["a"], "drop": ["b"]}, None, "keep and drop are exclusive"),
        ({"masks": {"a": {"kind": "hmac"}}}, None, "no HMAC key was given"),
        ({"masks": {"a": {"kind": "scramble"}}}, None, "masks.a.kind must be one of"),
        ({"masks": {"a": {"kind": "redact"}}}, None, "masks.a.value"),
        ({"masks": {"pk": {"kind": "redact", "value": {"S": "x"}}}}, None, "'pk' is a key attribute"),
        ({"masks": {"pk": {"kind": "remove"}}}, None, "'pk' is a key attribute"),
        ({"drop": ["pk"]}, None, "keys are always kept"),
        ({"version": 2}, None, "reads version 1"),
    ],
)
def test_invalid_specs_are_refused_naming_the_field(fields: dict[str, Any], key: bytes | None, message: str) -> None:
    with pytest.raises(TransformError, match=message):
        Transform.from_spec(spec(**fields), key, key_names=["pk"])


def test_digest_covers_the_spec_and_an_edit_is_refused() -> None:
    good = spec(masks={"a": {"kind": "remove"}})
    assert good["digest"] == spec_digest(good) and len(good["digest"]) == 64
    edited = {**good, "masks": {}}
    with pytest.raises(TransformError, match="digest does not match"):
        Transform.from_spec(edited, None)
    assert Transform.from_spec(good, None).digest == good["digest"]
    # The secret's ARN is a token at synth time, where the construct tags the replica with the digest.
    assert spec_digest({**good, "secretArn": "arn:aws:secretsmanager:us-east-1:1:secret:x"}) == good["digest"]


def test_compile_refuses_a_value_that_is_not_an_attribute_value() -> None:
    with pytest.raises(TransformError, match="exactly one type key"):
        compile_condition({"op": "eq", "attr": "a", "value": "x"})
