"""Where failure records are read from, and how a redriven one is marked: an S3 bucket, a folder, an SQS queue.

S3 and folders keep every record; a redriven one gets a marker object ``cdk-replication/redriven/<its key>``
(JSON: when, the outcome counts), and a record with a marker is skipped. Nothing under ``cdk-replication/``
is ever read as a failure record. An SQS message is deleted once redriven.
"""

from __future__ import annotations

import json
import os
import re
import time
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
#: Seconds after which a held message's hiding is renewed (to :data:`SQS_VISIBILITY_TIMEOUT_S` again): well
#: before it ends, so a page that takes long, or a message left unmarked, never becomes visible mid-run.
SQS_RENEW_AFTER_S = 300
#: Objects per S3 listing page (ListObjectsV2's maximum) and files per page of a folder: a redrive reads this
#: many bodies, resyncs their keys and marks them before it reads the next page.
S3_PAGE = 1000
FOLDER_PAGE = 1000
#: Messages per page of an SQS queue (ten receives of ten).
SQS_PAGE = 100
#: Messages a run holds hidden at most (received and not deleted: a dry run's, and those whose keys did not
#: settle); it stops receiving there, below SQS's 120,000 in-flight messages of a standard queue.
SQS_MAX_HELD = 100_000

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


class Location(Protocol):
    """A place failure records are read from, page by page (a redrive holds one page of bodies at a time).

    Attributes:
        description: the location, for messages.
        page_size: records a redrive reads before it resyncs and marks them (one page).
        listed: records found so far that are not marked redriven (grows as the listing goes on).
        already_redriven: records found so far with a marker (skipped).
    """

    description: str
    page_size: int
    listed: int
    already_redriven: int

    def envelopes(self) -> Iterator[Envelope]:
        """Every record not yet redriven, listed and read lazily (:class:`BadInput` when the location cannot be
        read at all)."""

    def mark(self, envelope: Envelope, summary: dict[str, Any]) -> None:
        """Mark ``envelope`` redriven (a marker object, or delete the message)."""

    def check_marking(self) -> None:
        """Raise :class:`BadInput` (naming the permission) if marking will fail; called before the first
        item write, never in a dry run."""

    def keep_alive(self) -> None:
        """Called every few seconds while a page is resynced (SQS: keeps the messages held hidden)."""

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
        self.page_size = S3_PAGE
        self.listed = self.already_redriven = 0

    def _pages(self, prefix: str) -> Iterator[list[str]]:
        """The keys under ``prefix``, one listing page at a time (in UTF-8 binary order, S3's)."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": S3_PAGE}):
            yield [entry["Key"] for entry in page.get("Contents", [])]

    def _marked(self) -> Iterator[str]:
        """The keys that have a marker, in order: listed lazily beside the records, so that telling a marked
        record holds one page of marker names, never all of them."""
        for page in self._pages(MARKER_PREFIX + self.prefix):
            yield from (key[len(MARKER_PREFIX):] for key in page)

    def envelopes(self) -> Iterator[Envelope]:
        try:
            # Both listings are in the same order (the markers' keys are the records' behind one prefix), so a
            # record is marked exactly when the marker listing, advanced up to it, is at it.
            marked, next_marked = self._marked(), ""
            for page in self._pages(self.prefix):
                unmarked = []
                for key in page:
                    if key.startswith(OWN_PREFIX) or key.endswith("/"):
                        continue
                    while next_marked is not None and next_marked < key:
                        next_marked = next(marked, None)
                    if key == next_marked:
                        self.already_redriven += 1
                    else:
                        unmarked.append(key)
                self.listed += len(unmarked)
                for key in unmarked:
                    body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                    yield Envelope(f"s3://{self.bucket}/{key}", key, body)
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

    def keep_alive(self) -> None:
        """Nothing to keep: objects stay where they are."""

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
        self.page_size = FOLDER_PAGE
        self.listed = self.already_redriven = 0

    def envelopes(self) -> Iterator[Envelope]:
        """The files in key order (folders walked sorted), each read when it is reached."""
        for root, dirs, files in os.walk(self.directory):
            dirs.sort()
            if Path(root) == self.directory and OWN_PREFIX.rstrip("/") in dirs:
                dirs.remove(OWN_PREFIX.rstrip("/"))  # the markers: never walked, never read
            for file in sorted(files):
                path = Path(root, file)
                key = path.relative_to(self.directory).as_posix()
                if (self.directory / (MARKER_PREFIX + key)).is_file():
                    self.already_redriven += 1
                    continue
                self.listed += 1
                yield Envelope(str(path), key, path.read_bytes())

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

    def keep_alive(self) -> None:
        """Nothing to keep: files stay where they are."""

    def release(self) -> None:
        """Nothing to hand back: files stay where they are."""


class QueueLocation:
    """Failure records (without payload) in an SQS queue: received, and deleted once redriven."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url
        self.description = queue_url
        self.page_size = SQS_PAGE
        self.listed = self.already_redriven = 0
        #: Lines for the user (e.g. the run stopped receiving at :data:`SQS_MAX_HELD`).
        self.notes: list[str] = []
        #: ``True`` when messages may remain that this run never received.
        self.stopped_early = False
        #: Message id -> (its latest receipt handle, when it was last hidden, monotonic s), for the messages
        #: received and not yet deleted: what :meth:`keep_alive` keeps hidden and :meth:`release` shows again.
        self._held: dict[str, tuple[str, float]] = {}
        self._seen: set[str] = set()

    def envelopes(self) -> Iterator[Envelope]:
        """Messages, ten per receive, each hidden while this run holds it; ends when a receive finds none.
        A message received again (its hiding lapsed, or a delete with a stale handle did not take) is not read
        twice: a held one keeps its new handle, a redriven one is deleted with it."""
        try:
            while len(self._held) < SQS_MAX_HELD:
                messages = self.client.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                    VisibilityTimeout=SQS_VISIBILITY_TIMEOUT_S,
                ).get("Messages", [])
                if not messages:
                    return
                for message in messages:
                    envelope = self._receive(message)
                    if envelope is not None:
                        yield envelope
            self.stopped_early = True
            self.notes.append(f"stopped receiving with {len(self._held):,} messages held and not deleted (at most "
                              f"{SQS_MAX_HELD:,}, below SQS's in-flight limit): run the same command again")
        except Exception as exc:
            raise self._refusal(exc) from exc

    def _receive(self, message: dict[str, Any]) -> Envelope | None:
        """``message`` as an envelope, or ``None`` when this run received it before."""
        message_id, handle = message["MessageId"], message["ReceiptHandle"]
        if message_id in self._seen:
            if message_id in self._held:
                self._held[message_id] = (handle, time.monotonic())
            else:
                self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=handle)
            return None
        self._seen.add(message_id)
        self._held[message_id] = (handle, time.monotonic())
        self.listed += 1
        return Envelope(f"sqs message {message_id}", message_id, message["Body"].encode("utf-8"))

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
        """Delete the message, with the receipt handle it was received with last."""
        handle, _ = self._held[envelope.handle]
        self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=handle)
        self._held.pop(envelope.handle, None)

    def check_marking(self) -> None:
        """Not checked: a message can only be deleted once received and redriven (sqs:DeleteMessage); a
        refused delete leaves the message in the queue, to be redriven again (which is idempotent)."""

    def keep_alive(self) -> None:
        """Hide again, for :data:`SQS_VISIBILITY_TIMEOUT_S`, every held message hidden more than
        :data:`SQS_RENEW_AFTER_S` ago: a message visible again mid-run would be taken by another reader, and
        its receipt handle here would go stale (a delete with it may not take)."""
        now = time.monotonic()
        for message_id, (handle, since) in list(self._held.items()):
            if now - since < SQS_RENEW_AFTER_S:
                continue
            try:
                self.client.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=handle,
                                                      VisibilityTimeout=SQS_VISIBILITY_TIMEOUT_S)
                self._held[message_id] = (handle, now)
            except Exception:  # best effort: received again, it is recognised by its id (see envelopes)
                pass

    def release(self) -> None:
        while self._held:
            message_id = next(iter(self._held))
            handle, _ = self._held.pop(message_id)
            try:
                self.client.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=handle,
                                                      VisibilityTimeout=0)
            except Exception:  # best effort: the message becomes visible on its own after the timeout
                pass
