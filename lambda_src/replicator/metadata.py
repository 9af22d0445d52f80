"""Multi-active metadata: what the replicator stamps on the items it writes, and how it reads a write back.

Every metadata attribute starts with the configured prefix (default ``_rep_``):

``<prefix>origin``   (S)    region where the write that produced this state was made (the tie-breaker).
``<prefix>marker``   (S)    ``<digest>.<sequence>.<token>.<stamped>.<written>[.<expires>]``: a digest of the user
                            attributes + origin + kind, the origin stream sequence number, a token unique to the
                            write, when the replicator made that write, when the write it carries was made in its
                            origin region (its record's time), and on a tombstone its logical expiry (all epoch
                            seconds; the last two empty when unknown). A stream image whose marker matches its
                            own content, on a write that changed the marker, made moments after the marker's
                            time, is the replicator's own write (rule 3); any application write that changes a
                            user attribute breaks the match, even if it copies the metadata back, and a restored
                            backup carries a marker that is too old to be an echo (``ECHO_WINDOW_SECONDS``).
``<prefix>deleted``  (BOOL) on a tombstone: the item was deleted at the version in the conflict attribute.
TTL attribute        (N)    on a tombstone: epoch seconds after which DynamoDB's TTL may remove it: its logical
                            expiry plus the tombstone lifetime (see :func:`compare`).

A stale marker (an application write changed the item afterwards) is simply ignored: the state then counts
as a local write of the region that holds it.
"""

from __future__ import annotations

import decimal
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .attributes import Item, digest
from .config import Config

ORIGIN = "origin"
MARKER = "marker"
DELETED = "deleted"

#: How much older than its stream record a marker can be and still be the replicator's own write coming back:
#: the echo record is the record of that very write, created when DynamoDB applied it, and the replicator
#: stamps a write at most one invocation earlier (Lambda's maximum timeout is 15 minutes). An hour leaves room
#: for clock differences and second rounding. An older marker was copied back by someone else (a restored
#: backup) and the write is the application's.
ECHO_WINDOW_SECONDS = 3600

#: The replicator's clock (epoch seconds) for marker stamps, tombstone expiry and the age of a marker; a
#: module attribute, looked up at each use, so that tests can move it.
clock = time.time


class ConflictValueError(ValueError):
    """A write lacks a usable conflict attribute; ``code`` names the problem for logs and metrics."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


#: Order key of a state: (has a version, version, is a delete, origin, origin stream sequence number).
#: Deletes win ties with writes of the same version (a delete is versioned by the item version it removed);
#: equal (version, kind) ties go to the greater origin region id; two writes of one region with the same
#: version are ordered by that region's stream (rule 2), so a re-delivered earlier write never replaces a
#: later one. States without a usable version sort first.
OrderKey = tuple[bool, decimal.Decimal, bool, str, int]

#: Sequence number of a state whose place in its region's stream is unknown and that must count as the
#: latest of its region: an application write found in the table, newer than every record already seen.
LATEST = 10**60


@dataclass(frozen=True)
class State:
    """One version of an item as the conflict rules see it.

    Attributes:
        user: the user attributes (for a tombstone: its key and the conflict attribute).
        version: the conflict attribute's value, or ``None`` when the item has none usable.
        deleted: the state is a delete (a tombstone).
        origin: the region where this state was written.
        sequence: the stream sequence number of the record that wrote it in ``origin`` (0 when unknown and
            older than the record at hand, ``LATEST`` when unknown and newer).
        expires: a tombstone's logical expiry in epoch seconds, fixed by its delete so that every copy of it
            carries the same value: a write made at or after it finds the tombstone absent (:func:`compare`).
            ``None``: not a tombstone, or one that never expires logically (a delete without a record time, or
            a tombstone written before markers carried the expiry), which DynamoDB's TTL alone removes.
        written: when the write that produced this state was made in its origin region (its stream record's
            ``ApproximateCreationDateTime``, epoch seconds), carried in the marker so that every region
            compares the same value; ``None`` when unknown (an unstamped item read from a table, a marker
            written by an earlier version).
    """

    user: Item
    version: decimal.Decimal | None
    deleted: bool
    origin: str
    sequence: int = 0
    expires: int | None = None
    written: int | None = None

    @property
    def order(self) -> OrderKey:
        return (self.version is not None, self.version or decimal.Decimal(0), self.deleted, self.origin, self.sequence)

    def same_content(self, other: "State") -> bool:
        return self.deleted == other.deleted and digest(self.user) == digest(other.user)

    def describe(self) -> dict[str, object]:
        """For logs: the version, kind and origin."""
        return {
            "version": None if self.version is None else str(self.version),
            "deleted": self.deleted,
            "origin": self.origin,
        }


def _outlived(tombstone: State, other: State) -> bool:
    """``other`` was written at or after ``tombstone``'s logical expiry: for it the tombstone is absent."""
    return (
        tombstone.deleted
        and tombstone.expires is not None
        and other.written is not None
        and other.written >= tombstone.expires
    )


def compare(a: State, b: State) -> int:
    """Which of two states every region keeps: 1 when ``a`` orders after ``b``, -1 before, 0 the same.

    By :attr:`State.order`, except that a tombstone is absent for a state written at or after its logical
    expiry, whatever the versions (so a write made after a tombstone expired is kept, in every region, whether
    that region's TTL has removed its copy of the tombstone yet or not). Both values travel with the states,
    so every region decides alike. Sound while the lifetime is at least twice the longest a record can wait to
    be applied (D: the maximum record age, at most stream retention), as the construct's lifetime is:

    * DynamoDB's TTL may remove a tombstone only a lifetime after its logical expiry (see
      :meth:`MetadataCodec.stamp`), so every write made before the expiry is applied everywhere while every
      copy of the tombstone is still there to decide it;
    * the rule is not a total order (a write made after the expiry beats the tombstone, which beats a lower
      write made before it, which may beat the first by version), but those two writes never meet without the
      tombstone: the earlier one can win anywhere only where the delete has not arrived, i.e. if it was made
      within D of the delete, and it is then applied everywhere (and beaten by the delete) within D more,
      before the expiry a lifetime (>= 2 D) after the delete.
    """
    if _outlived(b, a):
        return 1
    if _outlived(a, b):
        return -1
    return (a.order > b.order) - (a.order < b.order)


class MetadataCodec:
    """Reads and writes the metadata of one topology (prefix, conflict attribute, TTL attribute, key)."""

    def __init__(self, config: Config) -> None:
        prefix = config.metadata_prefix
        self.prefix = prefix
        self.origin_attr = prefix + ORIGIN
        self.marker_attr = prefix + MARKER
        self.deleted_attr = prefix + DELETED
        self.ttl_attr = config.ttl_attribute
        self.conflict_attr = config.conflict_attribute
        self.key_names = config.key.names
        self.tombstone_ttl_seconds = config.tombstone_ttl_seconds

    # --- reading ------------------------------------------------------------------------------------------

    def is_metadata(self, name: str) -> bool:
        return name.startswith(self.prefix)

    def _tombstone_user(self, image: Item) -> Item:
        """A tombstone's user attributes: everything but metadata and its expiry. A tombstone written by the
        replicator holds only the key and the conflict attribute, so anything else an application adds
        breaks the marker."""
        return {k: v for k, v in image.items() if not self.is_metadata(k) and k != self.ttl_attr}

    def user_attributes(self, image: Item) -> Item:
        """The application's attributes: everything but our metadata."""
        return {k: v for k, v in image.items() if not self.is_metadata(k)}

    def stamped_by_replicator(self, image: Item) -> bool:
        """The image carries a marker that matches its own content (it is a state the replicator wrote)."""
        marker = image.get(self.marker_attr, {}).get("S")
        origin = image.get(self.origin_attr, {}).get("S")
        if marker is None or origin is None:
            return False
        deleted = self.deleted_attr in image
        user = self._tombstone_user(image) if deleted else self.user_attributes(image)
        # The part before the first "." is the content digest; the rest places and identifies the write (stamp).
        return marker.split(".", 1)[0] == self._marker(user, origin, deleted)

    def _marker_parts(self, image: Item) -> list[str]:
        return image.get(self.marker_attr, {}).get("S", "").split(".")

    def _marker_number(self, image: Item, index: int) -> int | None:
        """Part ``index`` of the marker as a number, or ``None`` when absent or empty."""
        parts = self._marker_parts(image)
        return int(parts[index]) if len(parts) > index and parts[index].isdigit() else None

    def _sequence_of(self, image: Item) -> int:
        """The origin stream sequence number a stamped image carries (0 for markers written without one)."""
        parts = image[self.marker_attr]["S"].split(".")
        return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else 0

    def stamped_at(self, image: Item) -> int | None:
        """When the replicator wrote the marker ``image`` carries (epoch seconds), or ``None`` when unknown
        (no marker, or one written before markers carried their time)."""
        return self._marker_number(image, 3)

    def written_at(self, image: Item) -> int | None:
        """When the write a stamped ``image`` carries was made in its origin region (``None`` when unknown)."""
        return self._marker_number(image, 4)

    def restored_state(self, image: Item, written_at: float | None) -> State:
        """The state of an application write whose image carries a marker matching its content that is not
        an echo (a backup restored verbatim, at ``written_at``, the record's time in epoch seconds).

        The restore brings back the very state the backup holds, origin and stream position included, so that
        every copy (this region's, which keeps the restored metadata, and the ones sent) orders it the same
        way. It is written at ``written_at``: a tombstone that expired logically before it is absent for it.
        A restored tombstone is that delete again, with the logical expiry it was deleted with (the same in
        every copy, restored or not); one written before markers carried it gets none, as its copies in the
        other regions have none, and a fresh physical expiry (the one in the backup may have passed).

        Raises:
            ConflictValueError: the conflict attribute is missing or not a number.
        """
        self.version_of(image)  # the restore must be orderable like any write
        state = self.state_of(image, region="")  # stamped: origin and sequence come from the marker
        return replace(state, written=None if written_at is None else int(written_at))

    def is_tombstone(self, image: Item | None) -> bool:
        return image is not None and self.deleted_attr in image and self.stamped_by_replicator(image)

    def version_of(self, image: Mapping[str, Mapping[str, str]]) -> decimal.Decimal:
        """The conflict attribute as a number.

        Raises:
            ConflictValueError: it is missing or not a number.
        """
        value = image.get(self.conflict_attr)
        if value is None:
            raise ConflictValueError(
                "MissingConflictAttribute", f"the item has no conflict attribute {self.conflict_attr!r}"
            )
        if "N" not in value:
            raise ConflictValueError(
                "InvalidConflictAttribute",
                f"conflict attribute {self.conflict_attr!r} must be a number, got type {next(iter(value))}",
            )
        return decimal.Decimal(value["N"])

    def state_of(self, image: Item, region: str, unstamped_sequence: int = 0) -> State:
        """The state an image holds in ``region`` (where unstamped or stale-stamped writes originate).

        ``unstamped_sequence`` places an application write in its region's stream: 0 for an old image (older
        than the record at hand), ``LATEST`` for an item read from the table (newer than every record seen).
        """
        try:
            version: decimal.Decimal | None = self.version_of(image)
        except ConflictValueError:
            version = None
        if self.stamped_by_replicator(image):
            deleted = self.deleted_attr in image
            user = self._tombstone_user(image) if deleted else self.user_attributes(image)
            expires = self._marker_number(image, 5) if deleted else None
            origin = image[self.origin_attr]["S"]
            return State(user, version, deleted, origin, self._sequence_of(image), expires, self.written_at(image))
        return State(self.user_attributes(image), version, False, region, unstamped_sequence)

    def tombstone_state(self, removed: Item, origin: str, sequence: int, deleted_at: float | None = None) -> State:
        """The delete of ``removed`` (the REMOVE record's old image), made in ``origin`` by record ``sequence``
        at ``deleted_at`` (the record's ApproximateCreationDateTime, epoch seconds).

        The tombstone expires logically ``tombstone_ttl_seconds`` after the delete, the same instant in every
        copy (and on every re-delivery of the record); with ``deleted_at`` unknown, never (DynamoDB's TTL
        removes it one lifetime after it is written).
        """
        names = (*self.key_names, self.conflict_attr)
        written = None if deleted_at is None else int(deleted_at)
        expires = None if written is None else written + self.tombstone_ttl_seconds
        user = {n: removed[n] for n in names if n in removed}
        return State(user, self.version_of(removed), True, origin, sequence, expires, written)

    def has_stale_tombstone_attributes(self, image: Item) -> bool:
        """An application wrote onto a tombstone: its delete flag or TTL expiry would now hide or expire a
        live item, so they must be removed."""
        if self.stamped_by_replicator(image):
            return False
        return self.deleted_attr in image or (self.is_metadata(self.ttl_attr) and self.ttl_attr in image)

    # --- writing ------------------------------------------------------------------------------------------

    @staticmethod
    def _marker(user: Item, origin: str, deleted: bool) -> str:
        return digest(user, origin, "tombstone" if deleted else "item")

    def stamp(self, state: State, now: float | None = None) -> Item:
        """The item to write for ``state``: its user attributes plus our metadata (``now``: the time of the
        write in epoch seconds; default: the replicator's clock)."""
        now = clock() if now is None else now
        item = dict(state.user)
        item[self.origin_attr] = {"S": state.origin}
        # A digest of the content, the origin stream sequence number (orders one region's equal versions),
        # a token unique to this write, and the time of the write. The token: the replicator's own write of a
        # state that is already there with a stale marker (a Repair over a local write that lost) must still
        # change the marker, so that _is_echo recognises it, while an application write that restores a
        # stamped state byte for byte keeps the old marker and is still sent. The time: a backup restored
        # verbatim, which changes the marker to one that matches, is not taken for an echo once the marker is
        # older than ECHO_WINDOW_SECONDS. Then when the write was made in its origin and, on a tombstone, its
        # logical expiry: compare() needs the same values in every region.
        digest_part = self._marker(state.user, state.origin, state.deleted)
        token = secrets.token_urlsafe(6)  # URL-safe base64: never a "."
        written = "" if state.written is None else str(state.written)
        marker = f"{digest_part}.{state.sequence}.{token}.{int(now)}.{written}"
        if state.deleted:
            marker += "." + ("" if state.expires is None else str(state.expires))
            item[self.deleted_attr] = {"BOOL": True}
            # DynamoDB's TTL may remove the tombstone only a whole lifetime (which exceeds stream retention +
            # the maximum record age) after its logical expiry: every write made before that expiry is then
            # delivered while every copy still holds the tombstone (compare()).
            start = state.expires if state.expires is not None else int(now)
            item[self.ttl_attr] = {"N": str(start + self.tombstone_ttl_seconds)}
        item[self.marker_attr] = {"S": marker}
        return item
