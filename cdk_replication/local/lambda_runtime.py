"""Run a Python Lambda function locally, in its own worker process per "container".

A :class:`LocalFunction` starts a container when an invocation finds none idle (the first one, or one while
every container is busy: concurrent invocations run in containers of their own, as on Lambda, and idle
containers are reused warm): a fresh Python process whose
environment is exactly the function's (template variables, the standard ``AWS_*``/``AWS_LAMBDA_*`` ones for
its region and account, the DynamoDB Local endpoints), so module-level clients are created once and two
functions never share ``os.environ``. A handler exception is a function error; a timeout or a crash kills
that container only, and a later invocation starts a new one (a cold start), as on Lambda.
"""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cdk_replication.local.faults import FunctionFaults

#: Lambda's default function timeout, in seconds.
DEFAULT_TIMEOUT_S = 3.0
#: Lambda's default memory size, in MiB (only reported to the handler; not enforced).
DEFAULT_MEMORY_MB = 128
#: How long the init phase (importing the handler module) may take, in seconds (Lambda allows 10 s).
INIT_TIMEOUT_S = 10.0
#: Log lines kept per function for :meth:`LocalFunction.logs`.
LOG_LINES_KEPT = 5000

#: Extra time the parent waits past the deadline for the answer to travel back, in seconds.
_DEADLINE_GRACE_S = 0.05
#: How long :meth:`LocalFunction.stop` lets a container exit on its own before killing it, in seconds.
_GRACEFUL_STOP_S = 1.0
_SIGNAL_WORDS = {signal.SIGKILL: "killed", signal.SIGSEGV: "segmentation fault", signal.SIGTERM: "terminated",
                 signal.SIGABRT: "aborted"}

_WORKER = Path(__file__).resolve().parent / "_lambda_worker.py"


class FunctionInitError(RuntimeError):
    """The function's handler could not be imported (Lambda's init phase failed).

    Attributes:
        error_type: Lambda's error type, e.g. ``Runtime.ImportModuleError``.
    """

    def __init__(self, message: str, error_type: str = "Runtime.Unknown") -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class InvocationResult:
    """The outcome of one synchronous invocation.

    Attributes:
        request_id: the invocation's ``aws_request_id``.
        payload: the handler's return value (JSON round-tripped), or ``None`` on an error.
        error_type: ``None`` on success; otherwise the exception class name, ``Sandbox.Timedout`` for a
            timeout, ``Runtime.ExitError`` when the container died, or an init error type.
        error_message: the error's message, ``None`` on success.
        duration_s: wall-clock duration of the invocation in seconds (including a cold start).
        cold_start: True if this invocation started a new container.
        throttled: True if the function refused the invocation (its reserved concurrency was in use:
            ``TooManyRequestsException``); the handler did not run.
    """

    request_id: str
    payload: Any = None
    error_type: str | None = None
    error_message: str | None = None
    duration_s: float = 0.0
    cold_start: bool = False
    throttled: bool = False

    @property
    def function_error(self) -> bool:
        """True when Lambda would answer with ``X-Amz-Function-Error: Unhandled``."""
        return self.error_type is not None


@dataclass(frozen=True)
class FunctionConfiguration:
    """What an update may change of a :class:`LocalFunction` (Lambda's function configuration and code).

    Attributes:
        code_dir: the unpacked code folder.
        handler: ``<module path>.<function>``.
        environment: the function's environment variables.
        timeout_s: the timeout in seconds.
        memory_mb: the memory size in MiB.
        credentials_env: the access key variables of the function's role.
    """

    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout_s: float
    memory_mb: int
    credentials_env: dict[str, str]


@dataclass
class FunctionStats:
    """Counters of one local function."""

    invocations: int = 0
    errors: int = 0
    timeouts: int = 0
    crashes: int = 0
    cold_starts: int = 0
    throttles: int = 0  # invocations refused for the reserved concurrency


class LocalFunction:
    """A Lambda function run locally from its code folder.

    Args:
        name: the function name (``context.function_name``).
        code_dir: the folder Lambda would unpack the code into (the asset folder).
        handler: ``<module path>.<function>``, e.g. ``replicator.handler.handler``.
        environment: the function's environment variables from its configuration.
        region: the function's region; sets ``AWS_REGION`` and ``AWS_DEFAULT_REGION``.
        account: the function's 12-digit account id (used for its ARN).
        credentials_env: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` of the function's role; locally
            ``credentials_for_account(account).as_env()``.
        endpoint_env: ``AWS_ENDPOINT_URL_*`` variables, e.g. ``DynamoDBLocal.endpoint_env()``.
        timeout_s: the function timeout in seconds. Default: 3 (Lambda's default).
        memory_mb: the memory size in MiB, reported to the handler. Default: 128.
        arn: the function ARN. Default: built from region, account and name.
        python: the interpreter of the container. Default: the one running this code.
        log_sink: called with each line the function prints (stdout and stderr). Default: lines are only
            kept in memory (:meth:`logs`).
        reserved_concurrency: the most invocations (containers) at once, from ``ReservedConcurrentExecutions``;
            an invocation beyond it is throttled. Default: ``None``, no limit (one container per concurrent
            invocation, started only when every existing one is busy).
    """

    def __init__(
        self,
        name: str,
        code_dir: Path | str,
        handler: str,
        environment: dict[str, str] | None = None,
        *,
        region: str,
        account: str,
        credentials_env: dict[str, str] | None = None,
        endpoint_env: dict[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_mb: int = DEFAULT_MEMORY_MB,
        arn: str | None = None,
        python: str | None = None,
        log_sink: Callable[[str], None] | None = None,
        reserved_concurrency: int | None = None,
    ) -> None:
        self.name = name
        self.code_dir = Path(code_dir).resolve()
        if not self.code_dir.is_dir():
            raise FileNotFoundError(f"function {name}: code folder {str(self.code_dir)!r} does not exist")
        if "." not in handler:
            raise ValueError(f"function {name}: handler {handler!r} must be <module>.<function>")
        self.handler = handler
        self.environment = dict(environment or {})
        self.region = region
        self.account = account
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.arn = arn or f"arn:aws:lambda:{region}:{account}:function:{name}"
        self.faults = FunctionFaults()
        self.stats = FunctionStats()
        self._credentials_env = dict(credentials_env or {})
        self._endpoint_env = dict(endpoint_env or {})
        self._python = python or sys.executable
        self._log_sink = log_sink
        self._logs: collections.deque[str] = collections.deque(maxlen=LOG_LINES_KEPT)
        self.reserved_concurrency = reserved_concurrency
        # Guards the container pool and the counters; never held while a container starts or runs.
        self._lock = threading.Lock()
        self._containers: list[_Container] = []  # every container up or starting
        self._idle: list[_Container] = []  # warm containers waiting for an invocation, most recent last
        self._generation = 0  # bumped by an update (or stop): older containers are not reused
        #: A configuration set by update_configuration, taken up by the next invocation that starts.
        self._pending: FunctionConfiguration | None = None
        # Guards _pending alone (not _lock, which _take_pending's caller holds): an update landing
        # between the take's read and its clear would otherwise be dropped for good.
        self._pending_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalFunction({self.name!r}, {self.region}/{self.account}, handler={self.handler!r})"

    # --- environment ----------------------------------------------------------------------------------

    def container_environment(self) -> dict[str, str]:
        """The complete environment a container of this function starts with."""
        env = {
            # Nothing from the machine running the tests leaks in: no profile, config file or metadata
            # service can change which account or region the function talks to.
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{uuid.uuid4().hex}",
            "LAMBDA_TASK_ROOT": str(self.code_dir),
            "_HANDLER": self.handler,
            "CDK_REPLICATION_LOCAL_FUNCTION_ARN": self.arn,
            **self._credentials_env,
            **self._endpoint_env,
        }
        # The function's own configuration wins over everything but the reserved names Lambda sets itself.
        env.update({k: v for k, v in self.environment.items() if k not in _RESERVED})
        return env

    def configuration(self) -> "FunctionConfiguration":
        """The configuration invocations start with now (a pending update included)."""
        pending = self._pending
        if pending is not None:
            return pending
        return FunctionConfiguration(self.code_dir, self.handler, dict(self.environment), self.timeout_s,
                                     self.memory_mb, dict(self._credentials_env))

    def update_configuration(self, configuration: "FunctionConfiguration") -> None:
        """Lambda's UpdateFunctionConfiguration/UpdateFunctionCode: invocations that start after this call run
        with ``configuration`` (in a new container); one in progress finishes with the old one. Returns at
        once, as Lambda does."""
        with self._pending_lock:
            self._pending = configuration

    def _take_pending(self) -> None:
        """Apply a pending configuration before an invocation starts (called with the lock held): idle
        containers stop, busy ones stop when they finish, so new ones start with the new environment and code."""
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        self._generation += 1
        idle, self._idle = self._idle, []
        for container in idle:
            self._containers.remove(container)
            container.kill(graceful=True)
        self.code_dir, self.handler = pending.code_dir.resolve(), pending.handler
        self.environment, self.timeout_s, self.memory_mb = dict(pending.environment), pending.timeout_s, pending.memory_mb
        self._credentials_env = dict(pending.credentials_env)

    # --- lifecycle ------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while at least one container is up."""
        with self._lock:
            return any(c.running for c in self._containers)

    @property
    def containers(self) -> int:
        """Containers up now (busy or idle, warm for reuse)."""
        with self._lock:
            return sum(1 for c in self._containers if c.running)

    def start(self) -> None:
        """Start a container now if none is up (otherwise the first invocation does). Raises
        :class:`FunctionInitError`."""
        with self._lock:
            self._take_pending()
            if any(c.running for c in self._idle):
                return
            container = _Container(self, self._generation)
        container.start()
        with self._lock:
            self._containers.append(container)
            self._idle.append(container)

    def stop(self) -> None:
        """Stop every idle container (one running an invocation stops when it finishes; the next invocation
        starts a new one)."""
        with self._lock:
            self._generation += 1  # busy containers are stopped when they come back
            idle, self._idle = self._idle, []
            self._containers = [c for c in self._containers if c not in idle]
        for container in idle:
            container.kill(graceful=True)

    def logs(self) -> list[str]:
        """The last lines the function printed (stdout and stderr of every container), oldest first."""
        return list(self._logs)

    def _log_line(self, line: str) -> None:
        self._logs.append(line)
        if self._log_sink is not None:
            self._log_sink(line)

    def _acquire(self) -> tuple[_Container | None, bool]:
        """A container for one invocation and whether it is new (not started yet): the most recently used
        idle one, else a new one while the reserved concurrency allows; ``(None, False)``: throttled."""
        with self._lock:
            self._take_pending()
            while self._idle:
                container = self._idle.pop()  # warmest first, so rarely used ones stay idle
                if container.running:
                    return container, False
                self._containers.remove(container)  # died while idle
            if self.reserved_concurrency is not None and len(self._containers) >= self.reserved_concurrency:
                return None, False
            container = _Container(self, self._generation)
            self._containers.append(container)
            return container, True

    def _release(self, container: _Container) -> None:
        """Back to the idle pool, unless it died or an update (or :meth:`stop`) made it stale."""
        with self._lock:
            keep = container.running and container.generation == self._generation
            if keep:
                self._idle.append(container)
            elif container in self._containers:
                self._containers.remove(container)
        if not keep:
            container.kill(graceful=True)

    # --- invocation -----------------------------------------------------------------------------------

    def invoke(self, event: Any) -> InvocationResult:
        """Invoke the function synchronously with ``event`` (a JSON-serialisable value). Thread-safe: each
        concurrent invocation runs in its own container, as on Lambda.

        Never raises for a function error: look at :attr:`InvocationResult.error_type`. A failed init
        phase (the handler cannot be imported) is a function error too, as on Lambda; call :meth:`start`
        to get it as a :class:`FunctionInitError` instead. With :attr:`reserved_concurrency` containers all
        busy the result is ``throttled`` (``TooManyRequestsException``) and the handler does not run.
        """
        request_id = str(uuid.uuid4())
        body = json.dumps(event, separators=(",", ":"))
        started = time.monotonic()
        container, cold = self._acquire()
        if container is None:
            self._count(throttles=1)
            return InvocationResult(request_id, error_type="TooManyRequestsException",
                                    error_message="Rate Exceeded.", throttled=True)
        try:
            if cold:
                try:
                    container.start()
                except FunctionInitError as exc:
                    self._count(invocations=1, errors=1)
                    return InvocationResult(request_id, error_type=exc.error_type, error_message=str(exc),
                                            duration_s=time.monotonic() - started, cold_start=True)
            return self._run(container, request_id, body, started, cold)
        finally:
            self._release(container)

    def _count(self, **counters: int) -> None:
        with self._lock:
            for name, value in counters.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)

    def _run(self, container: _Container, request_id: str, body: str, started: float,
             cold: bool) -> InvocationResult:
        """One invocation in a started container."""
        container.worker_gone = False
        # The timeout covers the handler only; the init phase has its own limit (INIT_TIMEOUT_S).
        timeout_s = container.timeout_s
        deadline_ms = int(time.time() * 1000 + timeout_s * 1000)
        handler_started = time.monotonic()
        faults, wired = self.faults.to_wire_with_refs()
        message = {"requestId": request_id, "event": json.loads(body), "deadlineMs": deadline_ms, "faults": faults}
        self._count(invocations=1)
        try:
            container.send(message)
            answer = container.read_message(timeout_s + _DEADLINE_GRACE_S - (time.monotonic() - handler_started))
        except OSError:  # the container died between invocations
            container.worker_gone = True
            answer = None
        duration = time.monotonic() - started
        if answer is None:
            return self._container_lost(container, wired, request_id, duration, cold)
        self.faults.apply_usage(answer.get("usage"), crashed=False, wired=wired)
        if answer.get("ok"):
            return InvocationResult(request_id, answer.get("payload"), duration_s=duration, cold_start=cold)
        self._count(errors=1)
        return InvocationResult(request_id, error_type=answer.get("errorType"),
                                error_message=answer.get("errorMessage"), duration_s=duration, cold_start=cold)

    def _container_lost(self, container: _Container, wired: list[Any], request_id: str, duration: float,
                        cold: bool) -> InvocationResult:
        if not container.worker_gone:
            # Still running past its deadline: Lambda stops the environment; the next call is a cold start.
            container.kill()
            self._count(errors=1, timeouts=1)
            self.faults.apply_usage(None, crashed=False, wired=wired)
            return InvocationResult(
                request_id,
                error_type="Sandbox.Timedout",
                error_message=f"RequestId: {request_id} Error: Task timed out after {container.timeout_s:.2f} seconds",
                duration_s=duration,
                cold_start=cold,
            )
        code = container.wait()
        container.kill()
        self._count(errors=1, crashes=1)
        self.faults.apply_usage(None, crashed=True, wired=wired)
        # Worded like the Lambda runtime API's report of a dead runtime process.
        status = f"exit status {code}" if code >= 0 else f"signal: {_SIGNAL_WORDS.get(-code, str(-code))}"
        return InvocationResult(
            request_id,
            error_type="Runtime.ExitError",
            error_message=f"RequestId: {request_id} Error: Runtime exited with error: {status}",
            duration_s=duration,
            cold_start=cold,
        )


class _Container:
    """One execution environment of a :class:`LocalFunction`: a worker process started with the function's
    configuration of the moment (``generation`` tells the function when an update made it stale)."""

    def __init__(self, function: LocalFunction, generation: int) -> None:
        self.function = function
        self.generation = generation
        self.code_dir, self.handler = function.code_dir, function.handler
        self.timeout_s = function.timeout_s
        self.environment = function.container_environment()
        self.proc: subprocess.Popen[bytes] | None = None
        self.to_worker: Any = None
        self.from_worker: Any = None
        self.log_thread: threading.Thread | None = None
        self.worker_gone = False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the worker and wait for its init phase; raises :class:`FunctionInitError`."""
        fn = self.function
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        config = json.dumps({"code_dir": str(self.code_dir), "handler": self.handler})
        self.proc = subprocess.Popen(
            [fn._python, "-I", str(_WORKER), config, str(to_worker_r), str(from_worker_w)],
            env=self.environment,
            cwd=self.code_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(to_worker_r, from_worker_w),
            start_new_session=True,  # a Ctrl-C in the terminal goes to the parent, which stops us
        )
        os.close(to_worker_r)
        os.close(from_worker_w)
        self.to_worker = os.fdopen(to_worker_w, "w", encoding="utf-8")
        self.from_worker = os.fdopen(from_worker_r, "r", encoding="utf-8")
        self.log_thread = threading.Thread(target=self._pump_logs, args=(self.proc,), name=f"logs-{fn.name}",
                                           daemon=True)
        self.log_thread.start()
        ready = self.read_message(INIT_TIMEOUT_S)
        if ready is None or not ready.get("ready"):
            self.kill()
            detail = (
                f"{ready.get('errorType')}: {ready.get('errorMessage')}"
                if ready
                else f"no answer within {INIT_TIMEOUT_S:.0f} s; last log lines: {fn.logs()[-5:]}"
            )
            raise FunctionInitError(
                f"function {fn.name}: init failed ({detail}); handler {self.handler!r}, "
                f"code folder {str(self.code_dir)!r}",
                error_type=(ready or {}).get("errorType") or "Runtime.Unknown",
            )
        fn._count(cold_starts=1)

    def _pump_logs(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            self.function._log_line(raw.decode("utf-8", errors="replace").rstrip("\n"))

    def send(self, message: dict[str, Any]) -> None:
        assert self.to_worker is not None
        self.to_worker.write(json.dumps(message, separators=(",", ":")) + "\n")
        self.to_worker.flush()

    def wait(self) -> int:
        assert self.proc is not None
        return self.proc.wait()

    def kill(self, graceful: bool = False) -> None:
        proc, self.proc = self.proc, None
        for f in (self.to_worker, self.from_worker):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self.to_worker = self.from_worker = None
        if proc is not None:
            if graceful and proc.poll() is None:
                # With its inbox closed the worker returns from its loop and exits, flushing its output.
                try:
                    proc.wait(timeout=_GRACEFUL_STOP_S)
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
        if self.log_thread is not None:
            self.log_thread.join(timeout=2)
            self.log_thread = None

    def read_message(self, timeout_s: float) -> dict[str, Any] | None:
        """The worker's next message; None if it closed its pipe (died) or said nothing within ``timeout_s``."""
        assert self.from_worker is not None
        # poll, not select: select() refuses descriptors above FD_SETSIZE (1,024), which a process running many
        # containers, gateway connections and DynamoDB Local clients reaches (the lag benchmark did).
        poller = select.poll()
        poller.register(self.from_worker, select.POLLIN)
        ready = poller.poll(max(0.0, timeout_s) * 1000)
        if not ready:
            return None
        line = self.from_worker.readline()
        if not line:
            self.worker_gone = True
            return None
        return json.loads(line)


# Variables Lambda sets itself; a function's configuration cannot override them (CreateFunction rejects them).
_RESERVED = frozenset(
    {
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_TASK_ROOT",
        "_HANDLER",
    }
)
