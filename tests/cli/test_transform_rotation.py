"""Key rotation of the HMAC secret: ``verify --repair`` with the new key rebuilds the replica, under live writes.

A hashed value changes with the key. Where the key attribute itself is hashed, every replica item sits under
a key derived from the old secret: after the rotation the replicator writes new items under new-key hashes
beside the old ones. ``verify --repair`` (with the new key, read from Secrets Manager) compares against the
source transformed with the new key: the old items are extra (orphans, no source key maps to them) and are
deleted; the new ones are written. An item created after verify's source scan is copied by the replicator
under its new hash, looks like an orphan to the target scan, and must survive (``_restore_orphans``).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cdk_replication._lambda.replicator.transform import Transform
from cdk_replication.cli import verify as verify_module

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
    tag_store,
    transformed_pair,
)

__all__ = ["cli", "moto_url", "pair", "published", "requests", "tag_store"]  # fixtures, imported for pytest

NEW_SECRET = "the-rotated-key-fedcba9876543210"


class Replicator:
    """What the deployed replicator does once it has picked up the NEW key: each source change, then the
    transformed write to the replica (in order per item, as the stream does)."""

    def __init__(self, ddb: Any, source: str, target: str, spec: dict[str, Any]) -> None:
        self.ddb, self.source, self.target = ddb, source, target
        self.transform = Transform.from_spec(spec, NEW_SECRET.encode("utf-8"), ("pk",))

    def put(self, item: dict[str, Any]) -> None:
        self.ddb.put_item(TableName=self.source, Item=item)
        shaped = self.transform.apply(item)
        if shaped is None:
            self.ddb.delete_item(TableName=self.target, Key=self.transform.key({"pk": item["pk"]}))
        else:
            self.ddb.put_item(TableName=self.target, Item=shaped)


def test_rotation_rebuild_under_live_writes(cli: Any, ddb: Any, pair: tuple[str, str], published: Published,
                                            requests: Requests, monkeypatch: pytest.MonkeyPatch) -> None:
    source, target, spec, items = transformed_pair(ddb, pair, published, 12, hash_key=True)
    assert cli("backfill", source, target).code == 0
    old = expected(items, spec)
    assert scan_all(ddb, target) == old

    published.rotate(NEW_SECRET)  # step 1: rotate; step 2: the replicator picks the new key up (simulated)
    replicator = Replicator(ddb, source, target, spec)
    stale = cli("verify", source, target, "--json").json()
    assert len(stale["extra"]) == 8 and len(stale["missing"]) == 8  # every hashed key moved

    # An item created after verify's source scan, copied under its new hash before the target scan.
    late = {"pk": {"S": "late"}, "email": {"S": "late@example.com"}, "status": {"S": "active"}}
    real_scan = verify_module._Scanner.scan
    fired = threading.Event()

    def scan(self: Any, handle: Any, side: str, visit: Any, **kwargs: Any) -> None:
        real_scan(self, handle, side, visit, **kwargs)
        if side == "source" and not fired.is_set():
            fired.set()
            replicator.put(late)

    monkeypatch.setattr(verify_module._Scanner, "scan", scan)
    stop = threading.Event()

    def live_writes() -> None:
        i = 0
        while not stop.is_set():
            item = dict(items[i % 12])
            item["n"] = {"N": str(1000 + i)}
            replicator.put(item)
            i += 1

    writer = threading.Thread(target=live_writes)
    writer.start()
    try:
        rebuilt = cli("verify", source, target, "--repair", "--json")  # step 3: rebuild with the new key
    finally:
        stop.set()
        writer.join()
    assert rebuilt.code == 0, rebuilt.out
    monkeypatch.setattr(verify_module._Scanner, "scan", real_scan)

    final = cli("verify", source, target, "--json")
    assert final.code == 0, final.out
    current = [i for i in scan_all(ddb, source).values()]
    assert scan_all(ddb, target) == expected(current, spec, NEW_SECRET)
    assert not set(old) & set(scan_all(ddb, target))  # no item under an old-key hash is left
    assert_no_leak(requests, target)
