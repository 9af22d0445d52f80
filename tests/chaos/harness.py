"""Drives a deployed MULTI_ACTIVE topology through one chaos example and checks rules 1, 3, 4 and 5.

An example is a *program*: application writes in each region (with that region's skewed clock), delivery
steps of each region's event source mapping, and injected delivery faults. Everything runs in the test's
thread through the mappings' deterministic ``step()``, so an example replays exactly (hypothesis can shrink
it) and the interleaving of application writes with replicator invocations is chosen by the program.

Examples share one deployment; each one writes only keys under its own prefix and every check looks only at
those keys, so examples are isolated without redeploying or emptying tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from cdk_replication.local import LocalDeployment, LocalFunction, LocalTable, StreamEventSourceMapping

from .model import CONFLICT, DELETED, KEY, MARKER, ORIGIN, ItemState, Model, canon_item, user_attributes

#: Conflict values look like epoch milliseconds; the program's logical time and skews are added to it.
CLOCK_BASE = 1_750_000_000_000

# Exotic attribute values (rule 1: byte-identical values). A write picks some of them by index.
PAYLOADS: tuple[dict[str, Any], ...] = (
    {"N": "12345678901234567890123456789012345678"},  # 38 significant digits
    {"N": "-0.000000000000000000000000000000000001"},
    {"B": b"\x00\xff\x10binary\x00"},
    {"S": ""},  # empty strings are allowed outside keys
    {"SS": ["b", "a", "\u00e9t\u00e9"]},
    {"NS": ["1", "2.50", "-3e10"]},
    {"BS": [b"\x01", b"\x00\x02"]},
    {"M": {"nested": {"L": [{"NULL": True}, {"BOOL": False}, {"M": {}}]}, "e": {"S": ""}}},
    {"L": []},
    {"NULL": True},
)
#: Names of the payload attributes a write may set or remove.
PAYLOAD_ATTRIBUTES = ("a", "b", "c")


# --- the program ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """An application write in ``region``: ``put`` (whole item), ``update`` (UpdateItem upsert that sets or
    removes one attribute) or ``delete``; or ``expire``, a delete made by DynamoDB's TTL process in that
    region only (its stream record names the TTL service). ``tick`` advances the global logical time before
    the write (0: the clock stands still, so equal conflict values happen within and across regions)."""

    region: int
    kind: str
    key: int
    tick: int
    payload: int

    def __repr__(self) -> str:
        return f"Write(r{self.region}, {self.kind}, k{self.key}, +{self.tick}, p{self.payload})"


@dataclass(frozen=True)
class Burst:
    """Concurrent writes: each of ``regions`` writes item ``key`` at the same logical time (a put, or an
    update when ``payload`` is odd), before any of them is replicated. With equal skews the conflict values
    tie and the origin region decides."""

    regions: tuple[int, ...]
    key: int
    payload: int

    def __repr__(self) -> str:
        return f"Burst({', '.join(f'r{r}' for r in self.regions)}, k{self.key}, p{self.payload})"


@dataclass(frozen=True)
class Deliver:
    """``steps`` polls of ``region``'s event source mapping (each invokes the replicator at most once)."""

    region: int
    steps: int

    def __repr__(self) -> str:
        return f"Deliver(r{self.region}, {self.steps})"


#: Fault kinds: duplicate next batches, replay the last batch, replay the whole stream, crash the container
#: after k writes, throttle k write calls, pause the mapping (its region falls behind), resume it.
FAULT_KINDS = ("duplicate", "replay_last", "replay_all", "crash", "throttle", "pause", "resume")


@dataclass(frozen=True)
class Fault:
    """A delivery fault armed on ``region``'s replicator; ``arg`` is its count where it has one."""

    kind: str
    region: int
    arg: int = 1

    def __repr__(self) -> str:
        return f"Fault({self.kind}, r{self.region}, {self.arg})"


@dataclass(frozen=True)
class Restore:
    """An operator restores item ``key`` in region ``dst`` verbatim from a backup of region ``src``'s copy
    taken now, with every ``_rep_`` attribute, its marker aged by ``BACKUP_AGE_S`` (backups are older than
    the replicator's echo window; docs/conflicts.md "Restoring items from a backup")."""

    src: int
    dst: int
    key: int

    def __repr__(self) -> str:
        return f"Restore(r{self.src} -> r{self.dst}, k{self.key})"


#: How old a restored backup is, in seconds: beyond the replicator's echo window (one hour).
BACKUP_AGE_S = 2 * 3600

Op = Write | Burst | Deliver | Fault | Restore


@dataclass(frozen=True)
class Program:
    """One chaos example: each region's clock skew, the operations in order, and the parallelization factor
    every region's mapping runs at (``None``: the topology's ``factor``, which a test may set)."""

    skews: tuple[int, ...]
    ops: tuple[Op, ...]
    factor: int | None = None

    def __repr__(self) -> str:
        lines = ",\n    ".join(repr(op) for op in self.ops)
        return f"Program(skews={self.skews}, ops=[\n    {lines}], factor={self.factor})"


# --- the topology ---------------------------------------------------------------------------------------------


@dataclass
class Stats:
    """What the chaos runs of one session exercised (printed at the end of the test session)."""

    examples: int = 0
    operations: int = 0
    writes: int = 0
    bursts: int = 0
    deliveries: int = 0
    restores: int = 0
    restored_states: int = 0  # restores that brought a stamped state back (the others were plain writes)
    faults: dict[str, int] = field(default_factory=dict)
    factors: dict[int, int] = field(default_factory=dict)  # examples run at each parallelization factor
    invocations: int = 0
    keys: int = 0
    tied_winners: int = 0  # keys whose winner tied another region's state on conflict value and kind
    deleted_winners: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        return (f"{self.examples} examples, {self.operations} operations ({self.writes} application writes, "
                f"{self.bursts} concurrent bursts among them, "
                f"{self.deliveries} delivery steps, {self.restores} restores ({self.restored_states} of a stamped state), faults: {faults}); {self.invocations} replicator invocations; "
                f"{self.keys} items checked, {self.tied_winners} won on the origin tie-break, {self.deleted_winners} "
                f"ended deleted; examples per parallelization factor: "
                f"{', '.join(f'{k}: {v}' for k, v in sorted(self.factors.items())) or 'none'}; {self.seconds:.0f} s")


#: Totals of the session, filled by Run.check.
STATS = Stats()


@dataclass
class Region:
    """One location of the deployed topology."""

    name: str
    table: LocalTable
    function: LocalFunction
    mapping: StreamEventSourceMapping
    write_log: Path
    client: Any = None

    def __post_init__(self) -> None:
        self.client = self.table.client()


class ChaosFailure(AssertionError):
    """A rule was broken; the message says which, for which keys, and what each region holds."""


#: ``userIdentity`` of a delete made by DynamoDB's TTL process, as a Lambda record carries it.
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def install_ttl_identity(mapping: StreamEventSourceMapping, removed: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Make ``mapping`` deliver the REMOVE record of every (key, op) in ``removed`` as a TTL delete.

    DynamoDB Local's own TTL process writes records AWS never does (``eventName`` ``UNKNOWN_TO_SDK_VERSION``,
    no ``userIdentity``), so the suite deletes the item itself and marks its record as AWS would, when the
    mapping reads it (again after a replay). Returns ``removed``, which the caller fills.
    """
    source = mapping.source
    original = source.to_record

    def to_record(raw: dict[str, Any], shard_id: str, now: float) -> Any:
        made = original(raw, shard_id, now)
        record = made.event_record
        old = record.get("dynamodb", {}).get("OldImage", {})
        if record.get("eventName") == "REMOVE" and (old.get(KEY, {}).get("S"), old.get("op", {}).get("S")) in removed:
            record["userIdentity"] = dict(TTL_IDENTITY)
        return made

    source.to_record = to_record
    return removed


@dataclass(repr=False)
class Topology:
    """The deployment seen as regions, plus what the harness needs between examples."""

    deployment: LocalDeployment
    regions: list[Region]
    #: Every line each region's replicator printed (filled by the deployment's log sink), for failure reports.
    logs: dict[str, list[str]] = field(default_factory=dict, repr=False)
    example: int = 0
    #: The parallelization factor of a program that names none (tests/chaos/conftest.py parametrizes it).
    factor: int = 1
    invocation_budget: int = 4000
    quiesce_timeout_s: float = 120.0

    #: Per region, the (key, op) of the items its "TTL process" removed: their REMOVE records are delivered
    #: with the TTL service as user identity (see ``install_ttl_identity``).
    ttl_removed: dict[str, set[tuple[str, str]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for region in self.regions:
            self.ttl_removed[region.name] = install_ttl_identity(region.mapping, set())

    def __repr__(self) -> str:
        return f"Topology({', '.join(r.name for r in self.regions)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints dataclass arguments field by field (the logs!) unless told otherwise.
        printer.text(repr(self))

    def mappings(self) -> list[StreamEventSourceMapping]:
        return [r.mapping for r in self.regions]

    @contextlib.contextmanager
    def environment(self, variables: dict[str, str], regions: Iterable[int] | None = None) -> Iterator[None]:
        """Run the replicators of ``regions`` (default: all) with ``variables`` added to their environment
        inside the block. Containers are restarted on the way in and out: the environment is read at start."""
        chosen = [self.regions[i] for i in regions] if regions is not None else self.regions
        previous = {r.name: {k: r.function.environment.get(k) for k in variables} for r in chosen}
        for region in chosen:
            region.function.environment.update(variables)
            region.function.stop()
        try:
            yield
        finally:
            for region in chosen:
                for key, value in previous[region.name].items():
                    if value is None:
                        region.function.environment.pop(key, None)
                    else:
                        region.function.environment[key] = value
                region.function.stop()

    def mutant(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Run every replicator with mutant ``name`` (see chaos_shim.MUTANTS) inside the block; the shim
        applies it in the container's init phase."""
        return self.environment({"CHAOS_MUTANT": name})

    def reset_faults(self) -> None:
        """Disarm what an earlier example may have left armed, so examples do not leak into each other."""
        for region in self.regions:
            region.function.faults.clear()
            region.mapping.resume()
            region.mapping.delay_invocations(0.0, 0)
            # There is no public way to cancel requested duplicates that never fired (no batch followed).
            if getattr(region.mapping, "_duplicate_next", 0):
                region.mapping._duplicate_next = 0  # noqa: SLF001

    def quiesce(self) -> int:
        """Resume every mapping and step all of them until none has anything left (rule 1's "once every
        stream record has been processed"). Returns the invocations it took.

        Raises ChaosFailure when replication keeps going (an echo loop never quiesces) or a mapping is stuck.
        """
        for region in self.regions:
            region.mapping.resume()
        started = time.monotonic()
        before = sum(m.stats.invocations for m in self.mappings())
        while True:
            moved = 0
            for mapping in self.mappings():
                count = mapping.stats.invocations
                remaining = self.quiesce_timeout_s - (time.monotonic() - started)
                try:
                    mapping.run_until_idle(timeout_s=max(1.0, remaining))
                except TimeoutError as exc:
                    raise ChaosFailure(f"replication did not quiesce within {self.quiesce_timeout_s:.0f} s: {exc}")
                moved += mapping.stats.invocations - count
            total = sum(m.stats.invocations for m in self.mappings()) - before
            if moved == 0:
                return total
            if total > self.invocation_budget or time.monotonic() - started > self.quiesce_timeout_s:
                raise ChaosFailure(
                    f"replication did not quiesce: {total} invocations since the program ended (an echo loop "
                    f"sends writes back and forth): " + "; ".join(f"{r.name}: {r.mapping.stats}" for r in self.regions)
                )


@dataclass
class Run:
    """One example in progress on a topology: the model, the write-log positions, the queue sizes."""

    topology: Topology
    program: Program
    prefix: str
    model: Model = field(default_factory=Model)
    time: int = 0
    log_offsets: dict[str, int] = field(default_factory=dict)
    queue_sizes: dict[str, int] = field(default_factory=dict)
    discarded: dict[str, int] = field(default_factory=dict)
    log_starts: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0
    invocations_at_start: int = 0

    @classmethod
    def start(cls, topology: Topology, program: Program) -> "Run":
        topology.example += 1
        topology.reset_faults()
        factor = program.factor or topology.factor
        for region in topology.regions:
            # As UpdateEventSourceMapping would set it; the topology is quiescent between examples, so the
            # mapping deals the next records to the new number of lanes at once.
            region.mapping.settings = dataclasses.replace(region.mapping.settings, parallelization_factor=factor)
        STATS.factors[factor] = STATS.factors.get(factor, 0) + 1
        run = cls(topology, program, prefix=f"x{topology.example:04d}-{int(time.time() * 1000) % 10**8}-")
        for region in topology.regions:
            run.log_offsets[region.name] = region.write_log.stat().st_size if region.write_log.exists() else 0
            run.discarded[region.name] = region.mapping.stats.records_discarded
            run.log_starts[region.name] = len(topology.logs.setdefault(region.name, []))
        run.queue_sizes = {d.name: len(d.failure_records()) for d in _failure_destinations(topology)}
        run.started_at = time.monotonic()
        run.invocations_at_start = sum(m.stats.invocations for m in topology.mappings())
        return run

    def _account(self) -> None:
        """Add this example to the session's STATS."""
        STATS.examples += 1
        STATS.operations += len(self.program.ops)
        for op in self.program.ops:
            if isinstance(op, Write):
                STATS.writes += 1
            elif isinstance(op, Burst):
                STATS.writes += len(op.regions)
                STATS.bursts += 1
            elif isinstance(op, Deliver):
                STATS.deliveries += 1
            elif isinstance(op, Restore):
                STATS.restores += 1
            else:
                STATS.faults[op.kind] = STATS.faults.get(op.kind, 0) + 1
        STATS.invocations += sum(m.stats.invocations for m in self.topology.mappings()) - self.invocations_at_start
        for key in self.model.keys():
            winner = self.model.winner(key)
            if winner is None:
                continue
            STATS.keys += 1
            STATS.deleted_winners += winner.deleted
            STATS.tied_winners += any(
                s.key == key and s.version == winner.version and s.deleted == winner.deleted
                and s.region != winner.region for s in self.model.states
            )
        STATS.seconds += time.monotonic() - self.started_at

    # --- executing --------------------------------------------------------------------------------------

    def execute(self) -> None:
        """Run the program, then drive replication to quiescence."""
        for seq, op in enumerate(self.program.ops):
            if isinstance(op, Write):
                self._write(seq, op)
            elif isinstance(op, Burst):
                self.time += 1
                for region in op.regions:
                    kind = "update" if op.payload % 2 else "put"
                    self._write(seq, Write(region, kind, op.key, 0, op.payload))
            elif isinstance(op, Restore):
                self._restore(seq, op)
            elif isinstance(op, Deliver):
                mapping = self.topology.regions[op.region].mapping
                for _ in range(op.steps):
                    mapping.step()
            else:
                self._fault(op)
        self.topology.quiesce()

    def _key(self, index: int) -> str:
        return f"{self.prefix}{index}"

    def _clock(self, region: int) -> dict[str, str]:
        return {"N": str(CLOCK_BASE + self.time + self.program.skews[region])}

    def _write(self, seq: int, op: Write) -> None:
        """One application write, recorded in the model with the state DynamoDB says it produced."""
        region = self.topology.regions[op.region]
        self.time += op.tick
        key = {KEY: {"S": self._key(op.key)}}
        table = region.table.name
        # A unique marker of this write, so every application write produces a distinct state (and the echo
        # check can tell which write a replicated state came from).
        stamp = {"S": f"{region.name}#{seq}"}
        if op.kind == "put":
            item = {**key, CONFLICT: self._clock(op.region), "op": stamp}
            for i, name in enumerate(PAYLOAD_ATTRIBUTES):
                if op.payload >> i & 1:
                    item[name] = PAYLOADS[(op.payload + i) % len(PAYLOADS)]
            region.client.put_item(TableName=table, Item=item)
            self.model.record_write(region.name, seq, item)
        elif op.kind == "update":
            name = PAYLOAD_ATTRIBUTES[op.payload % len(PAYLOAD_ATTRIBUTES)]
            values = {":t": self._clock(op.region), ":o": stamp}
            if op.payload % 4 == 3:
                expression = "SET #c = :t, #o = :o REMOVE #a"
            else:
                expression = "SET #c = :t, #o = :o, #a = :v"
                values[":v"] = PAYLOADS[op.payload % len(PAYLOADS)]
            # An upsert, as applications write: on an absent item or a tombstone it creates a live item.
            after = region.client.update_item(
                TableName=table,
                Key=key,
                UpdateExpression=expression,
                ExpressionAttributeNames={"#c": CONFLICT, "#o": "op", "#a": name},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )["Attributes"]
            self.model.record_write(region.name, seq, after)
        else:
            # The application treats a tombstone as "no item" (as the CLI's verify does) and so never deletes
            # one: deleting a tombstone by hand is an operator's act the replicator deliberately ignores.
            # DynamoDB's TTL process does remove expired tombstones, but only after every record that could
            # still conflict with them is gone (their lifetime exceeds stream retention), never in a program.
            try:
                removed = region.client.delete_item(
                    TableName=table,
                    Key=key,
                    ConditionExpression="attribute_exists(#k) AND attribute_not_exists(#d)",
                    ExpressionAttributeNames={"#k": KEY, "#d": DELETED},
                    ReturnValues="ALL_OLD",
                )["Attributes"]
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                return
            if op.kind == "expire":
                # The item's TTL had passed in this region: the delete is DynamoDB's, a delete of the
                # version it removed like any other (rule 5; TTL deletes are replicated as versioned deletes).
                self.topology.ttl_removed[region.name].add((removed[KEY]["S"], removed["op"]["S"]))
            self.model.record_delete(region.name, seq, removed)

    def _restore(self, seq: int, op: Restore) -> None:
        """Write a backup of ``op.src``'s copy into ``op.dst``, as a restore does (a PutItem of the whole
        item). A copy that is some region's state, stamped with that origin, brings that very state back: the
        oracle gains nothing (the state is already among the candidates), and ``op.dst``'s replicator may send
        it on. Any other copy (an unreplicated local write, or no metadata) is a write of ``op.dst``."""
        src, dst = self.topology.regions[op.src], self.topology.regions[op.dst]
        key = {KEY: {"S": self._key(op.key)}}
        backup = src.client.get_item(TableName=src.table.name, Key=key, ConsistentRead=True).get("Item")
        if backup is None:
            return
        marker = backup.get(MARKER, {}).get("S", "")
        parts = marker.split(".")
        if len(parts) >= 4 and parts[3].isdigit():  # <digest>.<seq>.<token>.<stamped>[.<written>[.<expires>]]
            aged = str(int(parts[3]) - BACKUP_AGE_S)
            backup = {**backup, MARKER: {"S": ".".join([*parts[:3], aged, *parts[4:]])}}
        state = (backup[KEY]["S"], canon_item(backup), DELETED in backup, backup.get(ORIGIN, {}).get("S"))
        dst.client.put_item(TableName=dst.table.name, Item=backup)
        if state in self.model.all_states():
            self.model.restored.setdefault(dst.name, set()).add(state)
            STATS.restored_states += 1
        else:
            # Not a stamped state (a local write of src, or an application's write onto a tombstone whose
            # leftover delete flag the replicator has not removed yet): an ordinary write of dst.
            self.model.record_write(dst.name, seq, backup)

    def _fault(self, op: Fault) -> None:
        """Arm one fault through the runtime's public hooks."""
        region = self.topology.regions[op.region]
        mapping, faults = region.mapping, region.function.faults
        if op.kind == "duplicate":
            mapping.duplicate_next_batches(op.arg)
        elif op.kind == "replay_last":
            try:
                mapping.replay_last_batch()
            except RuntimeError:
                pass  # nothing delivered yet: there is no checkpoint to lose
        elif op.kind == "replay_all":
            mapping.replay_from_trim_horizon()
        elif op.kind == "crash":
            faults.crash_after_writes(op.arg)
        elif op.kind == "throttle":
            faults.throttle_writes(None, calls=op.arg)
        elif op.kind == "pause":
            mapping.pause()
        elif op.kind == "resume":
            mapping.resume()
        else:
            raise ValueError(f"unknown fault {op.kind!r}")

    # --- checking -----------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every item of this example in every region (strongly consistent scans), by key."""
        held: dict[str, dict[str, dict[str, Any]]] = {}
        for region in self.topology.regions:
            items: dict[str, dict[str, Any]] = {}
            kwargs: dict[str, Any] = {
                "TableName": region.table.name,
                "ConsistentRead": True,
                "FilterExpression": "begins_with(#k, :p)",
                "ExpressionAttributeNames": {"#k": KEY},
                "ExpressionAttributeValues": {":p": {"S": self.prefix}},
            }
            while True:
                page = region.client.scan(**kwargs)
                for item in page.get("Items", []):
                    items[item[KEY]["S"]] = item
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            held[region.name] = items
        return held

    def check(self) -> None:
        """Rules 1, 4 and 5 against the model, rule 3 against the write logs, rule 6's failure destinations
        (buckets by default, queues where chosen) stay empty."""
        self._account()
        problems: list[str] = []
        held = self.snapshot()
        problems += self._check_convergence(held)
        problems += self._check_echoes()
        lost: list[str] = []
        for destination in _failure_destinations(self.topology):
            records = destination.failure_records()
            if len(records) != self.queue_sizes.get(destination.name, 0):
                new = records[self.queue_sizes.get(destination.name, 0):]
                lost.append(f"failure destination {destination.name} received {new}")
        for region in self.topology.regions:
            discarded = region.mapping.stats.records_discarded - self.discarded[region.name]
            if discarded:
                lost.append(f"{region.name}'s mapping discarded {discarded} records ({region.mapping.stats})")
        if lost:
            time.sleep(0.3)  # the replicators' last log lines travel through a pipe reader thread
            problems += lost
        if problems:
            shown = problems[:20] + ([f"... {len(problems) - 20} more"] if len(problems) > 20 else [])
            raise ChaosFailure("\n".join(shown + self._replicator_errors()))

    def _replicator_errors(self) -> list[str]:
        """The replicators' own ERROR and WARNING lines of this example (failures, local writes that lost and
        were put back), deduplicated."""
        seen: dict[str, int] = {}
        for region in self.topology.regions:
            for line in self.topology.logs.get(region.name, [])[self.log_starts[region.name]:]:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("level") in ("ERROR", "WARNING"):
                    text = (f"{region.name} replicator: {entry.get('message')} [{entry.get('errorCode')}] "
                            f"key={entry.get('key')} target={entry.get('targetTable')}: {entry.get('error')} "
                            f"winner={entry.get('winner')} lost={entry.get('lost')}")
                    seen[text] = seen.get(text, 0) + 1
        return [f"{text} (x{count})" for text, count in list(seen.items())[:10]]

    def _check_convergence(self, held: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
        problems = []
        keys = self.model.keys() | {k for items in held.values() for k in items}
        for key in sorted(keys):
            winner = self.model.winner(key)
            expected = None if winner is None else (winner.user, winner.deleted)
            for region, items in held.items():
                item = items.get(key)
                got = None if item is None else (canon_item(item), DELETED in item)
                if got != expected:
                    problems.append(
                        f"{key} in {region}: holds {_show(item)}, expected {_expected(winner)}; "
                        f"writes: {[s.describe() for s in self.model.states if s.key == key]}"
                    )
        return problems

    def _check_echoes(self) -> list[str]:
        """Rule 3, from what each replicator actually sent (independent of its own echo detection):

        * to another region it may only send a state its own region's application wrote (origin = its
          region); a replicated state sent on is an echo;
        * to its own table it may only write a state some application wrote (it never invents content).
        """
        problems = []
        local_states = {r.name: self.model.states_from(r.name) for r in self.topology.regions}
        every_state = self.model.all_states()
        own_writes: list[tuple[str, dict[str, Any]]] = []
        for region in self.topology.regions:
            for line in _read_from(region.write_log, self.log_offsets[region.name]):
                for operation, table_region, item in _written_items(line):
                    key = item.get(KEY, {}).get("S", "")
                    if not key.startswith(self.prefix):
                        continue
                    if operation != "PutItem":
                        problems.append(f"{region.name}'s replicator sent {operation} for {key} to {table_region}")
                        continue
                    state = (key, canon_item(item), DELETED in item)
                    origin = item.get(ORIGIN, {}).get("S")
                    if table_region == region.name:
                        own_writes.append((region.name, item))
                    elif (state + (origin,)) in self.model.restored.get(region.name, set()):
                        pass  # a restored backup of that state, sent as it is (it decides nothing new)
                    elif origin != region.name or state not in local_states[region.name]:
                        problems.append(
                            f"echo: {region.name}'s replicator sent {_show(item)} to {table_region}, a state "
                            f"that {region.name}'s application did not write"
                        )
        for region_name, item in own_writes:
            full = (item[KEY]["S"], canon_item(item), DELETED in item, item.get(ORIGIN, {}).get("S"))
            if full not in every_state:
                problems.append(f"{region_name}'s replicator wrote {_show(item)} to its own table, a state no "
                                f"application wrote")
        return problems


def _read_from(path: Path, offset: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open("rb") as f:
        f.seek(offset)
        return [json.loads(line) for line in f.read().decode("utf-8").splitlines() if line.strip()]


def _written_items(line: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(operation, target region, item or key) of every item one logged write call touched."""
    params, operation, target = line["params"], line["operation"], line["target_region"]
    if operation == "PutItem":
        return [(operation, target, params["Item"])]
    if operation == "BatchWriteItem":
        out = []
        for requests in params.get("RequestItems", {}).values():
            for request in requests:
                if "PutRequest" in request:
                    out.append(("PutItem", target, request["PutRequest"]["Item"]))
                else:
                    out.append(("DeleteItem", target, request["DeleteRequest"]["Key"]))
        return out
    return [(operation, target, params.get("Key") or params.get("Item") or {})]


def _show(item: dict[str, Any] | None) -> str:
    if item is None:
        return "nothing"
    user = user_attributes(item)
    kind = "tombstone" if DELETED in item else "item"
    return f"{kind}(op={user.get('op', {}).get('S')}, {CONFLICT}={user.get(CONFLICT, {}).get('N')}, origin={item.get(ORIGIN, {}).get('S')})"


def _expected(winner: ItemState | None) -> str:
    return "nothing" if winner is None else winner.describe()


def _failure_destinations(topology: Topology) -> list[Any]:
    """Every on-failure destination of the deployment: its buckets and its queues (both have
    ``failure_records()``)."""
    return [*topology.deployment.buckets, *topology.deployment.queues]
