"""Unit tests of the pieces that need no database: canonical values, pacing, progress, state files."""

from __future__ import annotations

import io
import time

import pytest
from botocore.exceptions import ClientError

from cdk_replication.cli.errors import BadInput
from cdk_replication.cli.items import (
    KeySchema,
    canonical_number,
    from_json_item,
    item_digest,
    to_json_item,
)
from cdk_replication.cli.pacing import Retrier, TokenBucket
from cdk_replication.cli.progress import Progress, Rate
from cdk_replication.cli.state import StateFile

BIG = "12345678901234567890123456789012345678"


@pytest.mark.parametrize(
    ("a", "b"),
    [("1.50", "1.5"), ("100", "1E2"), ("-0", "0"), ("0.000", "0"), ("007", "7"), ("1e-130", "0.1E-129")],
)
def test_equal_numbers_have_one_canonical_form(a: str, b: str) -> None:
    assert canonical_number(a) == canonical_number(b)


def test_38_digit_numbers_stay_distinct() -> None:
    # Decimal.normalize() (28-digit context) and float would both merge these.
    assert canonical_number(BIG) != canonical_number(BIG[:-1] + "9")
    assert canonical_number("0." + BIG) != canonical_number("0." + BIG[:-1] + "9")
    with pytest.raises(ValueError, match="not a DynamoDB number"):
        canonical_number("twelve")


def test_digest_ignores_order_of_sets_and_maps_and_metadata_but_nothing_else() -> None:
    a = {"pk": {"S": "k"}, "s": {"SS": ["a", "b"]}, "m": {"M": {"x": {"N": "1"}, "y": {"B": b"\x00"}}}}
    b = {"m": {"M": {"y": {"B": b"\x00"}, "x": {"N": "1.0"}}}, "s": {"SS": ["b", "a"]}, "pk": {"S": "k"},
         "_rep_ts": {"N": "5"}}
    assert item_digest(a, "_rep_") == item_digest(b, "_rep_")
    assert item_digest(a, "") != item_digest(b, "")
    # Types are part of the value: the string "1" is not the number 1, a list is not a set.
    assert item_digest({"v": {"S": "1"}}, "") != item_digest({"v": {"N": "1"}}, "")
    assert item_digest({"v": {"L": [{"S": "a"}]}}, "") != item_digest({"v": {"SS": ["a"]}}, "")
    assert item_digest({"v": {"L": [{"S": "a"}, {"S": "b"}]}}, "") != item_digest(
        {"v": {"L": [{"S": "b"}, {"S": "a"}]}}, "")
    # Boundaries cannot be forged: ("ab", "") is not ("a", "b").
    assert item_digest({"a": {"S": "b"}}, "") != item_digest({"ab": {"S": ""}}, "")
    assert item_digest({"e": {"M": {}}}, "") != item_digest({"e": {"L": []}}, "")
    assert item_digest(None, "") is None


def test_json_form_round_trips_binary_everywhere() -> None:
    item = {"pk": {"B": b"\x00\xff"}, "bs": {"BS": [b"\x01"]}, "m": {"M": {"B": {"L": [{"B": b"\x02"}]}}},
            "n": {"N": BIG}}
    text = to_json_item(item)
    assert text["pk"] == {"B": "AP8="}
    assert from_json_item(text) == item


def test_key_ids_round_trip() -> None:
    schema = KeySchema("pk", "B", "sk", "N")
    item = {"pk": {"B": b"\x00"}, "sk": {"N": BIG}, "other": {"S": "x"}}
    assert schema.key_from_id(schema.key_id(item)) == {"pk": {"B": b"\x00"}, "sk": {"N": BIG}}
    assert schema.describe() == "pk (B) + sk (N)"


def _throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                       "PutItem")


def test_retrier_backs_off_on_throttling_only() -> None:
    sleeps: list[float] = []
    retrier = Retrier(max_attempts=5, sleep=sleeps.append)
    calls = iter([_throttled(), _throttled(), "ok"])

    def flaky() -> str:
        result = next(calls)
        if isinstance(result, Exception):
            raise result
        return result

    assert retrier.call(flaky) == "ok"
    assert retrier.retries == 2 and len(sleeps) == 2
    assert all(0 <= s <= 10 for s in sleeps)

    def denied() -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutItem")

    with pytest.raises(ClientError, match="AccessDenied"):
        retrier.call(denied)
    assert retrier.retries == 2  # not retried

    def always_throttled() -> None:
        raise _throttled()

    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        retrier.call(always_throttled)
    assert retrier.retries == 2 + 4  # five attempts: four retries


def test_token_bucket_holds_the_rate() -> None:
    bucket = TokenBucket(200)
    started = time.monotonic()
    for _ in range(60):
        bucket.acquire()
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 1.5  # 60 items at 200/s from an empty bucket: 0.3 s
    unlimited = TokenBucket(None)
    started = time.monotonic()
    unlimited.acquire(10**6)
    assert time.monotonic() - started < 0.05


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rewrites_one_line_on_a_terminal_and_prints_lines_otherwise() -> None:
    counter = iter(range(1000))
    tty = _Tty()
    with Progress(lambda: f"n={next(counter)}", tty, interval=0.01):
        time.sleep(0.3)
    assert tty.getvalue().count("\n") == 1 and tty.getvalue().count("\r") >= 2
    log = io.StringIO()
    with Progress(lambda: "line", log, interval=0.01):
        time.sleep(0.3)
    assert log.getvalue().count("line\n") >= 2 and "\r" not in log.getvalue()
    quiet = io.StringIO()
    with Progress(lambda: "x", quiet, enabled=False):
        pass
    assert quiet.getvalue() == ""
    assert "ETA" not in Rate(0).describe(5) and "ETA" in Rate(10**9).describe(5)


def test_state_file_refuses_another_runs_file(tmp_path) -> None:
    path = tmp_path / "s.json"
    first = StateFile(path, {"source": "a"})
    first.load()["progress"] = 3
    first.save()
    again = StateFile(path, {"source": "a"})
    assert again.load()["progress"] == 3 and again.resumed
    with pytest.raises(BadInput, match="belongs to another run"):
        StateFile(path, {"source": "b"}).load()
    path.write_text("{not json")
    with pytest.raises(BadInput, match="unreadable"):
        StateFile(path, {"source": "a"}).load()


def test_unchanged_condition_stays_within_dynamodb_expression_limits() -> None:
    from cdk_replication.cli.conditions import MAX_CONDITION_TERMS, unchanged

    small = unchanged("pk", {"pk": {"S": "k"}, "a": {"N": "1"}}, also_absent={"pk": {"S": "k"}, "b": {"S": ""}})
    assert small.expression == "attribute_exists(#pk) AND #a0 = :v0 AND #a1 = :v1 AND attribute_not_exists(#n0)"
    assert small.names == {"#pk": "pk", "#a0": "a", "#a1": "pk", "#n0": "b"}
    wide = {f"attr{i:03d}": {"N": str(i)} for i in range(400)} | {"_rep_marker": {"S": "m"}}
    big = unchanged("pk", wide, also_absent={"new": {"S": "x"}}, metadata_prefix="_rep_")
    assert big.expression.count(" = ") == MAX_CONDITION_TERMS
    assert big.names["#a0"] == "_rep_marker"  # what the replicator rewrites on every write is compared first
    assert len(big.expression) < 4096 and big.expression.count(" AND ") <= 150
    assert unchanged("pk", None).expression == "attribute_not_exists(#pk)"
