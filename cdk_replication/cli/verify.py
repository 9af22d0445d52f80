"""``verify``: compare two tables item by item through digests, then optionally repair the differences.

Memory: the source is scanned first into a map from key to a 16-byte digest (whole items are never kept);
the target scan then takes matching keys out of that map, so what remains is missing from the target.
Roughly 200 bytes per source item (10 million items: about 2 GB).

Scans are not snapshots, and replication is never at zero lag: an item changed during the scans may look
different. Every difference is therefore re-read with strongly consistent reads of both tables, in up to
3 rounds 1 s apart (``--recheck-rounds``, ``--recheck-pause``), and reported only if every round sees it.

Multi-active tombstones (items with ``<metadata prefix>deleted``) stand for deleted items: they are
counted apart and compared as absent.

A transformed replica (:mod:`cdk_replication.cli.transforms`) is compared with the TRANSFORMED source: each
source item is transformed as the replicator does before its digest is taken, under TARGET's key for it
(hashed where a key attribute is masked); items the filter leaves out are counted apart (``filteredOut``) and
expected absent from TARGET, so a correct masked copy verifies clean and an item that should not be there is
``extra``. Keys are reported in TARGET's key space.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from cdk_replication.cli.errors import WorkFailed, error_code, error_message
from cdk_replication.cli.items import KeyId, is_tombstone, item_digest, key_text, to_json_item
from cdk_replication.cli.options import (
    DEFAULT_METADATA_PREFIX,
    DEFAULT_RECHECK_PAUSE,
    DEFAULT_RECHECK_ROUNDS,
    VerifyOptions,
)
from cdk_replication.cli.pacing import Retrier, TokenBucket
from cdk_replication.cli.progress import Progress, Rate
from cdk_replication.cli.repair import REPAIRED, SETTLED, RepairReport, Repairer
from cdk_replication.cli.tables import TableHandle
from cdk_replication.cli.transforms import IDENTITY, ReplicaView

#: Differences re-read with consistent reads at most; above it they are reported as scanned.
MAX_REREAD = 100_000

__all__ = ["DEFAULT_METADATA_PREFIX", "VerifyOptions", "VerifyResult", "run_verify", "verify_json", "verify_text"]


@dataclass
class VerifyResult:
    """What :func:`run_verify` found (after the consistent re-read) and, with a repair, what it did."""

    source_items: int
    target_items: int
    matching: int
    source_tombstones: int = 0
    target_tombstones: int = 0
    missing: list[KeyId] = field(default_factory=list)
    extra: list[KeyId] = field(default_factory=list)
    different: list[KeyId] = field(default_factory=list)
    settled_on_reread: int = 0
    reread: bool = True
    #: For each key in ``different`` (when re-read): the top-level attributes that differ.
    different_attributes: dict[KeyId, list[str]] = field(default_factory=dict)
    repair: RepairReport | None = None
    seconds: float = 0.0
    #: Source items the replica's filter leaves out (expected absent from TARGET); 0 without a transform.
    filtered_out: int = 0

    @property
    def difference_count(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.different)

    @property
    def differences_remain(self) -> bool:
        """True when the tables still differ: without a repair, any difference; with one, what it left."""
        if self.repair is None:
            return self.difference_count > 0
        return self.repair.remaining > 0


class _Scanner:
    def __init__(self, options: VerifyOptions, retrier: Retrier, stop: threading.Event,
                 view: ReplicaView = IDENTITY) -> None:
        self.view = view
        #: TARGET key -> SOURCE key of every transformed source item, kept only when the transform hashes a
        #: key attribute (TARGET's key then cannot be mapped back otherwise).
        self.origin: dict[KeyId, KeyId] = {}
        self.filtered_out = 0
        self.options = options
        self.retrier = retrier
        self.stop = stop
        self.scanned = {"source": 0, "target": 0}
        self.tombstones = {"source": 0, "target": 0}
        self._lock = threading.Lock()

    def scan(self, handle: TableHandle, side: str, visit: Any, *, transformed: bool = False) -> None:
        """Parallel-scan ``handle``, calling ``visit(segment, key_id, digest)`` for every item; with
        ``transformed`` (the source side), for every item as the replica holds it, under TARGET's key."""
        bucket = TokenBucket(self.options.rate)

        def segment(seg: int) -> None:
            start = None
            while not self.stop.is_set():
                request: dict[str, Any] = {
                    "TableName": handle.name,
                    "Segment": seg,
                    "TotalSegments": self.options.segments,
                }
                if start:
                    request["ExclusiveStartKey"] = start
                page = self.retrier.call(handle.client.scan, **request)
                items = page.get("Items", [])
                bucket.acquire(len(items))
                tombstones = self._visit_page(handle, items, seg, visit, transformed)
                with self._lock:
                    self.scanned[side] += len(items)
                    self.tombstones[side] += tombstones
                start = page.get("LastEvaluatedKey")
                if not start:
                    return

        self._run_segments(handle, side, segment)

    def _visit_page(self, handle: TableHandle, items: list[Any], seg: int, visit: Any, transformed: bool) -> int:
        """Visit one page's items (transformed when asked); returns how many were tombstones."""
        prefix, key, view = self.options.metadata_prefix, handle.info.key, self.view
        tombstones = filtered = 0
        for item in items:
            if is_tombstone(item, prefix):
                tombstones += 1  # a multi-active delete: compared as "no item"
                continue
            if transformed and not view.identity:
                shaped = view.item(item)
                if shaped is None:
                    filtered += 1  # the replica does not hold it
                    continue
                if view.rekeys:
                    self.origin[key.key_id(shaped)] = key.key_id(item)  # dict assignment is atomic in CPython
                item = shaped
            visit(seg, key.key_id(item), item_digest(item, prefix))
        if filtered:
            with self._lock:
                self.filtered_out += filtered
        return tombstones

    def _run_segments(self, handle: TableHandle, side: str, segment: Any) -> None:
        with ThreadPoolExecutor(self.options.segments, thread_name_prefix=f"scan-{side}") as pool:
            futures = [pool.submit(segment, s) for s in range(self.options.segments)]
            for f in futures:
                exc = f.exception()
                if exc is not None:
                    self.stop.set()
                    raise WorkFailed(
                        f"scan of {side} table {handle.info.label()} failed: "
                        f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"
                    ) from exc


def run_verify(
    source: TableHandle,
    target: TableHandle,
    options: VerifyOptions,
    *,
    progress_stream: TextIO | None = None,
    show_progress: bool = True,
    view: ReplicaView = IDENTITY,
) -> VerifyResult:
    """Compare ``source`` and ``target`` (both already checked) and repair when ``options.repair``.

    Args:
        view: how TARGET holds SOURCE's items; default as they are. With a transform, TARGET is compared with
            (and repaired to) the transformed source (module docstring).

    Raises:
        WorkFailed: a scan failed for a reason other than throttling.
    """
    started = time.monotonic()
    retrier = Retrier(options.max_attempts)
    scanner = _Scanner(options, retrier, threading.Event(), view)
    phase = ["scanning source"]
    expected = source.info.item_count + target.info.item_count
    rate = Rate(expected)

    def render() -> str:
        s, t = scanner.scanned["source"], scanner.scanned["target"]
        total = f"/~{expected:,}" if expected else ""
        return (
            f"verify {source.info.label()} vs {target.info.label()}: {phase[0]}; read {s + t:,}{total} "
            f"(source {s:,}, target {t:,}) | {rate.describe(s + t)}"
        )

    with Progress(render, progress_stream, enabled=show_progress):
        found = _compare_scans(source, target, scanner, phase)
        # A hashed key maps back only through the scan; an unknown one (None) is an orphan of TARGET.
        source_of = scanner.origin.get if view.rekeys else None
        repairer = Repairer(source, target, options, retrier, view=view, source_of=source_of)
        settle_and_repair(found, repairer, options, phase)
        if found.repair is not None and repairer.orphans_removed:
            phase[0] = "re-scanning source for the deleted orphans"
            _restore_orphans(source, scanner, repairer, found.repair, options.workers)
        # The line left on screen is drawn when the block ends: it says the work is over, not its last phase.
        phase[0] = "done"
    found.seconds = time.monotonic() - started
    return found


def _compare_scans(source: TableHandle, target: TableHandle, scanner: _Scanner, phase: list[str]) -> VerifyResult:
    """Scan the source into a map of digests, then the target against it: what the scans saw, before the
    consistent re-read. ``phase[0]`` names the scan under way, for the progress line."""
    segments = scanner.options.segments
    digests: dict[KeyId, bytes] = {}
    extra: list[list[KeyId]] = [[] for _ in range(segments)]
    different: list[list[KeyId]] = [[] for _ in range(segments)]
    # One shared map (a dict assignment is atomic in CPython), so memory never holds two copies.
    scanner.scan(source, "source", lambda seg, k, d: digests.__setitem__(k, d), transformed=True)
    source_items = len(digests)
    matching = [0] * segments
    phase[0] = "scanning target"

    def compare(seg: int, k: KeyId, d: bytes) -> None:
        # dict.pop is atomic in CPython; the segments of one scan never share a key.
        expected_digest = digests.pop(k, None)
        if expected_digest is None:
            extra[seg].append(k)
        elif expected_digest != d:
            different[seg].append(k)
        else:
            matching[seg] += 1

    scanner.scan(target, "target", compare)
    missing = list(digests)
    digests.clear()
    return VerifyResult(
        source_items=source_items,
        target_items=scanner.scanned["target"] - scanner.tombstones["target"],
        source_tombstones=scanner.tombstones["source"],
        target_tombstones=scanner.tombstones["target"],
        matching=sum(matching),
        filtered_out=scanner.filtered_out,
        missing=missing,
        extra=[k for part in extra for k in part],
        different=[k for part in different for k in part],
    )


def _restore_orphans(source: TableHandle, scanner: _Scanner, repairer: Repairer, report: RepairReport,
                     workers: int) -> None:
    """Scan SOURCE again and repair every deleted orphan that a source item now produces.

    An orphan (a TARGET item under a hashed key no source item produced at the first scan) may be the copy of
    an item created after that scan. Such an item either stays unchanged from the delete to this scan (it is
    seen here and written again) or changes after the delete (its later stream record is applied after the
    delete): either way TARGET ends right. Reported under the orphan's key, with the repair's outcome."""
    removed = set(repairer.orphans_removed)
    scanner.origin.clear()
    scanner.scan(source, "source", lambda seg, k, d: None, transformed=True)
    again = {k: scanner.origin[k] for k in removed if k in scanner.origin}
    with ThreadPoolExecutor(workers, thread_name_prefix="restore") as pool:
        for target_id, (outcome, reason) in zip(again, pool.map(repairer.repair_one, again.values())):
            report.outcomes[target_id] = REPAIRED if outcome == SETTLED else outcome
            if reason:
                report.reasons[target_id] = reason


def settle_and_repair(found: VerifyResult, repairer: Repairer, options: VerifyOptions, phase: list[str],
                      limit: int = MAX_REREAD) -> None:
    """Re-read what the comparison found until it persists (:func:`reread_differences`, up to ``limit``
    differences, default :data:`MAX_REREAD`), then repair it when ``options.repair``. ``phase[0]`` names the
    step under way, for the progress line. Shared by the scan comparison and the comparison of exports
    (cli/verify_exports.py, which re-reads all the job lists)."""
    if found.difference_count:
        phase[0] = f"re-reading {found.difference_count:,} differences"
    reread_differences(found, repairer, options, limit)
    if options.repair and found.difference_count:
        phase[0] = "dry run" if options.dry_run else "repairing"
        found.repair = repairer.repair_all(found.missing + found.extra + found.different, options.workers)


def reread_differences(found: VerifyResult, repairer: Repairer, options: VerifyOptions,
                       limit: int = MAX_REREAD) -> None:
    """Re-classify every difference from consistent reads of both tables, in up to ``options.recheck_rounds``
    rounds ``options.recheck_pause`` seconds apart (:func:`recheck`): in-flight changes and replication lag
    settle, only what persists is reported.

    Skipped above ``limit`` differences (default :data:`MAX_REREAD`; for example an empty target): two reads
    per key would cost more than they could clarify.
    """
    suspects = found.missing + found.extra + found.different
    if len(suspects) > limit:
        found.reread = False
        return
    found.reread = True  # a comparison of exports arrives unread
    verdicts = recheck(suspects, repairer.classify, options.workers, options.recheck_rounds, options.recheck_pause)
    found.missing, found.extra, found.different = [], [], []
    for key_id in suspects:
        status, attributes = verdicts.get(key_id, ("same", []))
        if status == "missing":
            found.missing.append(key_id)
        elif status == "extra":
            found.extra.append(key_id)
        elif status == "different":
            found.different.append(key_id)
            found.different_attributes[key_id] = attributes
        else:
            found.settled_on_reread += 1


def recheck(
    suspects: list[KeyId],
    classify: Callable[[KeyId], tuple[str, list[str]]],
    workers: int,
    rounds: int = DEFAULT_RECHECK_ROUNDS,
    pause: float = DEFAULT_RECHECK_PAUSE,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[KeyId, tuple[str, list[str]]]:
    """The keys of ``suspects`` that still differ after ``rounds`` rounds of ``classify`` (consistent reads),
    with their last verdict (``missing``/``extra``/``different`` and the differing attributes).

    A key that reads equal in any round has settled and is dropped: the replica caught up with it. Only the
    keys still differing are read again, after ``pause`` seconds (default 1.0; 3 rounds by default, so a lag
    of up to about 2 s settles). ``rounds`` below 1 counts as 1.
    """
    pending = list(suspects)
    verdicts: dict[KeyId, tuple[str, list[str]]] = {}
    for round_number in range(max(1, rounds)):
        if round_number and pending:
            sleep(pause)
        with ThreadPoolExecutor(workers, thread_name_prefix="reread") as pool:
            results = list(pool.map(classify, pending))
        verdicts = {k: v for k, v in zip(pending, results) if v[0] != "same"}
        pending = list(verdicts)
        if not pending:
            break
    return verdicts


def verify_json(result: VerifyResult, key_schema: Any) -> dict[str, Any]:
    """The ``--json`` document: counts, every differing key (DynamoDB JSON), and the repair."""

    def keys(ids: list[KeyId]) -> list[dict[str, Any]]:
        return [to_json_item(key_schema.key_from_id(k)) for k in ids]

    doc: dict[str, Any] = {
        "command": "verify",
        "inSync": not result.differences_remain,
        "sourceItems": result.source_items,
        "targetItems": result.target_items,
        "matching": result.matching,
        "sourceTombstones": result.source_tombstones,
        "targetTombstones": result.target_tombstones,
        "settledOnReread": result.settled_on_reread,
        "filteredOut": result.filtered_out,
        "reread": result.reread,
        "missing": keys(result.missing),
        "extra": keys(result.extra),
        "different": keys(result.different),
        "differentAttributes": [result.different_attributes.get(k, []) for k in result.different],
        "seconds": round(result.seconds, 3),
    }
    if result.repair is not None:
        doc["repair"] = result.repair.as_json(key_schema)
    return doc


def verify_text(result: VerifyResult, key_schema: Any, show: int) -> list[str]:
    """Human lines: the counts, then up to ``show`` keys per kind of difference."""
    lines = [
        f"source {result.source_items:,} items, target {result.target_items:,} items, "
        f"{result.matching:,} identical; missing {len(result.missing):,}, extra {len(result.extra):,}, "
        f"different {len(result.different):,}"
        + (f" ({result.settled_on_reread:,} more settled on re-read)" if result.settled_on_reread else "")
        + (f"; {result.filtered_out:,} source items left out by the replica's filter" if result.filtered_out else "")
    ]
    if not result.reread:
        lines.append(f"(more than {MAX_REREAD:,} differences: reported as scanned, without consistent re-reads)")
    for title, ids in (("missing in target", result.missing), ("extra in target", result.extra),
                       ("different", result.different)):
        if ids:
            lines.append(f"{title}:")
            for k in ids[:show]:
                attributes = result.different_attributes.get(k)
                detail = f" (attributes: {', '.join(attributes)})" if attributes else ""
                lines.append(f"  {key_text(key_schema.key_from_id(k))}{detail}")
            if len(ids) > show:
                lines.append(f"  ... and {len(ids) - show:,} more (--show N, or --json for all)")
    if result.repair is not None:
        lines += result.repair.text_lines(key_schema, show)
    return lines
