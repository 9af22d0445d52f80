"""The process that plays one Lambda execution environment ("container") for :mod:`.lambda_runtime`.

Run as a script by path (never imported as part of the package), so the container holds nothing but the
standard library, boto3 and the function's own code, as on Lambda. It talks to its parent over two inherited
pipe file descriptors, one JSON object per line; the function's own stdout/stderr go to the parent's log
reader.

Protocol (parent -> worker): ``{"requestId", "event", "deadlineMs", "faults"}``.
Worker -> parent: first ``{"ready": true}`` or ``{"ready": false, "errorType", "errorMessage"}`` once the
handler module is imported (Lambda's init phase), then per invocation ``{"ok": true, "payload", "usage"}`` or
``{"ok": false, "errorType", "errorMessage", "stackTrace", "usage"}``.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import sys
import time
import traceback
from typing import Any

_WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


class _Faults:
    """The faults armed for the current invocation, applied through botocore's event system."""

    def __init__(self) -> None:
        self.crash_after_writes: int | None = None
        self.write_faults: list[dict[str, Any]] = []
        self.writes = 0
        self.failed: dict[int, int] = {}
        self._rngs: dict[int, random.Random] = {}

    def arm(self, spec: dict[str, Any] | None) -> None:
        spec = spec or {}
        self.crash_after_writes = spec.get("crash_after_writes")
        self.write_faults = list(spec.get("write_faults", []))
        self.writes = 0
        self.failed = {}
        self._rngs = {f["index"]: random.Random(f.get("seed")) for f in self.write_faults}

    def usage(self) -> dict[str, Any]:
        return {"writes": self.writes, "write_faults_failed": {str(k): v for k, v in self.failed.items()}}

    # before-send: answer a write with an error instead of sending it (per HTTP attempt, so the SDK's retry
    # logic sees the error just as if DynamoDB had returned it).
    def before_send(self, request: Any, event_name: str = "", **_: Any) -> Any:
        operation = event_name.rsplit(".", 1)[-1]
        if operation not in _WRITE_OPERATIONS or not self.write_faults:
            return None
        tables = _tables_of(request)
        for fault in self.write_faults:
            if fault["table"] is not None and fault["table"] not in tables:
                continue
            if fault.get("matching") and fault["matching"] not in _body_text(request):
                continue
            left = fault["calls_left"]
            used = self.failed.get(fault["index"], 0)
            if left is not None and used >= left:
                continue
            if fault["fraction"] is not None and self._rngs[fault["index"]].random() >= fault["fraction"]:
                continue
            self.failed[fault["index"]] = used + 1
            return _error_response(request, fault)
        return None

    # after-call: count successful write calls; the crash fault kills the process right after one.
    def after_call(self, http_response: Any, model: Any, **_: Any) -> None:
        if model.name not in _WRITE_OPERATIONS or http_response.status_code >= 300:
            return
        self.writes += 1
        if self.crash_after_writes is not None and self.writes >= self.crash_after_writes:
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def _body_text(request: Any) -> str:
    body = request.body or b""
    return body.decode("utf-8", errors="replace") if isinstance(body, bytes) else str(body)


def _tables_of(request: Any) -> set[str]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return set()
    tables = set()
    if "TableName" in body:
        tables.add(body["TableName"])
    tables.update(body.get("RequestItems", {}).keys())
    for item in body.get("TransactItems", []):
        for action in item.values():
            if isinstance(action, dict) and "TableName" in action:
                tables.add(action["TableName"])
    # A table named by ARN (another account's, through its resource policy) is matched by its name too.
    return tables | {name.split(":table/", 1)[1] for name in tables if ":table/" in name}


def _error_response(request: Any, fault: dict[str, Any]) -> Any:
    from botocore.awsrequest import AWSResponse

    body = json.dumps(
        {"__type": f"com.amazonaws.dynamodb.v20120810#{fault['error_code']}", "message": fault["message"]}
    ).encode()

    class _Raw:
        def stream(self, **_: Any) -> Any:
            yield body

    headers = {
        "content-type": "application/x-amz-json-1.0",
        "x-amzn-requestid": "LOCALFAULT" + os.urandom(8).hex().upper(),
        "content-length": str(len(body)),
    }
    return AWSResponse(request.url, fault["status_code"], headers, _Raw())


FAULTS = _Faults()


def _install_fault_hooks() -> None:
    """Register the fault handlers on every botocore session the function will ever create.

    Patching the session constructor (rather than only ``boto3.DEFAULT_SESSION``) also covers functions that
    build their own ``boto3.session.Session()``, for example one per assumed role.
    """
    import botocore.session

    original_init = botocore.session.Session.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.register("before-send.dynamodb", FAULTS.before_send)
        self.register("after-call.dynamodb", FAULTS.after_call)

    botocore.session.Session.__init__ = init  # type: ignore[method-assign]


class LambdaContext:
    """The context object of Lambda's Python runtime (the attributes handlers use)."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ["CDK_REPLICATION_LOCAL_FUNCTION_ARN"]
        # A string, as in Lambda's Python runtime.
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _send(out: Any, message: dict[str, Any]) -> None:
    out.write(json.dumps(message, separators=(",", ":")) + "\n")
    out.flush()


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "ok": False,
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc)[1:],
    }


def main() -> None:
    # Lambda's runtime hands every printed line to CloudWatch at once; line buffering does the same here.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    # Lambda's code folder is read-only: leave no __pycache__ in the asset folder.
    sys.dont_write_bytecode = True
    config = json.loads(sys.argv[1])
    inbox = os.fdopen(int(sys.argv[2]), "r", encoding="utf-8")
    outbox = os.fdopen(int(sys.argv[3]), "w", encoding="utf-8")
    # The function sees its code folder first on sys.path and as its working directory (/var/task on AWS),
    # and never this package's folder.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [config["code_dir"]] + [p for p in sys.path if p and os.path.abspath(p) != here]
    os.chdir(config["code_dir"])
    _install_fault_hooks()

    module_name, _, function_name = config["handler"].rpartition(".")
    try:
        if not module_name:
            raise ValueError(f"handler {config['handler']!r} must be <module>.<function>")
        module = importlib.import_module(module_name.replace("/", "."))
        handler = getattr(module, function_name)
    except ModuleNotFoundError as exc:
        _send(outbox, {"ready": False, **_error(exc, "Runtime.ImportModuleError")})
        return
    except AttributeError as exc:
        _send(outbox, {"ready": False, **_error(exc, "Runtime.HandlerNotFound")})
        return
    except Exception as exc:  # noqa: BLE001 - every init failure is reported to the parent
        _send(outbox, {"ready": False, **_error(exc)})
        return
    _send(outbox, {"ready": True})

    for line in inbox:
        request = json.loads(line)
        FAULTS.arm(request.get("faults"))
        context = LambdaContext(request["requestId"], request["deadlineMs"])
        try:
            result = handler(request["event"], context)
        except Exception as exc:  # noqa: BLE001 - a handler exception is a function error, as on Lambda
            traceback.print_exc()
            _send(outbox, {**_error(exc), "usage": FAULTS.usage()})
            continue
        try:
            _send(outbox, {"ok": True, "payload": result, "usage": FAULTS.usage()})
        except (TypeError, ValueError) as exc:
            _send(outbox, {**_error(exc, "Runtime.MarshalError"), "usage": FAULTS.usage()})


if __name__ == "__main__":
    main()
