"""Adversarial review of the local SSM service (branch r14a): requests AWS refuses that the local runtime serves
(DESIGN.md rule 9: never kinder than AWS). Each test was a finding (fixed: ``ParameterService`` and ``ParameterStore.put`` validate as AWS does).

AWS's rules quoted from the PutParameter API reference (botocore's ssm service model, ``PutParameterRequest``):
"You can't enter the Amazon Resource Name (ARN) for a parameter, only the parameter name itself."; "For
parameters in a hierarchy, you must include a leading forward slash character (/) when you create or reference
a parameter."; "A parameter name can't be prefixed with "aws" or "ssm" (case-insensitive)."; "You must specify a
parameter type when creating a parameter."

The service is called directly (``ParameterService.serve`` with an authorizer that allows everything), so these
tests need neither DynamoDB Local nor a gateway: what is checked is the service's own validation.
"""

from __future__ import annotations

from typing import Any

import pytest

from cdk_replication.local.parameters import ParameterError, ParameterService, ParameterStore, parameter_arn

REGION, ACCOUNT = "eu-west-1", "444444444444"


def _allow(action: str, resource: str) -> None:
    """An authorizer that allows every call (IAM is not what these tests are about)."""


def _put(store: ParameterStore, **request: Any) -> dict[str, Any]:
    return ParameterService(store).serve("PutParameter", request, region=REGION, account=ACCOUNT, authorize=_allow)


def test_put_parameter_refuses_an_arn_as_name():
    store = ParameterStore()
    arn = parameter_arn("/cdk-replication/Orders/status", REGION, ACCOUNT)
    with pytest.raises(ParameterError) as refused:
        _put(store, Name=arn, Value="ACTIVE", Type="String", Overwrite=True)
    assert refused.value.code == "ValidationException"


def test_put_parameter_refuses_a_hierarchical_name_without_the_leading_slash():
    store = ParameterStore()
    # Locally this creates a second parameter next to "/cdk-replication/Orders/status", sharing its ARN.
    with pytest.raises(ParameterError) as refused:
        _put(store, Name="cdk-replication/Orders/status", Value="ACTIVE", Type="String")
    assert refused.value.code == "ValidationException"


@pytest.mark.parametrize("name", ["awsTestParameter", "SSM-testparameter"])
def test_put_parameter_refuses_reserved_prefixes(name: str):
    store = ParameterStore()
    with pytest.raises(ParameterError) as refused:
        _put(store, Name=name, Value="x", Type="String")
    assert refused.value.code == "ValidationException"


def test_put_parameter_needs_a_type_to_create():
    store = ParameterStore()
    with pytest.raises(ParameterError) as refused:
        _put(store, Name="/review/untyped", Value="x")
    assert refused.value.code == "ValidationException"
    assert store.get("/review/untyped", region=REGION, account=ACCOUNT) is None


def test_put_parameter_without_type_may_update_an_existing_one():
    """The other half of the rule (kept working by a fix): an update may leave Type out."""
    store = ParameterStore()
    _put(store, Name="/review/typed", Value="x", Type="String")
    assert _put(store, Name="/review/typed", Value="y", Overwrite=True)["Version"] == 2
