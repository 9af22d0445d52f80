"""LocalFunction: one worker process per container, Lambda's context, errors, timeouts and fault hooks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdk_replication.local import LocalFunction, credentials_for_account
from cdk_replication.local.lambda_runtime import FunctionInitError

PROBE = Path(__file__).parent / "functions" / "probe"
REGION, ACCOUNT = "eu-west-1", "222222222222"


def _function(ddb_local=None, name="probe", timeout_s=15.0, environment=None, handler="probe.handler"):
    return LocalFunction(
        name,
        PROBE,
        handler,
        environment or {},
        region=REGION,
        account=ACCOUNT,
        credentials_env=credentials_for_account(ACCOUNT).as_env(),
        endpoint_env=ddb_local.endpoint_env() if ddb_local else {},
        timeout_s=timeout_s,
        memory_mb=256,
    )


def test_module_state_lives_as_long_as_the_container():
    fn = _function()
    try:
        first = fn.invoke({"action": "echo", "n": 1})
        second = fn.invoke({"action": "echo", "n": 2})
        assert first.error_type is None and first.cold_start and not second.cold_start
        assert first.payload["container"] == second.payload["container"]
        assert second.payload["invocations"] == 2
        assert second.payload["event"] == {"action": "echo", "n": 2}
    finally:
        fn.stop()  # stopping drains the log pipe
    assert sum('"action": "echo"' in line for line in fn.logs()) == 2


def test_context_reports_name_arn_memory_and_remaining_time():
    fn = _function(timeout_s=5)
    try:
        result = fn.invoke({"action": "context"})
        ctx = result.payload
        assert ctx["aws_request_id"] == result.request_id
        assert ctx["function_name"] == "probe"
        assert ctx["invoked_function_arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:probe"
        assert ctx["memory_limit_in_mb"] == "256"
        assert 2500 < ctx["remaining_ms"] <= 5000
    finally:
        fn.stop()


def test_each_function_has_its_own_environment():
    a = _function(name="a", environment={"COLOR": "red"})
    b = _function(name="b", environment={"COLOR": "blue", "AWS_REGION": "us-east-1"})
    names = ["COLOR", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_LAMBDA_FUNCTION_NAME", "HOME"]
    try:
        env_a = a.invoke({"action": "env", "names": names}).payload
        env_b = b.invoke({"action": "env", "names": names}).payload
    finally:
        a.stop()
        b.stop()
    assert env_a["COLOR"] == "red" and env_b["COLOR"] == "blue"
    # Reserved names come from the function's own region and account, never from its configuration.
    assert env_b["AWS_REGION"] == env_b["AWS_DEFAULT_REGION"] == REGION
    assert env_a["AWS_ACCESS_KEY_ID"] == credentials_for_account(ACCOUNT).access_key_id
    assert env_a["AWS_LAMBDA_FUNCTION_NAME"] == "a"
    assert env_a["HOME"] is None  # nothing of the test runner's environment leaks in


def test_handler_exception_is_a_function_error_and_keeps_the_container():
    fn = _function()
    try:
        before = fn.invoke({"action": "echo"}).payload["container"]
        failed = fn.invoke({"action": "raise", "message": "bad record"})
        after = fn.invoke({"action": "echo"}).payload["container"]
    finally:
        fn.stop()
    assert failed.function_error
    assert (failed.error_type, failed.error_message) == ("ValueError", "bad record")
    assert before == after
    assert fn.stats.errors == 1


def test_timeout_kills_the_container_and_the_next_call_is_a_cold_start():
    fn = _function(timeout_s=0.5)
    try:
        before = fn.invoke({"action": "echo"}).payload["container"]
        timed_out = fn.invoke({"action": "sleep", "seconds": 5})
        after = fn.invoke({"action": "echo"})
    finally:
        fn.stop()
    assert timed_out.error_type == "Sandbox.Timedout"
    assert "Task timed out after 0.50 seconds" in timed_out.error_message
    assert timed_out.duration_s < 4  # stopped at the deadline, not after the 5 s sleep
    assert after.cold_start and after.payload["container"] != before
    assert fn.stats.timeouts == 1


def test_unserialisable_result_is_an_error():
    fn = _function()
    try:
        result = fn.invoke({"action": "unserialisable"})
    finally:
        fn.stop()
    assert result.error_type == "Runtime.MarshalError"


def test_missing_handler_fails_init_with_a_clear_error():
    fn = _function(handler="probe.no_such_function")
    with pytest.raises(FunctionInitError, match="no_such_function") as raised:
        fn.start()
    assert raised.value.error_type == "Runtime.HandlerNotFound"
    result = fn.invoke({})  # through invoke, a failed init is a function error, as on Lambda
    assert result.error_type == "Runtime.HandlerNotFound" and "no_such_function" in result.error_message


def test_missing_module_is_an_import_error():
    result = _function(handler="no_such_module.handler").invoke({})
    assert result.error_type == "Runtime.ImportModuleError"


def _table(ddb_local, name):
    client = ddb_local.client(region=REGION, account=ACCOUNT)
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


def _count(client, table):
    return client.scan(TableName=table, Select="COUNT", ConsistentRead=True)["Count"]


def test_function_writes_to_its_own_region_and_account(ddb_local):
    client = _table(ddb_local, "rt-own-account")
    fn = _function(ddb_local)
    try:
        result = fn.invoke({"action": "put", "table": "rt-own-account", "count": 2, "prefix": "x"})
    finally:
        fn.stop()
    assert result.payload == {"done": 2, "error": None}
    assert _count(client, "rt-own-account") == 2


def test_crash_after_k_writes_kills_the_container_mid_batch(ddb_local):
    client = _table(ddb_local, "rt-crash")
    fn = _function(ddb_local)
    fn.faults.crash_after_writes(3)
    try:
        crashed = fn.invoke({"action": "put", "table": "rt-crash", "count": 10, "prefix": "a"})
        again = fn.invoke({"action": "put", "table": "rt-crash", "count": 10, "prefix": "b"})
    finally:
        fn.stop()
    assert crashed.error_type == "Runtime.ExitError"
    assert "signal: killed" in crashed.error_message
    assert _count(client, "rt-crash") == 3 + 10  # exactly 3 writes landed before the crash; it fires once
    assert again.cold_start and again.payload["done"] == 10
    assert fn.stats.crashes == 1 and not fn.faults.crash_armed


def test_throttled_writes_are_retried_by_the_sdk(ddb_local):
    client = _table(ddb_local, "rt-throttle")
    fn = _function(ddb_local)
    fault = fn.faults.throttle_writes("rt-throttle", calls=3)
    try:
        result = fn.invoke({"action": "put", "table": "rt-throttle", "count": 2, "prefix": "t"})
    finally:
        fn.stop()
    assert result.payload == {"done": 2, "error": None}
    assert fault.failed_calls == 3 and fault.exhausted
    assert _count(client, "rt-throttle") == 2


def test_failed_writes_return_the_chosen_error_only_for_that_table(ddb_local):
    _table(ddb_local, "rt-fail")
    other = _table(ddb_local, "rt-fail-other")
    fn = _function(ddb_local)
    fn.faults.fail_writes("rt-fail", "AccessDeniedException", calls=1)
    try:
        failed = fn.invoke({"action": "put", "table": "rt-fail", "count": 1, "prefix": "f"})
        unaffected = fn.invoke({"action": "put", "table": "rt-fail-other", "count": 1, "prefix": "f"})
        healed = fn.invoke({"action": "put", "table": "rt-fail", "count": 1, "prefix": "f"})
    finally:
        fn.stop()
    assert failed.payload == {"done": 0, "error": "AccessDeniedException"}
    assert unaffected.payload["done"] == 1 and healed.payload["done"] == 1
    assert _count(other, "rt-fail-other") == 1


def test_a_fraction_of_writes_fails(ddb_local):
    _table(ddb_local, "rt-fraction")
    fn = _function(ddb_local)
    fault = fn.faults.fail_writes("rt-fraction", "ValidationException", fraction=0.5, seed=3)
    outcomes = []
    try:
        for i in range(20):
            outcomes.append(fn.invoke({"action": "put", "table": "rt-fraction", "count": 1, "prefix": f"p{i}-"})
                            .payload["error"])
    finally:
        fn.stop()
    failures = outcomes.count("ValidationException")
    assert 3 <= failures <= 17 and failures == fault.failed_calls


def test_a_container_starts_and_answers_in_a_process_holding_over_1024_descriptors():
    # A process that runs many containers, gateway connections and DynamoDB Local clients passes select()'s
    # FD_SETSIZE; the runtime must still hear its containers.
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    fn = _function()
    try:
        result = fn.invoke({"action": "echo", "n": 1})
        assert result.error_type is None and result.payload["event"] == {"action": "echo", "n": 1}
    finally:
        fn.stop()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
