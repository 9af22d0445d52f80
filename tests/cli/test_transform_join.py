"""``cdk-replication join`` into a transformed replica: the copy and its verification apply the replica's
transform exactly as ``backfill`` and ``verify`` do (issue 15, rule 10), so a masked replica that JOINS a running
one-way topology never receives a raw value."""

from __future__ import annotations

from typing import Any

from .helpers import scan_all
from .test_transform import (
    Published,
    Requests,
    assert_no_leak,
    cli,
    expected,
    moto_url,
    pair,
    published,
    requests,
    spec_for,
    tag_store,
    transformed_pair,
)

__all__ = ["cli", "moto_url", "pair", "published", "requests", "tag_store"]  # fixtures, imported for pytest


def joining(published: Published, target: str) -> None:
    """The new replica is deployed with ``status=JOINING`` (its published status parameter)."""
    published.ssm.put_parameter(Name=f"/cdk-replication/{target}/status", Value="JOINING", Type="String",
                                Overwrite=True)


def test_join_of_a_masked_replica_writes_only_transformed_items_and_verifies_clean(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published, requests: Requests) -> None:
    source, target, spec, items = transformed_pair(ddb, pair, published, 12)
    joining(published, target)

    run = cli("join", source, target, "--json")

    assert run.code == 0, run.err + run.out
    assert scan_all(ddb, target) == expected(items, spec)
    assert run.json()["inSync"], run.out  # verify compared the TRANSFORMED source
    assert_no_leak(requests, target)


def test_join_of_a_replica_with_a_hashed_key_verifies_clean(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published, requests: Requests) -> None:
    source, target, spec, items = transformed_pair(ddb, pair, published, 9, hash_key=True)
    joining(published, target)

    run = cli("join", source, target, "--json")

    assert run.code == 0, run.err + run.out
    assert scan_all(ddb, target) == expected(items, spec)
    assert_no_leak(requests, target)


def test_join_refuses_a_tagged_replica_whose_transform_is_not_published(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published) -> None:
    """The safety net, as for ``backfill``: a tagged target whose entry in the published parameter has no
    transform (the replicator sends it raw items: a deployment under way) is never written."""
    source, target, spec, items = transformed_pair(ddb, pair, published, 3)
    published.publish(source, target, None)
    joining(published, target)

    run = cli("join", source, target)

    assert run.code == 2, run.err
    assert "nothing was written" in run.err
    assert scan_all(ddb, target) == {}
    assert spec_for  # imported for the spec's shape (test_transform)
