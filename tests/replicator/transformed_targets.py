"""Transformed one-way targets for the delivery-fault property tests (issue 15; rules 1, 2 and 10).

The property tests (test_ordered_convergence.py for the Kinesis change source, test_one_way_faults.py for
DynamoDB Streams) replicate one source to an exact copy and to the copies here, and hold each to its own
end state: the exact copy equals the source, a transformed copy equals the transform of the source
(``Transform.apply`` of every source item), and no raw masked or dropped value reaches a transformed copy,
neither in what it holds nor in any request sent to it.

The transforms are chosen to meet the histories those tests write (values from ``{0, 1, 2}``):

* :data:`FILTERED`: holds items with ``n != 0`` (an item flips in and out of the replica as ``n`` changes),
  drops ``address`` and hashes ``email``;
* :data:`KEYED`: the same, with the partition key ``pk`` hashed as well (the replica's key differs from the
  source's, so deletes and tombstones must find the hashed key).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from replicator import secrets
from replicator.transform import Transform, with_digest

from rep_helpers import Table, sort_items

PREFIX = "_rep_"
#: The HMAC key, as the stubbed Secrets Manager returns it; an ARN no other test uses (the key cache is
#: per ARN and per process).
HMAC_KEY = b"fault-tests-hmac-key"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:111111111111:secret:fault-tests-hmac-AbCdEf"


def _spec(masks: Mapping[str, Any]) -> dict[str, Any]:
    return with_digest({
        "version": 1,
        "filter": {"op": "ne", "attr": "n", "value": {"N": "0"}},
        "keep": None,
        "drop": ["address"],
        "masks": dict(masks),
        "secretArn": SECRET_ARN,
    })


FILTERED = _spec({"email": {"kind": "hmac"}})
KEYED = _spec({"pk": {"kind": "hmac"}, "email": {"kind": "hmac"}})


def install_key(monkeypatch: Any) -> None:
    """Serves :data:`HMAC_KEY` for :data:`SECRET_ARN` in place of Secrets Manager (test_transform_secrets.py
    and tests/local read the key from the local Secrets Manager for real)."""
    monkeypatch.setattr(secrets, "_boto3_key_loader",
                        lambda: (lambda arn: HMAC_KEY if arn == SECRET_ARN else b""))


def email(value: int, prefix: str) -> dict[str, Any]:
    """The raw (to be hashed) email of a write with ``value``: unique to the example through ``prefix``."""
    return {"S": f"{prefix}user{value}@example.com"}


def address(value: int, prefix: str) -> dict[str, Any]:
    """The raw (to be dropped) address of a write with ``value``."""
    return {"S": f"{prefix}{value} Secret Road"}


def write_history(client: Any, source: Table, prefix: str, history: list[tuple[str, str, int]]) -> None:
    """Applies ``history`` (``(kind, key name, value)``, kind ``put``, ``update`` or ``delete``) to ``source``
    with ``client`` (one per test: a client per example would cost much of the time), under the example's keys (``prefix`` + key name): a put writes every attribute, an update ``n`` and
    ``email``, so that ``address`` stays as the last put wrote it."""
    c = client
    for kind, name, value in history:
        key = {"pk": {"S": prefix + name}}
        if kind == "put":
            c.put_item(TableName=source.name, Item={**key, "n": {"N": str(value)}, "m": {"M": {}},
                                                    "email": email(value, prefix), "address": address(value, prefix)})
        elif kind == "update":
            c.update_item(TableName=source.name, Key=key, UpdateExpression="SET n = :n, email = :e",
                          ExpressionAttributeValues={":n": {"N": str(value)}, ":e": email(value, prefix)})
        else:
            c.delete_item(TableName=source.name, Key=key)


@dataclass
class Copy:
    """One replica table, its transform (``None``: an exact copy) and every request naming it (parameters as
    the replicator gave them, before serialisation), recorded from :meth:`record` on."""

    table: Table
    transform: Transform | None
    client: Any
    sent: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, table: Table, spec: Mapping[str, Any] | None) -> Copy:
        transform = None if spec is None else Transform.from_spec(spec, HMAC_KEY, ["pk"])
        return cls(table, transform, table.client)

    def target(self) -> dict[str, Any]:
        """The copy's entry of REPLICATION_TARGETS."""
        ref: dict[str, Any] = self.table.ref()
        return ref if self.transform is None else {**ref, "transform": dict(self.transform.spec)}

    def record(self, processor: Any) -> None:
        """Records every request ``processor`` sends to this copy (from now on, into :attr:`sent`)."""
        ref = next(t for t in processor.config.targets if t.table_name == self.table.name)
        client = processor.clients.for_table(ref)
        # Copies in one account and region share a client: keep only the requests that name this table.
        client.meta.events.register("provide-client-params.dynamodb.*", self._remember)

    def _remember(self, params: dict[str, Any], **_: Any) -> None:
        if self.table.name in json.dumps(params, default=repr):
            self.sent.append(params)

    def replica_pk(self, pk: str) -> str:
        """The replica's partition key (``S``) for the source's ``pk``."""
        key = {"pk": {"S": pk}}
        return (key if self.transform is None else self.transform.key(key))["pk"]["S"]

    def stored(self, pks: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every item the copy stores (tombstones and metadata included) for the source keys ``pks``
        (default: every item), strongly consistent, in a canonical order."""
        wanted = None if pks is None else {self.replica_pk(pk) for pk in pks}
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table.name, "ConsistentRead": True}
        while True:
            page = self.client.scan(**kwargs)
            items.extend(i for i in page["Items"] if wanted is None or i["pk"]["S"] in wanted)
            if "LastEvaluatedKey" not in page:
                return sort_items(items)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def expected(self, source_items: Iterable[Mapping[str, Any]]) -> list[Any]:
        """What the copy must hold (user attributes) for the source's ``source_items``."""
        if self.transform is None:
            return sort_items(source_items)
        return sort_items(out for out in map(self.transform.apply, source_items) if out is not None)

    def leaks(self, raws: Iterable[str], pks: Iterable[str]) -> list[str]:
        """The raw values (and, for a copy with a hashed key, raw partition keys) found anywhere in the
        copy's table or in a request sent to it; empty for an exact copy."""
        if self.transform is None:
            return []
        forbidden = list(raws) + (list(pks) if "pk" in self.transform.masks else [])
        text = json.dumps([self.stored(), self.sent], default=repr)
        return [raw for raw in forbidden if raw in text]


def check_copies(copies: Iterable[Copy], source_items: list[dict[str, Any]], prefix: str, pks: list[str]) -> None:
    """Each copy holds its image of ``source_items`` (the example's, under ``pks``), and no transformed copy
    stores or was sent a raw email, address or (where the key is hashed) partition key of the example."""
    raws = [make(value, prefix)["S"] for value in range(3) for make in (email, address)]
    for n, copy in enumerate(copies):
        assert user_view(copy.stored(pks)) == copy.expected(source_items), f"copy {n} diverged"
        assert not copy.leaks(raws, [f'"{pk}"' for pk in pks]), f"copy {n} received a raw value"


def user_view(items: Iterable[Mapping[str, Any]]) -> list[Any]:
    """The items an application sees: tombstones left out, metadata stripped."""
    return sort_items({k: v for k, v in i.items() if not k.startswith(PREFIX)} for i in items
                      if PREFIX + "deleted" not in i)
