"""Where failure records are read from, and how a redriven one is marked: an S3 bucket, a folder, an SQS queue.

S3 and folders keep every record; a redriven one gets a marker object ``cdk-replication/redriven/<its key>``
(JSON: when, the outcome counts), and a record with a marker is skipped. Nothing under ``cdk-replication/``
is ever read as a failure record. An SQS message is deleted once redriven.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cdk_replication.cli.errors import ACCESS_ERROR_CODES, BadInput, error_code, error_message

#: Keys under this prefix are the command's own (markers), never failure records.
OWN_PREFIX = "cdk-replication/"
#: A redriven record ``K`` is marked by the object ``MARKER_PREFIX + K``.
MARKER_PREFIX = OWN_PREFIX + "redriven/"
#: The object a run writes (and overwrites) to check it may write markers before it writes any item.
WRITE_CHECK = MARKER_PREFIX + ".write-check"
#: Seconds a received SQS message stays hidden from other readers while the run works on it (15 min);
#: messages not redriven are made visible again at the end of the run.
SQS_VISIBILITY_TIMEOUT_S = 900

_S3_URL = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")
_SQS_REGION = re.compile(r"^https://sqs[.-](?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)\.")


def parse_s3_url(text: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://BUCKET[/PREFIX]``.

    Raises:
        BadInput: not such a URL (the message shows the expected form).
    """
    match = _S3_URL.match(text)
    if not match:
        raise BadInput(
            f"--from {text!r} is not an S3 location: give s3://BUCKET or s3://BUCKET/PREFIX, the failure "
            "destination's bucket (e.g. s3://orders-replication-failures/aws/lambda/); for a folder use --from-dir"
        )
    prefix = match["prefix"] or ""
    if prefix.startswith(OWN_PREFIX):
        raise BadInput(f"--from {text!r} points into {OWN_PREFIX}, where redrive keeps its markers: give the "
                       "bucket, or a prefix of the failure records (aws/lambda/...)")
    return match["bucket"], prefix


def sqs_region(queue_url: str) -> str | None:
    """The region in an SQS queue URL (``https://sqs.us-east-1.amazonaws.com/...``), if it names one."""
    match = _SQS_REGION.match(queue_url)
    return match["region"] if match else None


@dataclass(frozen=True)
class Envelope:
    """One object or message that may hold a failure record.

    Attributes:
        name: where it was read, for messages (``s3://b/k``, a file path, ``sqs message <id>``).
        handle: what :meth:`Location.mark` needs: the object key, or the SQS receipt handle.
        body: its bytes.
    """

    name: str
    handle: str
    body: bytes = field(repr=False)


@dataclass
class Listing:
    """What a location holds: records to redrive, and how many already were."""

    envelopes: list[Envelope] = field(default_factory=list)
    already_redriven: int = 0


class Location(Protocol):
    """A place failure records are read from."""

    description: str

    def read(self) -> Listing:
        """Every record not yet redriven (:class:`BadInput` when it cannot be read at all)."""

    def mark(self, envelope: Envelope, summary: dict[str, Any]) -> None:
        """Mark ``envelope`` redriven (a marker object, or delete the message)."""

    def check_marking(self) -> None:
        """Raise :class:`BadInput` (naming the permission) if marking will fail; called before the first
        item write, never in a dry run."""

    def release(self) -> None:
        """Hand back every record read and not marked (SQS: visible again at once); called on every way out
        of a run, errors and Ctrl-C included."""


def marker_body(summary: dict[str, Any]) -> bytes:
    """A marker's JSON content."""
    return (json.dumps(summary, sort_keys=True, indent=2) + "\n").encode("utf-8")


class S3Location:
    """Failure records in ``s3://bucket/prefix`` (read with ListObjectsV2 and GetObject)."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.description = f"s3://{bucket}/{prefix}"

    def _keys(self, prefix: str) -> Iterator[str]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                yield entry["Key"]

    def read(self) -> Listing:
        try:
            marked = {key[len(MARKER_PREFIX):] for key in self._keys(MARKER_PREFIX + self.prefix)}
            listing = Listing()
            for key in self._keys(self.prefix):
                if key.startswith(OWN_PREFIX) or key.endswith("/"):
                    continue
                if key in marked:
                    listing.already_redriven += 1
                    continue
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                listing.envelopes.append(Envelope(f"s3://{self.bucket}/{key}", key, body))
            return listing
        except Exception as exc:
            raise self._refusal(exc) from exc

    def _refusal(self, exc: Exception) -> Exception:
        code = error_code(exc)
        if code == "NoSuchBucket":
            return BadInput(f"bucket {self.bucket!r} does not exist: check --from (the failure destination's "
                            "bucket, see the stack's outputs), the credentials' account and --region")
        if code in ACCESS_ERROR_CODES or code == "AllAccessDisabled":
            return BadInput(
                f"access denied reading {self.description} ({code}: {error_message(exc)}): grant s3:ListBucket on "
                f"arn:aws:s3:::{self.bucket}, s3:GetObject on its objects and s3:PutObject on "
                f"{MARKER_PREFIX}* (or pass --source-profile / --profile)"
            )
        return exc

    def mark(self, envelope: Envelope, summary: dict[str, Any]) -> None:
        self.client.put_object(Bucket=self.bucket, Key=MARKER_PREFIX + envelope.handle, Body=marker_body(summary),
                               ContentType="application/json")

    def check_marking(self) -> None:
        """Write the small :data:`WRITE_CHECK` object (the markers' permission, s3:PutObject)."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=WRITE_CHECK, ContentType="application/json",
                                   Body=marker_body({"check": "redrive may write its markers here"}))
        except Exception as exc:
            if error_code(exc) in ACCESS_ERROR_CODES or error_code(exc) == "AllAccessDisabled":
                raise BadInput(
                    f"redrive may not write its markers to s3://{self.bucket}/{MARKER_PREFIX} ({error_code(exc)}: "
                    f"{error_message(exc)}): grant s3:PutObject on arn:aws:s3:::{self.bucket}/{MARKER_PREFIX}* "
                    "(or pass --dry-run); nothing was written") from None
            raise self._refusal(exc) from exc

    def release(self) -> None:
        """Nothing to hand back: objects stay where they are."""


class FolderLocation:
    """Failure records in a folder laid out like a bucket: object key ``K`` is the file ``<folder>/K``."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise BadInput(f"--from-dir {str(directory)!r} is not a folder: give the local bucket's folder, "
                           "where object key K is the file <folder>/K")
        self.directory = directory
        self.description = str(directory)

    def read(self) -> Listing:
        listing = Listing()
        for root, dirs, files in os.walk(self.directory):
            dirs.sort()
            for file in sorted(files):
                path = Path(root, file)
                key = path.relative_to(self.directory).as_posix()
                if key.startswith(OWN_PREFIX):
                    continue
                if (self.directory / (MARKER_PREFIX + key)).is_file():
                    listing.already_redriven += 1
                    continue
                listing.envelopes.append(Envelope(str(path), key, path.read_bytes()))
        return listing

    def mark(self, envelope: Envelope, summary: dict[str, Any]) -> None:
        marker = self.directory / (MARKER_PREFIX + envelope.handle)
        marker.parent.mkdir(parents=True, exist_ok=True)
        partial = marker.with_name(marker.name + ".partial")
        partial.write_bytes(marker_body(summary))
        os.replace(partial, marker)  # a marker is whole or absent, even after a crash

    def check_marking(self) -> None:
        """Create the markers' folder and write (and remove) a file in it."""
        check = self.directory / WRITE_CHECK
        try:
            check.parent.mkdir(parents=True, exist_ok=True)
            check.write_bytes(b"{}\n")
            check.unlink()
        except OSError as exc:
            raise BadInput(f"redrive may not write its markers under {self.directory / MARKER_PREFIX} ({exc}): "
                           "make that folder writable (or pass --dry-run); nothing was written") from None

    def release(self) -> None:
        """Nothing to hand back: files stay where they are."""


class QueueLocation:
    """Failure records (without payload) in an SQS queue: received, and deleted once redriven."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url
        self.description = queue_url
        #: Receipt handles received and not yet deleted: what :meth:`release` makes visible again.
        self._held: dict[str, None] = {}

    def read(self) -> Listing:
        listing = Listing()
        seen: set[str] = set()
        try:
            while True:
                messages = self.client.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                    VisibilityTimeout=SQS_VISIBILITY_TIMEOUT_S,
                ).get("Messages", [])
                fresh = [m for m in messages if m["MessageId"] not in seen]
                if not fresh:
                    return listing
                for message in fresh:
                    seen.add(message["MessageId"])
                    self._held[message["ReceiptHandle"]] = None
                    listing.envelopes.append(Envelope(f"sqs message {message['MessageId']}",
                                                      message["ReceiptHandle"], message["Body"].encode("utf-8")))
        except Exception as exc:
            raise self._refusal(exc) from exc

    def _refusal(self, exc: Exception) -> Exception:
        code = error_code(exc)
        if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return BadInput(f"queue {self.queue_url} does not exist: check --queue-url (the mapping's on-failure "
                            "destination), the region and the credentials' account")
        if code in ACCESS_ERROR_CODES:
            return BadInput(f"access denied receiving from {self.queue_url} ({code}: {error_message(exc)}): grant "
                            "sqs:ReceiveMessage, sqs:DeleteMessage and sqs:ChangeMessageVisibility on the queue")
        return exc

    def mark(self, envelope: Envelope, summary: dict[str, Any]) -> None:
        self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=envelope.handle)
        self._held.pop(envelope.handle, None)

    def check_marking(self) -> None:
        """Not checked: a message can only be deleted once received and redriven (sqs:DeleteMessage); a
        refused delete leaves the message in the queue, to be redriven again (which is idempotent)."""

    def release(self) -> None:
        while self._held:
            handle = next(iter(self._held))
            self._held.pop(handle)
            try:
                self.client.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=handle,
                                                      VisibilityTimeout=0)
            except Exception:  # best effort: the message becomes visible on its own after the timeout
                pass
