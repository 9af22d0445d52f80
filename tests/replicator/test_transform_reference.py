"""The transform's filter agrees with DynamoDB itself: random items and conditions, each condition evaluated
by the engine and, as a FilterExpression, by DynamoDB Local (the reference for the comparison rules: numbers,
UTF-8 byte order, binary, sets, missing attributes and type mismatches)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replicator.transform import Transform, spec_value, with_digest

from rep_helpers import create_table
from test_transform import ATTRS, conditions_from

SAFE_NUMBERS = ["0", "1", "1.0", "-1", "2.5", "10", "-99.125", "12345678901234567890123456789012345678",
                "12345678901234567890123456789012345679", "1E+125", "-1E-120"]
values = st.one_of(
    st.text(alphabet=st.sampled_from("ab\u00e9\uffff\U0001F600"), max_size=3).map(lambda s: {"S": s}),
    st.binary(max_size=3).map(lambda b: {"B": b}),
    st.sampled_from(SAFE_NUMBERS).map(lambda n: {"N": n}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.sets(st.sampled_from(["a", "b", "\u00e9"]), min_size=1, max_size=2).map(lambda s: {"SS": sorted(s)}),
    st.sets(st.sampled_from(["1", "2.5", "-1"]), min_size=1, max_size=2).map(lambda s: {"NS": sorted(s)}),
)
conditions = conditions_from(values, values)
items = st.lists(st.fixed_dictionaries({}, optional={a: values for a in ATTRS}), min_size=1, max_size=6)


class Expression:
    """A spec condition as a DynamoDB FilterExpression with its placeholders."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.names: dict[str, str] = {}

    def _value(self, value: dict[str, Any]) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = spec_value(value, "test")
        return placeholder

    def of(self, node: dict[str, Any]) -> str:
        op = node["op"]
        if op in ("and", "or"):
            if len(node["args"]) == 1:
                return self.of(node["args"][0])  # DynamoDB refuses redundant parentheses
            return "(" + f" {op.upper()} ".join(self.of(a) for a in node["args"]) + ")"
        if op == "not":
            return f"(NOT {self.of(node['arg'])})"
        name = f"#{node['attr']}"
        self.names[name] = node["attr"]
        if op == "exists":
            return f"attribute_exists({name})"
        if op == "not_exists":
            return f"attribute_not_exists({name})"
        if op == "begins_with":
            return f"begins_with({name}, {self._value(node['value'])})"
        if op == "in":
            return f"{name} IN ({', '.join(self._value(v) for v in node['values'])})"
        symbol = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
        return f"{name} {symbol} {self._value(node['value'])}"


@pytest.fixture(scope="module")
def table(ddb_local):
    return create_table(ddb_local, "tref", "us-east-1", stream=False, key_types=("S", "N"))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(condition=conditions, batch=items)
def test_filter_agrees_with_dynamodb(table, condition: dict[str, Any], batch: list[dict[str, Any]]) -> None:
    transform = Transform.from_spec(with_digest({"version": 1, "filter": condition}), None)
    pk = uuid.uuid4().hex
    client = table.client
    for i, item in enumerate(batch):
        client.put_item(TableName=table.name, Item={"pk": {"S": pk}, "sk": {"N": str(i)}, **item})
    expression = Expression()
    text = expression.of(condition)
    expression.names["#pk"] = "pk"
    answer = client.query(TableName=table.name, KeyConditionExpression="#pk = :pk", FilterExpression=text,
                          ExpressionAttributeNames=expression.names,
                          ExpressionAttributeValues={**expression.values, ":pk": {"S": pk}}, ConsistentRead=True)
    by_dynamodb = sorted(int(item["sk"]["N"]) for item in answer["Items"])
    by_engine = [i for i, item in enumerate(batch) if transform.matches(item)]
    assert by_engine == by_dynamodb, (text, expression.values)
