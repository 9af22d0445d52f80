"""DynamoDB table tags for the local runtime: ``TagResource``, ``UntagResource``, ``ListTagsOfResource`` and
``CreateTable``'s ``Tags``, which DynamoDB Local does not keep ("Tagging is not currently supported").

The gateway serves them from a :class:`TagStore` after the usual IAM evaluation of the action on the table
ARN (:meth:`cdk_replication.local.gateway.Gateway._dynamodb`), and ``deploy()``/``update()`` apply each table
resource's template ``Tags`` (as CloudFormation does), so that a CLI safety net that reads a tag (the replica
transform's ``cdk-replication:transform``) is exercised locally too (DESIGN rule 9).

Modelled as DynamoDB checks them: ``ResourceArn`` must be a table ARN (a plain name is a ValidationException);
the table must exist (ResourceNotFoundException); a key has 1 to 128 characters and must not start with
``aws:``, a value at most 256 characters; at most 50 tags per table. Not modelled: tags on backups or
streams, ``NextToken`` paging (every tag is returned in one page), the eventual consistency of tag changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

#: The operations :class:`TagStore` serves instead of DynamoDB Local.
TAG_OPERATIONS = frozenset({"TagResource", "UntagResource", "ListTagsOfResource"})
#: DynamoDB's limits on tags.
MAX_TAGS, MAX_KEY_LENGTH, MAX_VALUE_LENGTH = 50, 128, 256

TableId = tuple[str, str, str]  # (account, region, table name)


class TagError(Exception):
    """A request DynamoDB would refuse: ``code`` (``ValidationException``) and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def checked_tags(tags: Any) -> dict[str, str]:
    """``[{"Key": k, "Value": v}, ...]`` as a dict, refused (:class:`TagError`) as DynamoDB refuses it."""
    if not isinstance(tags, list):
        raise TagError("ValidationException", "1 validation error detected: Value null at 'tags' failed to satisfy "
                                              "constraint: Member must not be null")
    found: dict[str, str] = {}
    for tag in tags:
        key, value = str((tag or {}).get("Key", "")), str((tag or {}).get("Value", ""))
        if not 1 <= len(key) <= MAX_KEY_LENGTH or len(value) > MAX_VALUE_LENGTH:
            raise TagError("ValidationException", f"Invalid tag: key {key!r} must have 1 to {MAX_KEY_LENGTH} "
                                                  f"characters, its value at most {MAX_VALUE_LENGTH}")
        if key.lower().startswith("aws:"):
            raise TagError("ValidationException", f"Invalid tag key {key!r}: the prefix 'aws:' is reserved")
        found[key] = value
    return found


class TagStore:
    """Every table's tags, by (account, region, table name); thread-safe."""

    def __init__(self) -> None:
        self._tags: dict[TableId, dict[str, str]] = {}
        self._lock = threading.Lock()

    def tags(self, table: TableId) -> dict[str, str]:
        """The tags of ``table`` (empty when it has none)."""
        with self._lock:
            return dict(self._tags.get(table, {}))

    def add(self, table: TableId, tags: Mapping[str, str]) -> None:
        """Add or overwrite ``tags`` on ``table`` (TagResource).

        Raises:
            TagError: the table would have more than :data:`MAX_TAGS` tags.
        """
        with self._lock:
            merged = {**self._tags.get(table, {}), **tags}
            if len(merged) > MAX_TAGS:
                raise TagError("ValidationException", f"Too many tags: a table has at most {MAX_TAGS}")
            self._tags[table] = merged

    def remove(self, table: TableId, keys: Iterable[str]) -> None:
        """Remove the tags named ``keys`` (UntagResource; unknown keys are ignored, as DynamoDB does)."""
        with self._lock:
            kept = {k: v for k, v in self._tags.get(table, {}).items() if k not in set(keys)}
            self._tags[table] = kept

    def replace(self, table: TableId, tags: Mapping[str, str]) -> None:
        """Set ``table``'s tags to exactly ``tags`` (a deploy applying the template's ``Tags``)."""
        with self._lock:
            self._tags[table] = dict(tags)

    def forget(self, table: TableId) -> None:
        """The table was deleted: its tags go with it."""
        with self._lock:
            self._tags.pop(table, None)

    def serve(self, operation: str, table: TableId, request: Mapping[str, Any]) -> dict[str, Any]:
        """The answer to one of :data:`TAG_OPERATIONS` on ``table`` (which exists; IAM already evaluated)."""
        if operation == "TagResource":
            self.add(table, checked_tags(request.get("Tags")))
            return {}
        if operation == "UntagResource":
            keys = request.get("TagKeys")
            if not isinstance(keys, list):
                raise TagError("ValidationException", "1 validation error detected: Value null at 'tagKeys' failed "
                                                      "to satisfy constraint: Member must not be null")
            self.remove(table, [str(k) for k in keys])
            return {}
        return {"Tags": [{"Key": k, "Value": v} for k, v in sorted(self.tags(table).items())]}
