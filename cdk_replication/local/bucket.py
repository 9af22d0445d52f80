"""A folder-backed stand-in for an S3 bucket, used as an event source mapping's on-failure destination.

Object key ``K`` of bucket ``B`` is the file ``<root>/<B>/<K>`` (``/`` in a key is a directory separator) and
its content is the object's bytes, exactly. So a folder the runtime writes holds what S3 would hold, and
``cdk-replication redrive ... --from-dir <LocalBucket.directory>`` reads it as it reads the bucket.

For a stream event source mapping (DynamoDB Streams or Kinesis), Lambda writes one object per discarded batch:
the invocation record (the same document an SQS or SNS destination receives) plus ``payload``, the invocation
event as the function received it, as a JSON string; the key is
``aws/lambda/<mapping UUID>/<shard id>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>`` (UTC). See
:meth:`LocalBucket.deliver_on_failure` and :func:`failure_object_key`.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

#: Where Lambda writes the failure objects of every event source mapping in a bucket.
FAILURE_PREFIX = "aws/lambda/"

#: Decides whether ``principal_arn`` may do ``action`` (``s3:PutObject``) on ``resource`` (an object ARN):
#: returns ``None`` when it may, else AWS's ``AccessDenied`` message.
Authorizer = Callable[[str | None, str, str], str | None]


class BucketAccessDenied(PermissionError):
    """S3 refused a request (``AccessDenied``): the caller's role or the bucket policy does not allow it."""


@dataclass(frozen=True)
class BucketObject:
    """One object: its key, its bytes and the file that holds them."""

    key: str
    body: bytes
    path: Path

    def json(self) -> Any:
        """The body parsed as JSON (failure records are JSON documents)."""
        return json.loads(self.body)


def failure_object_key(mapping_uuid: str, shard_id: str, when: float, random_id: str | None = None) -> str:
    """The key Lambda gives the object of a discarded batch: ``aws/lambda/<mapping UUID>/<shard id>/YYYY/MM/DD/
    YYYY-MM-DDTHH.MM.SS-<random UUID>``, the time in UTC (``when``: epoch seconds)."""
    moment = dt.datetime.fromtimestamp(when, dt.timezone.utc)
    return (f"{FAILURE_PREFIX}{mapping_uuid}/{shard_id}/{moment:%Y/%m/%d}/{moment:%Y-%m-%dT%H.%M.%S}-"
            f"{random_id or uuid.uuid4()}")


class LocalBucket:
    """An S3 bucket as a folder: ``<root>/<name>/<key>``. Thread-safe for writes.

    Args:
        name: the bucket name (for a template's ``AWS::S3::Bucket``, its physical name).
        root: the folder that holds bucket folders; this bucket's objects go under ``root / name``.
        region: the bucket's region. Default: ``us-east-1``.
        account: the account that owns the bucket. Default: ``000000000000``.
        partition: the ARN partition. Default: ``aws``.
        policy: the bucket policy document (``AWS::S3::BucketPolicy``), or ``None``.
        authorizer: checks each write done on behalf of a principal (see :data:`Authorizer`); default: none,
            every write is allowed.
    """

    def __init__(self, name: str, root: Path | str, *, region: str = "us-east-1", account: str = "000000000000",
                 partition: str = "aws", policy: dict[str, Any] | None = None,
                 authorizer: Authorizer | None = None) -> None:
        self.name = name
        self.region = region
        self.account = account
        self.arn = f"arn:{partition}:s3:::{name}"
        self.directory = Path(root) / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.policy = policy
        self.authorizer = authorizer
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalBucket({self.name!r}, {str(self.directory)!r})"

    def object_arn(self, key: str) -> str:
        """``arn:<partition>:s3:::<bucket>/<key>``."""
        return f"{self.arn}/{key}"

    # --- reading ---------------------------------------------------------------------------------------

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key (optionally only those starting with ``prefix``), sorted."""
        found = (path.relative_to(self.directory).as_posix() for path in self._files())
        return sorted(key for key in found if key.startswith(prefix))

    def get(self, key: str) -> bytes:
        """The bytes of the object ``key``; ``KeyError`` if there is none."""
        path = self.path(key)
        if not path.is_file():
            raise KeyError(f"no object {key!r} in bucket {self.name!r}")
        return path.read_bytes()

    def objects(self, prefix: str = "") -> list[BucketObject]:
        """Every object (optionally under ``prefix``), in key order."""
        return [BucketObject(key, self.get(key), self.path(key)) for key in self.keys(prefix)]

    def failure_records(self) -> list[dict[str, Any]]:
        """The on-failure records stored here (Lambda's ``aws/lambda/`` objects, parsed, with ``payload``), in key
        order, which for one mapping and shard is time order. Other objects (e.g. the ``cdk-replication/`` markers
        of ``redrive``) are not failure records."""
        return [o.json() for o in self.objects(FAILURE_PREFIX)]

    def path(self, key: str) -> Path:
        """The file that holds (or would hold) object ``key``."""
        parts = PurePosixPath(key).parts
        if not key or key.startswith("/") or key.endswith("/") or any(p in (".", "..") for p in parts):
            raise ValueError(f"object key {key!r} cannot be stored as a file under {self.directory}")
        return self.directory.joinpath(*parts)

    def _files(self) -> Iterator[Path]:
        # Skip the temporary file of a write in progress (see put_object).
        return (p for p in self.directory.rglob("*") if p.is_file() and not p.name.endswith(".partial"))

    # --- writing ---------------------------------------------------------------------------------------

    def put_object(self, key: str, body: bytes | str, *, principal_arn: str | None = None) -> Path:
        """Store ``body`` (text is UTF-8) as object ``key``, replacing any object with that key.

        ``principal_arn``: who writes (e.g. the mapping's execution role); with an :attr:`authorizer`, a write it
        refuses raises :class:`BucketAccessDenied` and stores nothing."""
        path = self.path(key)
        if self.authorizer is not None:
            refusal = self.authorizer(principal_arn, "s3:PutObject", self.object_arn(key))
            if refusal is not None:
                raise BucketAccessDenied(refusal)
        data = body.encode() if isinstance(body, str) else body
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.partial")
            partial.write_bytes(data)
            partial.replace(path)  # a reader never sees half an object
        return path

    def deliver_on_failure(self, record: dict[str, Any], *, event: dict[str, Any], mapping_uuid: str,
                           shard_id: str, when: float, principal_arn: str | None = None) -> str:
        """Write the object Lambda writes for a discarded batch: ``record`` (the invocation record) plus
        ``payload``, the JSON text of ``event`` (the invocation event); returns the key."""
        key = failure_object_key(mapping_uuid, shard_id, when)
        body = dict(record, payload=json.dumps(event, separators=(",", ":")))
        self.put_object(key, json.dumps(body, separators=(",", ":")), principal_arn=principal_arn)
        return key
