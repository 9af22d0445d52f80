"""``leave``'s check of the deletes made in a LEAVING region: has each one reached every other region?

``verify`` compares tombstones as absent, which is right for an application's view but not for a drain: when
LEAVING (and perhaps another region) holds a tombstone and a region holds nothing, the delete may not have
reached that region yet while an older write is still in flight to it. Removed, LEAVING never sends the delete
again, the older write arrives, and that region holds the item for good (rules 1 and 5). So each unexpired
tombstone of LEAVING is compared as a state, with its version: it is delivered to a region when that region
holds the same state or one that orders after it (the replicator's full order), which a dry run of the
replicator's own send (:func:`~cdk_replication.cli.redrive.multi_active.send_current_state`, nothing written)
decides. An expired tombstone is left out: every copy of it expires at the same time (the expiry travels with
the delete), so a region whose copy the TTL has removed holds nothing for the same reason.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cdk_replication.cli.items import TOMBSTONE_FLAG, to_json_item
from cdk_replication.cli.outcomes import KEPT, SETTLED
from cdk_replication.cli.pacing import Retrier
from cdk_replication.cli.redrive.multi_active import MultiActiveResync, send_current_state
from cdk_replication.cli.tables import TableHandle
from cdk_replication.cli.topology.published import location_id
from cdk_replication.cli.topology.steps import Plan

#: Undelivered deletes listed per region at most (the count is always the true number).
MAX_LISTED = 20


def undelivered_deletes(leaving: TableHandle, others: list[TableHandle], plan: Plan, *, workers: int,
                        max_attempts: int) -> dict[str, dict[str, Any]]:
    """Per other region (``region:table``): ``tombstones`` (LEAVING's unexpired ones), ``undelivered`` (how many
    that region does not hold yet, as the same or a later state) and ``listed`` (``key``, ``outcome``,
    ``reason``, at most :data:`MAX_LISTED`). Reads only."""
    assert plan.conflict is not None and plan.ttl_attribute is not None
    retrier = Retrier(max_attempts)
    keys = _live_tombstones(leaving, plan, retrier)
    resync = MultiActiveResync(plan.conflict, retrier, plan.metadata_prefix, dry_run=True,
                               source_region=leaving.info.region, ttl_attribute=plan.ttl_attribute)
    found: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(workers, thread_name_prefix="leave-check") as pool:
        for other in others:
            outcomes = pool.map(lambda k: send_current_state(leaving, other, k, resync), keys)
            pending = [(k, o, r) for k, (o, r) in zip(keys, outcomes) if o not in (SETTLED, KEPT)]
            found[location_id(other.info)] = {
                "tombstones": len(keys), "undelivered": len(pending),
                "listed": [{"key": to_json_item(k), "outcome": o, "reason": r} for k, o, r in pending[:MAX_LISTED]]}
    return found


def _live_tombstones(leaving: TableHandle, plan: Plan, retrier: Retrier) -> list[dict[str, Any]]:
    """The keys of LEAVING's tombstones whose expiry (``plan.ttl_attribute``, epoch seconds) has not passed
    (strongly consistent scan; only tombstones are returned)."""
    deleted = plan.metadata_prefix + TOMBSTONE_FLAG
    now = time.time()
    request: dict[str, Any] = {"TableName": leaving.name, "ConsistentRead": True,
                               "FilterExpression": "attribute_exists(#d)", "ExpressionAttributeNames": {"#d": deleted}}
    keys: list[dict[str, Any]] = []
    while True:
        page = retrier.call(leaving.client.scan, **request)
        for item in page.get("Items", []):
            expires = item.get(str(plan.ttl_attribute), {}).get("N")
            if expires is None or float(expires) > now:
                keys.append({n: item[n] for n in leaving.info.key.names})
        if not page.get("LastEvaluatedKey"):
            return keys
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
