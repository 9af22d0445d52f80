"""The one-way join's repair (test_join_export.py) of a TRANSFORMED replica that holds stale transformed items
(as a replica holds them after the replicator stopped sending to it for a while): the repair writes the
transformed source state through the same view as the copy, deletes what no longer passes the filter or is gone
from SOURCE, and never sends a raw value (issue 15, rule 10). Fixtures of test_transform.py (the published spec,
the secret, the tag, a recorder of every request)."""

from __future__ import annotations

from typing import Any

from .helpers import scan_all
from .test_transform import (
    ADDRESSES,
    Published,
    Requests,
    assert_no_leak,
    cli,
    expected,
    moto_url,
    pair,
    published,
    requests,
    tag_store,
    transformed_pair,
)
from .test_transform_join import joining

__all__ = ["cli", "moto_url", "pair", "published", "requests", "tag_store"]  # fixtures, imported for pytest


def test_join_repairs_stale_transformed_items_with_transformed_state_only(
        cli: Any, ddb: Any, pair: tuple[str, str], published: Published, requests: Requests) -> None:
    source, target, spec, items = transformed_pair(ddb, pair, published, 12)
    joining(published, target)
    stale = expected(items, spec)  # the replica as it was at T0 (transformed, as the replicator wrote it)
    for item in stale.values():
        ddb.put_item(TableName=target, Item=item)
    # Then, with nothing sent to the replica: c000 updated, c001 deleted, c003 no longer passes the filter.
    items[0] = {**items[0], "n": {"N": "1000"}, "address": {"S": ADDRESSES[5]}}
    ddb.put_item(TableName=source, Item=items[0])
    ddb.delete_item(TableName=source, Key={"pk": items[1]["pk"]})
    del items[1]
    items[2] = {**items[2], "status": {"S": "inactive"}}  # items[2] is c003 now
    ddb.put_item(TableName=source, Item=items[2])
    requests.sent.clear()  # the setup wrote raw items to SOURCE only; check what join sends

    run = cli("join", source, target, "--json")

    assert run.code == 0, run.err + run.out
    assert scan_all(ddb, target) == expected(items, spec)
    [verified] = run.json()["verify"].values()
    assert verified["repair"]["counts"] == {"repaired": 3}, run.out
    assert_no_leak(requests, target)
