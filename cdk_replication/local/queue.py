"""An in-memory stand-in for the SQS queue (or SNS topic) an event source mapping sends failures to."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QueueMessage:
    """One message: its id, JSON body as sent, and when it was sent (epoch seconds)."""

    message_id: str
    body: str
    sent_at: float

    def json(self) -> Any:
        """The body parsed as JSON (on-failure records are JSON documents)."""
        return json.loads(self.body)


class LocalQueue:
    """A FIFO of messages that tests read directly; thread-safe.

    Args:
        name: the queue name (for a template's ``AWS::SQS::Queue``, its physical name).
        arn: the queue's ARN. Default: ``arn:aws:sqs:<region>:<account>:<name>``.
        region: region of the default ARN. Default: ``us-east-1``.
        account: account of the default ARN. Default: ``000000000000``.
    """

    def __init__(self, name: str, arn: str | None = None, region: str = "us-east-1", account: str = "000000000000"):
        self.name = name
        self.arn = arn or f"arn:aws:sqs:{region}:{account}:{name}"
        self._messages: list[QueueMessage] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalQueue({self.name!r}, {len(self)} messages)"

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)

    def send_message(self, body: str | dict[str, Any]) -> str:
        """Append a message (a dict is sent as JSON) and return its message id."""
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        message = QueueMessage(str(uuid.uuid4()), text, time.time())
        with self._lock:
            self._messages.append(message)
        return message.message_id

    def deliver_on_failure(self, record: dict[str, Any], *, event: dict[str, Any], mapping_uuid: str,
                           shard_id: str, when: float, principal_arn: str | None = None) -> str:
        """Send an event source mapping's invocation record; like SQS and SNS destinations on AWS, it carries
        the metadata only, never ``event`` (the records). Returns the message id."""
        del event, mapping_uuid, shard_id, when, principal_arn  # an S3 destination's business
        return self.send_message(record)

    @property
    def messages(self) -> list[QueueMessage]:
        """Every message still in the queue, oldest first (reading does not remove them)."""
        with self._lock:
            return list(self._messages)

    def bodies(self) -> list[Any]:
        """Every message body parsed as JSON, oldest first."""
        return [m.json() for m in self.messages]

    def failure_records(self) -> list[Any]:
        """The on-failure records sent here (metadata only, no ``payload``), oldest first: :meth:`bodies`."""
        return self.bodies()

    def receive(self, max_messages: int = 10) -> list[QueueMessage]:
        """Remove and return up to ``max_messages`` of the oldest messages (no visibility timeout)."""
        with self._lock:
            taken, self._messages = self._messages[:max_messages], self._messages[max_messages:]
        return taken

    def purge(self) -> None:
        """Drop every message."""
        with self._lock:
            self._messages.clear()
