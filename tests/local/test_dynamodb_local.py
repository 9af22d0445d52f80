"""Starting DynamoDB Local: a start that takes too long ends with a message that says what to do."""

from __future__ import annotations

import pytest

from cdk_replication.local.dynamodb_local import DEFAULT_START_TIMEOUT_S, DynamoDBLocal, DynamoDBLocalError


def test_the_default_start_limit_is_generous_for_a_loaded_machine():
    # A JVM starting on a loaded 2-core machine was seen to take 52 s; the limit leaves room above that.
    assert DEFAULT_START_TIMEOUT_S >= 120


def test_a_start_that_outlasts_its_limit_says_why_and_what_to_do():
    ddb = DynamoDBLocal()
    with pytest.raises(DynamoDBLocalError, match=r"did not answer .* within 0 s \(the JVM starts slowly .*timeout_s"):
        ddb.start(timeout_s=0.0)
    assert ddb._proc is None  # stopped again: no JVM is left behind
