"""A reproducible workload of realistic ``Employee`` items for demos and end-to-end tests.

Every operation changes the item it touches (inserts of new keys, updates that bump ``version``, deletes of
existing items), so each one produces exactly one stream record; operations on one key keep their order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim", "Margaret",
          "Linus", "Sophie", "Guido", "Hedy", "Dennis", "Karen", "John", "Shafi", "Leslie"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman",
         "Berners-Lee", "Hamilton", "Torvalds", "Wilson", "van Rossum", "Lamarr", "Ritchie", "Jones", "Backus"]
_DEPARTMENTS = ["Engineering", "Finance", "Sales", "Support", "Research", "Legal", "Operations"]
_TITLES = ["Engineer", "Senior Engineer", "Principal", "Manager", "Director", "Analyst", "Associate"]
_SKILLS = ["python", "java", "go", "rust", "sql", "aws", "kubernetes", "terraform", "react", "ml", "excel"]
_CITIES = [("Seattle", "98101"), ("Dublin", "D02"), ("Tokyo", "100-0001"), ("São Paulo", "01000"), ("Zürich", "8001")]


@dataclass(frozen=True)
class Operation:
    """One write: ``kind`` is ``put`` (a new item), ``update`` or ``delete``; ``key`` in DynamoDB JSON."""

    kind: str
    key: dict[str, Any]
    item: dict[str, Any] | None = None
    update: dict[str, Any] | None = None


def key_value(kind: str, index: int) -> dict[str, Any]:
    """The ``index``-th key value of attribute type ``kind`` (``S``, ``N`` or ``B``)."""
    if kind == "N":
        return {"N": str(index)}
    if kind == "B":
        return {"B": b"\x00emp" + index.to_bytes(4, "big")}
    return {"S": f"EMP#{index:06d}"}


def employee(rng: random.Random, key: dict[str, Any], version: int, now_ms: int) -> dict[str, Any]:
    """A full ``Employee`` item with every DynamoDB type, including empty and 38-digit values."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    city, zip_code = rng.choice(_CITIES)
    item: dict[str, Any] = {
        **key,
        "Name": {"S": f"{first} {last}"},
        "Email": {"S": f"{first}.{last}@example.com".lower().replace(" ", "")},
        "Department": {"S": rng.choice(_DEPARTMENTS)},
        "Title": {"S": rng.choice(_TITLES)},
        "Salary": {"N": str(Decimal(rng.randrange(4_000_000, 40_000_000)) / 100)},
        "BadgeNumber": {"N": "".join(rng.choice("123456789") for _ in range(38))},  # all 38 digits
        "Ratio": {"N": "0." + "".join(rng.choice("0123456789") for _ in range(20)) + "1"},
        "StartDate": {"S": f"20{rng.randrange(10, 26)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"},
        "Active": {"BOOL": rng.random() < 0.9},
        "Manager": {"NULL": True} if rng.random() < 0.2 else {"N": str(rng.randrange(1, 500))},
        "Skills": {"SS": rng.sample(_SKILLS, rng.randrange(1, 5))},
        "Scores": {"NS": sorted({str(rng.randrange(0, 100)) for _ in range(3)})},
        "Photo": {"B": rng.randbytes(rng.randrange(8, 64))},
        "KeyFingerprints": {"BS": sorted({rng.randbytes(8) for _ in range(2)})},
        "Address": {"M": {
            "City": {"S": city},
            "Zip": {"S": zip_code},
            "Geo": {"M": {"Lat": {"N": f"{rng.uniform(-90, 90):.6f}"}, "Lon": {"N": f"{rng.uniform(-180, 180):.6f}"}}},
        }},
        "Projects": {"L": [
            {"M": {"Name": {"S": f"project-{rng.randrange(100)}"}, "Hours": {"N": str(rng.randrange(1, 400))}}}
            for _ in range(rng.randrange(0, 3))
        ]},
        "Notes": {"S": ""},  # empty strings are allowed outside keys
        "Preferences": {"M": {}},
        "Tags": {"L": []},
        "version": {"N": str(version)},
        "updatedAt": {"N": str(now_ms)},
    }
    return item


def generate(
    items: int,
    seed: int = 7,
    key_types: tuple[str, ...] = ("N",),
    key_names: tuple[str, ...] = ("Id",),
    update_share: float = 0.35,
    delete_share: float = 0.15,
) -> list[Operation]:
    """``items`` inserts plus updates and deletes of about ``update_share``/``delete_share`` of them,
    interleaved at random while keeping each key's operations in order.

    Args:
        items: number of distinct items inserted.
        seed: random seed; the same arguments always give the same operations.
        key_types: DynamoDB types of the key attributes (partition key first).
        key_names: names of the key attributes, in the same order.
        update_share: fraction of items updated once more (some twice). Default: 0.35.
        delete_share: fraction of items deleted at the end of their life. Default: 0.15.
    """
    rng = random.Random(seed)
    per_key: list[list[Operation]] = []
    base_ms = 1_750_000_000_000
    for i in range(items):
        key = {name: key_value(kind, i if n == 0 else i % 7) for n, (name, kind) in
               enumerate(zip(key_names, key_types))}
        ops = [Operation("put", key, item=employee(rng, key, 1, base_ms + i))]
        version = 1
        updates = (1 if rng.random() < update_share else 0) + (1 if rng.random() < update_share / 4 else 0)
        for _ in range(updates):
            version += 1
            ops.append(Operation("update", key, update=_update(rng, version, base_ms + items + i + version)))
        if rng.random() < delete_share:
            ops.append(Operation("delete", key))
        per_key.append(ops)
    # Interleave: repeatedly take the next operation of a random key that still has some.
    ordered: list[Operation] = []
    live = [ops[::-1] for ops in per_key]
    while live:
        i = rng.randrange(len(live))
        ordered.append(live[i].pop())
        if not live[i]:
            live[i] = live[-1]
            live.pop()
    return ordered


def _update(rng: random.Random, version: int, now_ms: int) -> dict[str, Any]:
    remove = " REMOVE Manager" if rng.random() < 0.3 else ""
    return {
        "UpdateExpression": "SET Salary = :s, #v = :v, updatedAt = :t, Title = :title ADD Skills :skill" + remove,
        "ExpressionAttributeNames": {"#v": "version"},
        "ExpressionAttributeValues": {
            ":s": {"N": str(Decimal(rng.randrange(4_000_000, 40_000_000)) / 100)},
            ":v": {"N": str(version)},
            ":t": {"N": str(now_ms)},
            ":title": {"S": rng.choice(_TITLES)},
            ":skill": {"SS": [rng.choice(_SKILLS)]},
        },
    }


def apply(client: Any, table: str, operation: Operation) -> None:
    """Perform one operation on ``table``."""
    if operation.kind == "put":
        client.put_item(TableName=table, Item=operation.item)
    elif operation.kind == "update":
        assert operation.update is not None
        client.update_item(TableName=table, Key=operation.key, **operation.update)
    elif operation.kind == "delete":
        client.delete_item(TableName=table, Key=operation.key)
    else:
        raise ValueError(f"unknown operation kind {operation.kind!r}")
