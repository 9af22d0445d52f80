"""The lean PutItem path (replicator/lean_put.py) sends what botocore sends and answers what botocore answers.

No server: requests are answered by ``before-send`` handlers (as the local runtime's faults and the benchmarks'
round trip hook in), except for one request to a closed port (a transport error).
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import time
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from replicator import lean_put
from replicator.clients import ClientFactory
from replicator.conditional_writer import conditional_put
from replicator.config import TableRef
from replicator.retry import Deadline

TABLE = TableRef("orders", "eu-west-1", "111111111111")
ROLE = "arn:aws:iam::222222222222:role/writer"
ITEM = {
    "pk": {"S": "k\u00e9y"},
    "n": {"N": "12345678901234567890123456789012345678"},
    "b": {"B": b"\x00\xff binary"},
    "bs": {"BS": [b"a", b"\x01"]},
    "m": {"M": {"l": {"L": [{"NULL": True}, {"BOOL": False}, {"SS": ["x", "y"]}]}}},
    "e": {"S": ""},
}
PARAMS = {
    "TableName": TABLE.table_name,
    "Item": ITEM,
    "ConditionExpression": "attribute_not_exists(#k) OR #c < :v",
    "ExpressionAttributeNames": {"#k": "pk", "#c": "updatedAt"},
    "ExpressionAttributeValues": {":v": {"N": "5"}},
    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def _answer(status: int, body: dict[str, Any] | bytes) -> AWSResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return AWSResponse("http://stub", status, {"x-amzn-requestid": "r"}, _Raw(raw))


@pytest.fixture
def own_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDOWN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret/own")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token+own")
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def _capture(client: Any, answers: list[AWSResponse] | None = None) -> list[Any]:
    """Answer every request of ``client`` (next of ``answers``, default an empty success); keep each."""
    sent: list[Any] = []

    def handler(request: Any, **_: Any) -> AWSResponse:
        sent.append(request)
        return answers.pop(0) if answers else _answer(200, {})

    client.meta.events.register("before-send", handler)
    return sent


def test_the_request_is_botocores_byte_for_byte(own_credentials):
    client = ClientFactory(4, "s").for_table(TABLE)
    sent = _capture(client)
    client.put_item(**PARAMS)  # botocore's own path
    lean_put.put_item(client, PARAMS)
    ours_path = lean_put.lean_for(client)
    assert ours_path is not None
    theirs, ours = sent
    assert ours.url == theirs.url == "https://dynamodb.eu-west-1.amazonaws.com/"
    assert ours.body == theirs.body
    # Signed at botocore's instant, the signature must be botocore's.
    at = calendar.timegm(time.strptime(theirs.headers["X-Amz-Date"].decode(), "%Y%m%dT%H%M%SZ"))
    again = ours_path.request(PARAMS, now=at)
    assert again.headers["Authorization"] == theirs.headers["Authorization"].decode()
    assert again.headers["X-Amz-Security-Token"] == theirs.headers["X-Amz-Security-Token"].decode()


def test_the_endpoint_is_the_one_boto3_would_use(own_credentials, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8123")
    client = ClientFactory(4, "s").for_table(TABLE)
    sent = _capture(client)
    client.put_item(**PARAMS)
    lean_put.put_item(client, PARAMS)
    assert [r.url for r in sent] == ["http://127.0.0.1:8123/"] * 2
    assert sent[0].headers["Authorization"].decode().split(", Signature=")[0] == \
        sent[1].headers["Authorization"].split(", Signature=")[0]


def _put(client: Any, deadline_s: float = 5.0) -> tuple[bool, Any, Any]:
    condition = (PARAMS["ConditionExpression"], PARAMS["ExpressionAttributeNames"],
                 PARAMS["ExpressionAttributeValues"])
    return conditional_put(client, TABLE, ITEM, condition, Deadline(time.monotonic() + deadline_s))


def test_condition_failure_returns_the_stored_item_with_binary_as_bytes(own_credentials):
    client = ClientFactory(4, "s").for_table(TABLE)
    stored = {"pk": {"S": "k"}, "b": {"B": "AP8="}, "bs": {"BS": ["YQ=="]}, "m": {"M": {"x": {"B": "AQ=="}}}}
    failure = {"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
               "message": "The conditional request failed", "Item": stored}
    sent = _capture(client, [_answer(400, failure)])
    written, item, error = _put(client)
    assert (written, error) == (False, None)
    assert item == {"pk": {"S": "k"}, "b": {"B": b"\x00\xff"}, "bs": {"BS": [b"a"]}, "m": {"M": {"x": {"B": b"\x01"}}}}
    assert len(sent) == 1


def test_throttling_and_5xx_are_retried_validation_is_not(own_credentials):
    client = ClientFactory(4, "s").for_table(TABLE)
    throttled = {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException", "message": "slow down"}
    sent = _capture(client, [_answer(400, throttled), _answer(503, b"<html>busy</html>")])
    assert _put(client) == (True, None, None)
    assert len(sent) == 3

    invalid = {"__type": "com.amazon.coral.validate#ValidationException", "message": "bad"}
    client2 = ClientFactory(4, "s").for_table(TABLE)
    sent = _capture(client2, [_answer(400, invalid)])
    written, _, error = _put(client2)
    assert written is False and error.code == "ValidationException" and not error.retries_exhausted
    assert len(sent) == 1


def test_a_transport_error_is_retried_until_the_deadline(own_credentials, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")  # nothing listens
    client = ClientFactory(4, "s").for_table(TABLE)
    written, _, error = _put(client, deadline_s=0.3)
    assert written is False and error.code == "EndpointConnectionError" and error.retries_exhausted


def test_assumed_role_credentials_are_refreshed_before_they_expire(own_credentials):
    keys: list[str] = []

    def assume_role(role_arn: str, session_name: str) -> dict[str, Any]:
        keys.append(f"ROLE{len(keys)}")
        # Inside botocore's mandatory refresh window: every request fetches new credentials.
        expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=60)
        return {"AccessKeyId": keys[-1], "SecretAccessKey": "s", "SessionToken": "t", "Expiration": expiry}

    client = ClientFactory(4, "s", assume_role=assume_role).for_table(TableRef("t", "eu-west-1", "222222222222", ROLE))
    sent = _capture(client)
    lean_put.put_item(client, PARAMS)
    lean_put.put_item(client, PARAMS)
    used = [r.headers["Authorization"].split("Credential=")[1].split("/")[0] for r in sent]
    assert used[0] != used[1] and set(used) <= set(keys) and "AKIDOWN" not in used


def test_hooks_see_the_call_as_botocore_shows_it(own_credentials):
    client = ClientFactory(4, "s").for_table(TABLE)
    seen: list[str] = []
    client.meta.events.register("provide-client-params.dynamodb.PutItem", lambda params, **_: seen.append("params"))
    client.meta.events.register("before-call.dynamodb.PutItem", lambda model, **_: seen.append(model.name))
    client.meta.events.register("after-call.dynamodb.PutItem",
                                lambda http_response, **_: seen.append(http_response.status_code))
    _capture(client)
    lean_put.put_item(client, PARAMS)
    assert seen == ["params", "PutItem", 200]


def test_the_benchmarks_round_trip_applies(own_credentials, monkeypatch):
    import benchmarks.rtt as rtt

    slept: list[float] = []
    monkeypatch.setattr(rtt.time, "sleep", slept.append)
    client = ClientFactory(4, "s").for_table(TABLE)
    rtt.add_round_trip(client, 100)
    sent = _capture(client)  # registered after the round trip, as the answer comes after the wait
    assert _put(client) == (True, None, None)
    assert slept == [0.1] and len(sent) == 1


def test_requests_go_through_the_clients_own_pool(own_credentials, monkeypatch):
    """Timeouts, pool size and keep-alive are the client's (clients.client_config), not new ones."""
    from replicator.clients import CONNECT_TIMEOUT_S, READ_TIMEOUT_S

    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8123")
    client = ClientFactory(17, "s").for_table(TABLE)
    lean = lean_put.lean_for(client)
    assert lean is not None
    transport = lean._endpoint_for(TABLE.table_name).transport
    session = client._endpoint.http_session
    assert transport is not None
    assert transport._pool is session._manager.connection_from_url("http://127.0.0.1:8123/")
    assert (transport._pool.timeout.connect_timeout, transport._pool.timeout.read_timeout) == (CONNECT_TIMEOUT_S,
                                                                                               READ_TIMEOUT_S)
    assert transport._pool.pool.maxsize == 17
