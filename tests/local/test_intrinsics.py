"""Intrinsic functions resolve to the literals CloudFormation would produce."""

from __future__ import annotations

import pytest

from cdk_replication.local.intrinsics import Resolver, TemplateError


def _resolver(conditions=None, exports=None):
    return Resolver(
        "Stack", "cn-north-1", "123456789012", {"Env": "prod"},
        ref=lambda logical_id: f"physical-{logical_id}",
        get_att=lambda logical_id, attribute: f"{logical_id}.{attribute}",
        exports=exports or {},
        conditions=conditions,
    )


def test_pseudo_parameters_and_refs():
    r = _resolver()
    assert r.resolve({"Ref": "AWS::Partition"}) == "aws-cn"
    assert r.resolve({"Ref": "AWS::URLSuffix"}) == "amazonaws.com.cn"
    assert r.resolve({"Ref": "AWS::AccountId"}) == "123456789012"
    assert r.resolve({"Ref": "Env"}) == "prod"
    assert r.resolve({"Ref": "Table"}) == "physical-Table"
    assert r.resolve({"Fn::GetAtt": ["Table", "StreamArn"]}) == "Table.StreamArn"
    assert r.resolve({"Fn::GetAtt": "Table.Arn"}) == "Table.Arn"


def test_join_sub_select_split():
    r = _resolver()
    assert r.resolve({"Fn::Join": ["-", ["a", {"Ref": "AWS::Region"}, 3]]}) == "a-cn-north-1-3"
    assert r.resolve({"Fn::Sub": "${AWS::Region}/${Table.Arn}/${Env}/${!Literal}"}) == \
        "cn-north-1/Table.Arn/prod/${Literal}"
    assert r.resolve({"Fn::Sub": ["${X}:${AWS::AccountId}", {"X": {"Ref": "Q"}}]}) == "physical-Q:123456789012"
    assert r.resolve({"Fn::Select": [1, {"Fn::Split": ["/", "a/b/c"]}]}) == "b"
    assert r.resolve({"Fn::Base64": "hi"}) == "aGk="


def test_conditions_and_no_value():
    r = _resolver(conditions={"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
                              "IsDev": {"Fn::Not": [{"Condition": "IsProd"}]}})
    value = {"A": {"Fn::If": ["IsProd", "yes", "no"]}, "B": {"Fn::If": ["IsDev", "x", {"Ref": "AWS::NoValue"}]},
             "C": [1, {"Ref": "AWS::NoValue"}], "D": {"Fn::Or": [{"Condition": "IsDev"}, True]}}
    assert r.resolve(value) == {"A": "yes", "C": [1], "D": True}


def test_import_value_and_clear_errors():
    r = _resolver(exports={"Shared": "v"})
    assert r.resolve({"Fn::ImportValue": "Shared"}) == "v"
    with pytest.raises(TemplateError, match="Fn::ImportValue 'Missing'.*deploy the exporting stack first"):
        r.resolve({"Fn::ImportValue": "Missing"})
    with pytest.raises(TemplateError, match=r"stack Stack, \.Props\.X: intrinsic function Fn::Transform"):
        r.resolve({"Props": {"X": {"Fn::Transform": {}}}})
    with pytest.raises(TemplateError, match="condition 'Nope' is not defined"):
        r.resolve({"Fn::If": ["Nope", 1, 2]})
