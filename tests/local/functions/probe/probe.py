"""A tiny Lambda handler for the local runtime's tests; the event says what to do."""

import json
import os
import time

import boto3

# Module-level state lives as long as the container, as on Lambda.
CONTAINER_ID = os.urandom(8).hex()
INVOCATIONS = 0
_dynamodb = None


def _client():
    global _dynamodb
    if _dynamodb is None:
        _dynamodb = boto3.client("dynamodb")
    return _dynamodb


def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    action = event.get("action", "echo")
    print(json.dumps({"action": action, "request": context.aws_request_id}))
    if action == "echo":
        return {"event": event, "container": CONTAINER_ID, "invocations": INVOCATIONS}
    if action == "context":
        return {
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
        }
    if action == "env":
        return {name: os.environ.get(name) for name in event["names"]}
    if action == "raise":
        raise ValueError(event.get("message", "boom"))
    if action == "sleep":
        time.sleep(event["seconds"])
        return {"slept": event["seconds"]}
    if action == "put":
        # One PutItem per item; reports how many succeeded and the error code that stopped it, if any.
        done = 0
        for i in range(event["count"]):
            try:
                _client().put_item(TableName=event["table"], Item={"pk": {"S": f"{event['prefix']}{i}"}})
            except Exception as exc:  # the test inspects the error code
                return {"done": done, "error": getattr(exc, "response", {}).get("Error", {}).get("Code", repr(exc))}
            done += 1
        return {"done": done, "error": None}
    if action == "unserialisable":
        return {"value": object()}
    raise ValueError(f"unknown action {action!r}")
