"""The HMAC key loader: read once, cached per container for the refresh period, recompiled on a change."""

from __future__ import annotations

from typing import Any

import pytest

from replicator import secrets
from replicator.config import load_config
from replicator.transform import with_digest

ARN = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:hmac-AbCdEf"


class FakeSecrets:
    def __init__(self, **response: Any) -> None:
        self.response = response
        self.calls = 0

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:
        assert SecretId == ARN
        self.calls += 1
        return self.response


@pytest.fixture(autouse=True)
def fresh_cache():
    secrets.forget_cached_keys()
    yield
    secrets.forget_cached_keys()


def test_key_is_cached_for_the_refresh_period_then_read_again() -> None:
    client, now = FakeSecrets(SecretString="first"), [1000.0]
    load = lambda: secrets.load_hmac_key(client, ARN, refresh_seconds=60, clock=lambda: now[0])  # noqa: E731
    assert load() == b"first" and load() == b"first" and client.calls == 1
    client.response = {"SecretString": "second"}
    now[0] += 59
    assert load() == b"first"
    now[0] += 2
    assert load() == b"second" and client.calls == 2


def test_binary_secret_and_empty_secret() -> None:
    assert secrets.load_hmac_key(FakeSecrets(SecretBinary=b"\x00\x01"), ARN) == b"\x00\x01"
    secrets.forget_cached_keys()
    with pytest.raises(ValueError, match="is empty"):
        secrets.load_hmac_key(FakeSecrets(SecretString=""), ARN)


def test_secret_region_comes_from_the_arn() -> None:
    assert secrets.secret_region(ARN) == "eu-west-1"
    with pytest.raises(ValueError, match="not a Secrets Manager secret ARN"):
        secrets.secret_region("arn:aws:s3:::bucket")


def test_target_transforms_read_keys_at_start_and_recompile_on_a_new_key() -> None:
    spec = with_digest({"version": 1, "filter": None, "keep": None, "drop": None,
                        "masks": {"email": {"kind": "hmac"}}, "secretArn": ARN})
    target = {"tableName": "replica", "region": "eu-west-1", "account": "222222222222", "transform": spec}
    env = {
        "REPLICATION_SOURCE": '{"tableName": "src", "region": "us-east-1", "account": "111111111111"}',
        "REPLICATION_TARGETS": __import__("json").dumps([target]),
        "REPLICATION_KEY": '{"partitionKey": "pk"}',
    }
    config = load_config(env)
    keys = [b"one"]
    reads: list[str] = []
    transforms = secrets.TargetTransforms(config, lambda arn: reads.append(arn) or keys[0])
    assert reads == [ARN]  # at cold start, before any record
    first = transforms.get(config.targets[0])
    assert first is not None and transforms.get(config.targets[0]) is first
    keys[0] = b"two"
    second = transforms.get(config.targets[0])
    assert second is not first
    item = {"pk": {"S": "k"}, "email": {"S": "e"}}
    assert first.apply(item) != second.apply(item)
