"""``backfill`` against DynamoDB Local."""

from __future__ import annotations

import random
import threading
from typing import Any

from cdk_replication.cli.backfill import MAX_REPORTED_FAILURES

from .helpers import put_many, scan_all


def _items(n: int, version: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "pk": {"S": f"item-{i:04d}"},
            "n": {"N": "12345678901234567890123456789012345678"},
            "b": {"B": bytes([i % 256, 0, 255])},
            "v": {"N": str(version)},
        }
        for i in range(n)
    ]


def test_backfill_copies_everything_and_keeps_existing_target_items(cli, ddb, make_table, tmp_path) -> None:
    source, target = make_table("src"), make_table("tgt")
    put_many(ddb, source, _items(300))
    # The replicator (or an earlier run) already wrote a newer state of three items: it must survive.
    newer = [{"pk": {"S": f"item-{i:04d}"}, "v": {"N": "99"}} for i in (0, 150, 299)]
    put_many(ddb, target, newer)

    run = cli("backfill", source, target, "--segments", "3", "--state-file", str(tmp_path / "s.json"), "--json")

    assert run.code == 0, run.err
    doc = run.json()
    assert doc["counts"] == {"scanned": 300, "copied": 297, "skipped": 3, "resynced": 0, "failed": 0}
    assert doc["complete"] is True
    assert not (tmp_path / "s.json").exists()
    copied = scan_all(ddb, target)
    expected = {(it["pk"]["S"],): it for it in _items(300)}
    for it in newer:
        expected[(it["pk"]["S"],)] = it
    assert copied == expected


def test_last_writer_wins_backfill_overwrites_only_older_items(cli, ddb, make_table) -> None:
    source, target = make_table("src"), make_table("tgt")
    put_many(ddb, source, [
        {"pk": {"S": "older-in-target"}, "v": {"N": "5"}, "x": {"S": "source"}},
        {"pk": {"S": "tie"}, "v": {"N": "5"}, "x": {"S": "source"}},
        {"pk": {"S": "newer-in-target"}, "v": {"N": "5"}, "x": {"S": "source"}},
        {"pk": {"S": "absent-in-target"}, "v": {"N": "5"}, "x": {"S": "source"}},
        {"pk": {"S": "no-version"}, "x": {"S": "source"}},
    ])
    put_many(ddb, target, [
        {"pk": {"S": "older-in-target"}, "v": {"N": "4.99999999999999999999999999999999999"}, "x": {"S": "t"}},
        {"pk": {"S": "tie"}, "v": {"N": "5"}, "x": {"S": "target"}},
        {"pk": {"S": "newer-in-target"}, "v": {"N": "6"}, "x": {"S": "target"}},
    ])

    run = cli("backfill", source, target, "--conflict-attribute", "v", "--conflict-strategy", "VERSION", "--json",
              "--state-file", "unused-state.json")

    assert run.code == 1, run.err  # the item without a version cannot be ordered: reported, not guessed
    doc = run.json()
    assert doc["counts"] == {"scanned": 5, "copied": 2, "skipped": 2, "resynced": 0, "failed": 1}
    assert [f["key"] for f in doc["failures"]] == [{"pk": {"S": "no-version"}}]
    assert "conflict attribute 'v'" in doc["failures"][0]["reason"]
    after = {k[0]: v["x"]["S"] for k, v in scan_all(ddb, target).items()}
    assert after == {
        "older-in-target": "source",
        "tie": "target",
        "newer-in-target": "target",
        "absent-in-target": "source",
    }


def test_backfill_during_live_writes_converges_once_the_stream_is_replayed(cli, ddb, make_table) -> None:
    """A writer changes the source during the backfill and, like the replicator, mirrors each change to the
    target at once (full new image or delete). The backfill must never overwrite those mirrored writes, nor
    bring back an item the writer deleted from both tables after the backfill scanned it (issue 10, defect 9:
    this test used to accept such items as "extra" until the stream was replayed; with the replicator running
    during the copy nothing would replay them). So the tables agree as soon as the backfill ends, and a
    replay of the stream from TRIM_HORIZON afterwards changes nothing.
    """
    source, target = make_table("src"), make_table("tgt")
    put_many(ddb, source, _items(600))
    log: list[tuple[str, dict[str, Any] | None]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        rnd = random.Random(1234)
        try:
            while not stop.is_set():
                pk = f"item-{rnd.randrange(700):04d}"  # 600-699 do not exist yet: inserts
                key = {"pk": {"S": pk}}
                op = rnd.choice(("put", "update", "delete"))
                if op == "put":
                    new: dict[str, Any] | None = {**key, "v": {"N": str(rnd.randrange(10**6))}, "b": {"B": b"\x00"}}
                    ddb.put_item(TableName=source, Item=new)
                elif op == "update":
                    new = ddb.update_item(
                        TableName=source, Key=key, ReturnValues="ALL_NEW",
                        UpdateExpression="SET v = if_not_exists(v, :zero) + :one, w = :w",
                        ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}, ":w": {"SS": ["x", pk]}},
                    )["Attributes"]
                else:
                    ddb.delete_item(TableName=source, Key=key)
                    new = None
                # The replicator's write for this change: the new image, or a delete.
                if new is None:
                    ddb.delete_item(TableName=target, Key=key)
                else:
                    ddb.put_item(TableName=target, Item=new)
                log.append((pk, new))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        run = cli("backfill", source, target, "--segments", "4", "--workers", "4", "--rate", "250",
                  "--page-size", "50", "--json")
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert run.code == 0, run.err
    assert run.json()["counts"]["failed"] == 0
    assert len(log) >= 30, "the writer must have overlapped the backfill"

    check = cli("verify", source, target, "--json")
    doc = check.json()
    assert (doc["missing"], doc["extra"], doc["different"]) == ([], [], []), doc
    assert check.code == 0

    # Enabling the mapping replays the stream from TRIM_HORIZON: every change, in order.
    for pk, new in log:
        if new is None:
            ddb.delete_item(TableName=target, Key={"pk": {"S": pk}})
        else:
            ddb.put_item(TableName=target, Item=new)
    final = cli("verify", source, target, "--json")
    assert final.code == 0, final.out
    assert scan_all(ddb, source) == scan_all(ddb, target)


def test_cross_account_copy_with_one_profile_per_side(local, cli, monkeypatch, tmp_path) -> None:
    """Two accounts (two DynamoDB Local databases) holding tables of the same name and region."""
    from cdk_replication.local import credentials_for_account

    creds = tmp_path / "credentials"
    creds.write_text("".join(
        f"[{profile}]\naws_access_key_id = {credentials_for_account(account).access_key_id}\n"
        "aws_secret_access_key = local\n"
        for profile, account in (("prod", "111111111111"), ("dev", "222222222222"))
    ))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    prod = local.client("dynamodb", region="us-east-1", account="111111111111")
    dev = local.client("dynamodb", region="us-east-1", account="222222222222")
    name = f"orders-{random.randrange(10**8)}"
    for client in (prod, dev):
        client.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST")
    try:
        put_many(prod, name, _items(30))
        run = cli("backfill", name, name, "--source-profile", "prod", "--target-profile", "dev", "--json")
        assert run.code == 0, run.err
        assert run.json()["counts"]["copied"] == 30
        assert scan_all(dev, name) == scan_all(prod, name)
        same = cli("verify", name, name, "--profile", "prod")  # one profile: the same table twice
        assert same.code == 2 and "same table" in same.err
        assert cli("verify", name, name, "--source-profile", "prod", "--target-profile", "dev").code == 0
    finally:
        for client in (prod, dev):
            client.delete_table(TableName=name)


def test_failure_counts_are_true_when_the_list_is_capped(cli, ddb, make_table) -> None:
    """1,100 items that cannot be ordered (no conflict value): every count and line says 1,100, and the list,
    capped at 1,000 (``MAX_REPORTED_FAILURES``), says it is capped. (1,100, not more: every number here still
    has a thousands separator, and each item costs a write and two backfills of time.)"""
    assert MAX_REPORTED_FAILURES == 1000
    source, target = make_table("src"), make_table("tgt")
    put_many(ddb, source, [{"pk": {"S": f"n{i:04d}"}} for i in range(1100)])

    run = cli("backfill", source, target, "--conflict-attribute", "v", "--json")
    assert run.code == 1, run.err
    doc = run.json()
    assert doc["counts"]["failed"] == 1100 and doc["totals"]["failed"] == 1100
    assert doc["failuresTotal"] == 1100
    assert doc["failuresListed"] == len(doc["failures"]) == 1000
    assert doc["failuresTruncated"] is True

    text = cli("backfill", source, target, "--conflict-attribute", "v")
    assert text.code == 1
    assert "failed 1,100" in text.out
    assert "failed items (1,100):" in text.out
    assert "... and 1,080 more (--json lists the first 1,000 of the 1,100)" in text.out
    assert scan_all(ddb, target) == {}
