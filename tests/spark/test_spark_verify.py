"""The Spark verify of two native exports agrees exactly with the single-machine ``verify`` (issue 16).

Tables are real (DynamoDB Local), exported in AWS's layout (conftest.py says why not moto's export), and hold
every attribute type with planted differences of every kind. Values DynamoDB itself normalises (set order,
``1.50``) cannot reach an export through a table, so they are written into export files directly.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cdk_replication._lambda.replicator import contract
from cdk_replication.spark import job
from cdk_replication.spark.compare import compare_exports
from cdk_replication.spark.layout import ExportLayoutError, resolve_export, write_export

BIG = "12345678901234567890123456789012345678"


def every_type(i: int, key: dict[str, Any]) -> dict[str, Any]:
    """An item with every attribute type: 38-digit numbers, binary with NULs, all sets, deep nesting, empties."""
    return {
        **key,
        "s": {"S": f"text {i} ✓"},
        "empty_s": {"S": ""},
        "n": {"N": BIG if i % 2 else f"-0.{BIG}"},
        "b": {"B": bytes([0, i % 256, 255])},
        "bool": {"BOOL": i % 2 == 0},
        "null": {"NULL": True},
        "ss": {"SS": ["b", "a", ""]},
        "ns": {"NS": [BIG, "1", "-1E-130"]},
        "bs": {"BS": [b"\x00", b"\xff\xfe"]},
        "l": {"L": [{"S": ""}, {"N": "0.000000000000000000000000000000000001"}, {"L": []}, {"M": {}}]},
        "m": {"M": {"deep": {"M": {"list": {"L": [{"S": "x"}, {"BOOL": False}]}}}, "e": {"M": {}}}},
    }


def _put(ddb: Any, table: str, items: list[dict[str, Any]]) -> None:
    for item in items:
        ddb.put_item(TableName=table, Item=item)


def plant(ddb: Any, source: str, target: str, key: Any) -> dict[str, Any]:
    """Fill two tables whose only differences are the planted ones; returns what a correct verify reports.

    ``key(i)`` is item i's key. Source: items 0..19 plus a tombstone (key 20). Target: the same with
    metadata-only changes (equal), and: 2 missing, 1 extra, 6 different, a tombstone where the source has
    an item (missing), a tombstone where the source has none (equal).
    """
    items = [every_type(i, key(i)) for i in range(20)]
    tombstone = {**key(20), "_rep_deleted": {"BOOL": True}, "_rep_version": {"N": "3"}}
    _put(ddb, source, items + [tombstone])
    t = copy.deepcopy(items)
    t[1]["_rep_origin"] = {"S": "eu-west-1"}  # metadata only: equal
    t[2]["_rep_version"] = {"N": "99"}
    changes = {
        5: ("m", lambda it: it["m"]["M"]["deep"]["M"]["list"]["L"].__setitem__(1, {"BOOL": True})),
        6: ("n", lambda it: it.__setitem__("n", {"N": BIG[:-1] + "9"})),  # 38th digit
        7: ("b", lambda it: it.__setitem__("b", {"B": bytes([0, 7, 254])})),
        8: ("empty_s", lambda it: it.pop("empty_s")),  # "" is a value, not an absent attribute
        9: ("s", lambda it: it.__setitem__("s", {"N": "1"})),  # a type change
        10: ("ns", lambda it: it.__setitem__("ns", {"NS": [BIG, "1"]})),
    }
    for i, (_, change) in changes.items():
        change(t[i])
    t[12] = {**key(12), "_rep_deleted": {"BOOL": True}}  # a delete that reached the target: no item there
    extra = {**key(30), "only": {"S": "target"}}
    _put(ddb, target, [it for i, it in enumerate(t) if i not in (3, 4)] + [extra, {**key(31), "_rep_deleted":
                                                                                       {"BOOL": True}}])
    return {"missing": [3, 4, 12], "extra": [30], "different": {i: [name] for i, (name, _) in changes.items()}}


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without what legitimately differs between runs (timing, whether a re-read happened), with
    the key lists in one order and each key's differing attributes beside it."""
    out = {k: v for k, v in doc.items() if k not in ("seconds", "reread", "settledOnReread", "notes")}
    out["differentAttributes"] = sorted(
        (json.dumps(k, sort_keys=True), a) for k, a in zip(doc["different"], doc["differentAttributes"])
    )
    for kind in ("missing", "extra", "different"):
        out[kind] = sorted(json.dumps(k, sort_keys=True) for k in doc[kind])
    return out


def _run_job(spark: Any, source: Path, target: Path, key: str, output: Path) -> dict[str, Any]:
    args = job.parse_args(["--source-export", str(source), "--target-export", str(target), "--key", key,
                           "--output", str(output), "--metadata-prefix", contract.DEFAULT_METADATA_PREFIX,
                           "--JOB_NAME", "ignored-glue-argument"])
    doc, where = job.run_job(spark, args)
    assert json.loads(Path(where).read_text()) == doc
    return doc


CASES = {
    "string+number key": (("pk", "S"), ("sk", "N"), lambda i: {"pk": {"S": f"p{i % 7}"}, "sk": {"N": f"{i}.5"}}),
    "binary key": (("pk", "B"), None, lambda i: {"pk": {"B": bytes([0, i, 255])}}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_spark_job_and_single_machine_verify_agree_exactly(case, spark, ddb, table, export_table, cli, tmp_path):
    pk, sk, key = CASES[case]
    source, target = table("xsrc", pk, sk), table("xtgt", pk, sk)
    planted = plant(ddb, source, target, key)
    code, single, err = cli("verify", source, target, "--json", "--quiet", "--recheck-rounds", "1")
    assert code == 1, err
    doc = _run_job(spark, export_table(source), export_table(target),
                   ",".join(n for n, _ in filter(None, (pk, sk))), tmp_path / "out")

    assert _comparable(doc) == _comparable(single)
    # ...and both are right, not merely equal: exactly the planted differences.
    as_text = lambda i: json.dumps(json.loads(json.dumps(key(i), default=lambda b: base64.b64encode(b).decode())),
                                   sort_keys=True)
    assert _comparable(doc)["missing"] == sorted(as_text(i) for i in planted["missing"])
    assert _comparable(doc)["extra"] == sorted(as_text(i) for i in planted["extra"])
    assert _comparable(doc)["differentAttributes"] == sorted((as_text(i), a) for i, a in planted["different"].items())
    assert (doc["sourceItems"], doc["targetItems"], doc["sourceTombstones"], doc["targetTombstones"]) == (20, 18, 1, 2)
    assert doc["matching"] == 20 - 3 - 6 and doc["inSync"] is False and doc["reread"] is False


def test_values_dynamodb_normalises_compare_as_verify_defines_them(spark, tmp_path):
    """Set order, number spelling (``1.50``/``1.5``, ``1.0``/``1``, ``1E+2``/``100``), map order: equal.
    The last of 38 digits, and ``1`` against ``1.000...01`` beyond 28 digits: different (no float, no rounding)."""
    b64 = lambda raw: base64.b64encode(raw).decode()
    source = [
        {"pk": {"S": "sets"}, "ss": {"SS": ["a", "b", "c"]}, "ns": {"NS": ["1", "2"]}, "bs": {"BS": [b64(b"x"), b64(b"y")]}},
        {"pk": {"S": "nums"}, "a": {"N": "1.50"}, "b": {"N": "1.0"}, "c": {"N": "1E+2"}, "d": {"N": "-0"}},
        {"pk": {"S": "map"}, "m": {"M": {"x": {"N": "1"}, "y": {"L": [{"S": "a"}, {"S": "b"}]}}}},
        {"pk": {"S": "digit38"}, "n": {"N": BIG}},
        {"pk": {"S": "digit30"}, "n": {"N": "1"}},
    ]
    target = [
        {"pk": {"S": "sets"}, "ss": {"SS": ["c", "a", "b"]}, "ns": {"NS": ["2", "1.0"]}, "bs": {"BS": [b64(b"y"), b64(b"x")]}},
        {"pk": {"S": "nums"}, "a": {"N": "1.5"}, "b": {"N": "1"}, "c": {"N": "100"}, "d": {"N": "0"}},
        {"pk": {"S": "map"}, "m": {"M": {"y": {"L": [{"S": "a"}, {"S": "b"}]}, "x": {"N": "1.000"}}}},
        {"pk": {"S": "digit38"}, "n": {"N": BIG[:-1] + "0"}},
        {"pk": {"S": "digit30"}, "n": {"N": "1.00000000000000000000000000001"}},
    ]
    doc = compare_exports(spark, resolve_export(str(write_export(tmp_path / "s", source))),
                          resolve_export(str(write_export(tmp_path / "t", target))), ["pk"], "_rep_")
    assert doc["different"] == [{"pk": {"S": "digit30"}}, {"pk": {"S": "digit38"}}]
    assert doc["differentAttributes"] == [["n"], ["n"]]
    assert doc["matching"] == 3 and not doc["missing"] and not doc["extra"]


def test_an_incomplete_or_ambiguous_export_is_refused(tmp_path):
    folder = write_export(tmp_path / "b", [{"pk": {"S": "a"}}])
    summary = folder / "manifest-summary.json"
    assert resolve_export(str(tmp_path / "b")).item_count == 1  # found below a prefix
    doc = json.loads(summary.read_text())
    summary.write_text(json.dumps({**doc, "itemCount": 2}))
    with pytest.raises(ExportLayoutError, match="lists 1 items"):
        resolve_export(str(folder))
    write_export(tmp_path / "b", [])
    with pytest.raises(ExportLayoutError, match="holds 2 manifest-summary.json"):
        resolve_export(str(tmp_path / "b"))


def test_the_job_needs_to_be_told_the_metadata_prefix():
    """The job has no default of its own (it ships without the replicator's contract): a call that names
    neither a prefix nor --no-metadata-prefix true is refused before Spark reads a line."""
    args = job.parse_args(["--source-export", "a", "--target-export", "b", "--key", "pk", "--output", "o"])
    with pytest.raises(SystemExit, match="--metadata-prefix"):
        job.run_job(None, args)


def test_too_many_differences_stop_the_job_with_the_counts(spark, tmp_path, monkeypatch):
    """Counted by the job, not guessed from the manifests: their itemCount includes tombstones (see
    test_review_r16's tombstone test), so only the comparison itself can tell copies from strangers."""
    from cdk_replication.spark import compare

    monkeypatch.setattr(compare, "MAX_LISTED", 1)
    three = resolve_export(str(write_export(tmp_path / "a", [{"pk": {"S": c}} for c in "abc"])))
    other = resolve_export(str(write_export(tmp_path / "c", [{"pk": {"S": c}} for c in "xbc"])))
    with pytest.raises(compare.TooManyDifferences, match="2 differing keys"):
        compare_exports(spark, three, other, ["pk"], "_rep_")


def test_a_malformed_line_fails_the_job_in_one_line_without_its_value(spark, tmp_path):
    """Raised in a Python worker, the error reaches the driver inside Spark's wrapping (worker traceback,
    Java stack): compare_exports gives it back as one line naming the attribute and type, never the value."""
    from cdk_replication.spark.compare import ExportDataError

    source = write_export(tmp_path / "s", [{"pk": {"S": "a"}, "card": {"N": "4111 1111"}}], files=1)
    target = write_export(tmp_path / "t", [{"pk": {"S": "a"}, "card": {"N": "1"}}], files=1)
    with pytest.raises(ExportDataError) as caught:
        compare_exports(spark, resolve_export(str(source)), resolve_export(str(target)), ["pk"], "_rep_")
    message = str(caught.value)
    assert "card (N)" in message and "4111" not in message and "\n" not in message, message
