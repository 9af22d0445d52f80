"""Configuration parsing: defaults, and a bad value fails with a message naming its variable."""

from __future__ import annotations

import json

import pytest

from replicator.config import ConfigError, ConflictStrategy, Mode, TtlDeletes, load_config

SOURCE = {"tableName": "orders", "region": "us-east-1", "account": "111111111111"}
TARGET = {"tableName": "orders", "region": "eu-west-1", "account": "111111111111"}


def env(**overrides: object) -> dict[str, str]:
    base: dict[str, object] = {
        "REPLICATION_SOURCE": SOURCE,
        "REPLICATION_TARGETS": [TARGET],
        "REPLICATION_KEY": {"partitionKey": "pk", "sortKey": None},
    }
    base.update(overrides)
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in base.items()}


def test_defaults():
    config = load_config(env())
    assert config.mode is Mode.ONE_WAY
    assert config.metadata_prefix == "_rep_"
    assert config.conflict_attribute == "updatedAt"
    assert config.conflict_strategy is ConflictStrategy.TIMESTAMP
    assert config.max_concurrency == 128
    assert config.log_level == "INFO"
    assert config.ttl_deletes is TtlDeletes.REPLICATE
    assert config.ttl_attribute == "_rep_expiresAt"
    assert config.tombstone_ttl_seconds == 172800
    assert config.key.names == ("pk",)
    assert config.targets[0].role_arn is None


def test_multi_active_defaults_replicate_ttl_deletes_and_follow_the_prefix():
    config = load_config(env(REPLICATION_MODE="MULTI_ACTIVE", REPLICATION_METADATA_PREFIX="meta_"))
    assert config.ttl_deletes is TtlDeletes.REPLICATE  # skipped, they let the copies diverge (issue 10)
    assert config.ttl_attribute == "meta_expiresAt"
    with pytest.raises(ConfigError, match="REPLICATION_TTL_DELETES=SKIP is not supported with .*MULTI_ACTIVE"):
        load_config(env(REPLICATION_MODE="MULTI_ACTIVE", REPLICATION_TTL_DELETES="SKIP"))


def test_role_and_sort_key():
    target = {**TARGET, "account": "222222222222", "roleArn": "arn:aws:iam::222222222222:role/w"}
    config = load_config(env(REPLICATION_TARGETS=[target], REPLICATION_KEY={"partitionKey": "pk", "sortKey": "sk"}))
    assert config.targets[0].role_arn == "arn:aws:iam::222222222222:role/w"
    assert config.key.names == ("pk", "sk")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"REPLICATION_SOURCE": ""}, "REPLICATION_SOURCE is required"),
        ({"REPLICATION_SOURCE": "{not json"}, "REPLICATION_SOURCE is not valid JSON"),
        ({"REPLICATION_SOURCE": {**SOURCE, "account": "12"}}, r"REPLICATION_SOURCE\.account"),
        ({"REPLICATION_SOURCE": {**SOURCE, "roleArn": "arn:x"}}, "REPLICATION_SOURCE has unknown field"),
        ({"REPLICATION_TARGETS": []}, "REPLICATION_TARGETS must be a non-empty JSON list"),
        ({"REPLICATION_TARGETS": [TARGET, TARGET]}, "REPLICATION_TARGETS names .* twice"),
        ({"REPLICATION_TARGETS": [SOURCE]}, "REPLICATION_TARGETS names the source table"),
        ({"REPLICATION_TARGETS": [{**TARGET, "region": "Europe"}]}, r"REPLICATION_TARGETS\[0\]\.region"),
        ({"REPLICATION_TARGETS": [{**TARGET, "roleArn": 5}]}, r"REPLICATION_TARGETS\[0\]\.roleArn"),
        ({"REPLICATION_KEY": {"sortKey": "sk"}}, "REPLICATION_KEY must be"),
        ({"REPLICATION_MODE": "BOTH_WAYS"}, "REPLICATION_MODE='BOTH_WAYS' is not one of ONE_WAY, MULTI_ACTIVE"),
        ({"REPLICATION_CONFLICT_STRATEGY": "RANDOM"}, "REPLICATION_CONFLICT_STRATEGY"),
        ({"REPLICATION_MAX_CONCURRENCY": "many"}, "REPLICATION_MAX_CONCURRENCY='many' is not an integer"),
        ({"REPLICATION_MAX_CONCURRENCY": "0"}, r"REPLICATION_MAX_CONCURRENCY=0 is outside 1\.\.512"),
        ({"REPLICATION_MAX_CONCURRENCY": "513"}, "REPLICATION_MAX_CONCURRENCY=513"),
        ({"REPLICATION_METADATA_PREFIX": "p"}, "REPLICATION_METADATA_PREFIX='p' is a prefix of key attribute"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD'"),
        ({"REPLICATION_TTL_DELETES": "SOMETIMES"}, "REPLICATION_TTL_DELETES"),
        ({"REPLICATION_TOMBSTONE_TTL_SECONDS": "3600"}, "REPLICATION_TOMBSTONE_TTL_SECONDS=3600 is outside"),
        # Below twice the stream retention a tombstone's logical expiry is unsound (docs/conflicts.md).
        ({"REPLICATION_TOMBSTONE_TTL_SECONDS": "172799"}, "REPLICATION_TOMBSTONE_TTL_SECONDS=172799 is outside"),
        ({"REPLICATION_TTL_ATTRIBUTE": "pk"}, "REPLICATION_TTL_ATTRIBUTE='pk'"),
        (
            {"REPLICATION_MODE": "MULTI_ACTIVE", "REPLICATION_TARGETS": [{**TARGET, "region": "us-east-1", "account": "222222222222"}]},
            "every copy must be in its own region",
        ),
        ({"REPLICATION_MODE": "MULTI_ACTIVE", "REPLICATION_CONFLICT_ATTRIBUTE": "_rep_ts"}, "starts with the metadata"),
        ({"REPLICATION_MODE": "MULTI_ACTIVE", "REPLICATION_CONFLICT_ATTRIBUTE": "pk"}, "is a key attribute"),
    ],
)
def test_invalid_values_name_the_variable(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env(**overrides))


def test_cold_start_fails_on_bad_environment(monkeypatch):
    import importlib
    import sys

    for name, value in env(REPLICATION_MAX_CONCURRENCY="-3").items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("replicator.handler", None)
    with pytest.raises(ConfigError, match="REPLICATION_MAX_CONCURRENCY"):
        importlib.import_module("replicator.handler")
    sys.modules.pop("replicator.handler", None)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # Another account, reached with the function's own credentials through the table's resource policy:
        # AWS reads a plain name as a table of the caller's account, so only the ARN reaches it.
        ({"account": "222222222222"}, "arn:aws:dynamodb:eu-west-1:222222222222:table/orders"),
        ({"account": "222222222222", "region": "cn-north-1"}, "arn:aws-cn:dynamodb:cn-north-1:222222222222:table/orders"),
        # A writer role in the target account signs the request there: its plain name is its own table.
        ({"account": "222222222222", "roleArn": "arn:aws:iam::222222222222:role/w"}, "orders"),
        ({}, "orders"),  # the caller's own account
    ],
)
def test_targets_in_another_account_are_named_by_arn_unless_a_role_is_assumed(target, expected):
    config = load_config(env(REPLICATION_TARGETS=[{**TARGET, **target}]))
    assert config.targets[0].request_name == expected
