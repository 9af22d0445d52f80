"""Opening a topology on the command line and checking, from the published parameters, which steps of a join
or a removal are done (docs/cli.md, "join"; README, "Adding or removing a region, step by step")."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from cdk_replication._lambda.replicator import contract
from cdk_replication.cli.conditions import LastWriterWins
from cdk_replication.cli.connections import connections
from cdk_replication.cli.errors import ACCESS_ERROR_CODES, BadInput, error_code, error_message
from cdk_replication.cli.tables import (
    PLACEHOLDER_ACCOUNT,
    Connection,
    TableHandle,
    TableInfo,
    TableRef,
    check_distinct,
    check_same_key,
    describe_table,
)
from cdk_replication.cli.topology.published import (
    MULTI_ACTIVE,
    ONE_WAY,
    REPLICATOR_PARAMETER,
    STATUS_PARAMETER,
    PublishedReplicator,
    identity_of,
    location_id,
    read_replicator,
    read_status,
)

DEPLOY_JOINING = "add the location to the app with status=LocationStatus.JOINING and deploy every stack"


@dataclass
class Topology:
    """The tables a topology command was given: the writers (or the others) and the one it is about.

    Attributes:
        others: the writer tables (one-way: the source; multi-active: every other region), in the given order.
        table: the table joining (``join``), leaving (``leave``).
        others_conn: how to reach ``others`` (``--source-profile``/``--profile``).
        table_conn: how to reach ``table`` (``--target-profile``/``--profile``).
    """

    others: list[TableHandle]
    table: TableHandle
    others_conn: Connection
    table_conn: Connection


@dataclass(frozen=True)
class Plan:
    """What the published replicator parameters say about the topology.

    Attributes:
        mode: ``ONE_WAY`` or ``MULTI_ACTIVE``.
        metadata_prefix: the replicators' metadata prefix.
        conflict: multi-active: the conflict attribute and strategy; ``None`` one-way.
        published: each writer's parameter, in the order of :attr:`Topology.others`.
        ttl_attribute: multi-active: the tombstones' TTL attribute (:func:`tombstone_ttl_attribute`), set once
            resolved; ``None`` before (and one-way).
    """

    mode: str
    metadata_prefix: str
    conflict: LastWriterWins | None
    published: list[PublishedReplicator]
    ttl_attribute: str | None = None


def open_topology(args: argparse.Namespace, pool: int, role: str) -> Topology:
    """Describe ``args.tables`` (every other table first, the one the command is about last) and check they can
    be copied between (same key schema, no table twice); ``role`` (``new``, ``leaving``) names the last one."""
    if len(args.tables) < 2:
        raise BadInput(f"{args.command} needs the writer tables, then the {role} table (e.g. us-west-2:orders "
                       f"eu-west-1:orders): got {len(args.tables)} table")
    others_conn, table_conn = connections(args)
    others = [describe_table(others_conn, TableRef.parse(t, "writer"), "writer", pool=pool) for t in args.tables[:-1]]
    table = describe_table(table_conn, TableRef.parse(args.tables[-1], role), role, pool=pool)
    seen: set[tuple[str, str]] = set()
    for other in others:
        check_distinct(other.info, table.info, others_conn.profile == table_conn.profile)
        check_same_key(other.info, table.info)
        if identity_of(other.info) in seen or _same_table(other.info, table.info, others_conn, table_conn):
            raise BadInput(f"table {other.info.label()} is named twice: name each table once")
        seen.add(identity_of(other.info))  # the writers are all read with one profile
    return Topology(others, table, others_conn, table_conn)


def _same_table(a: TableInfo, b: TableInfo, a_conn: Connection, b_conn: Connection) -> bool:
    """Whether ``a`` and ``b`` are one table: the same region and name in the same account. The same region and
    name in another account is another table (the usual disaster-recovery copy); the account is the ARN's
    where the endpoint reports real ones, else (DynamoDB Local's placeholder) told apart by the profile."""
    if identity_of(a) != identity_of(b):
        return False
    accounts = {a.arn.split(":")[4], b.arn.split(":")[4]}
    if PLACEHOLDER_ACCOUNT not in accounts:
        return len(accounts) == 1
    return a_conn.profile == b_conn.profile


def published_plan(topology: Topology) -> Plan:
    """Read every writer's ``replicator`` parameter; refuse tables that are not writers of one topology."""
    published: list[PublishedReplicator] = []
    for writer in topology.others:
        found = read_replicator(topology.others_conn, writer.info)
        if found is None:
            name = REPLICATOR_PARAMETER.format(table=identity_of(writer.info)[1])
            raise BadInput(
                f"{writer.info.label()} publishes no replicator parameter ({name} in {writer.info.region}): name "
                "only the writers of a deployed ReplicatedTable (one-way: its source; multi-active: every region), "
                "deployed with this cdk-replication version"
            )
        published.append(found)
    modes = {p.mode for p in published}
    if len(modes) != 1 or not modes <= {ONE_WAY, MULTI_ACTIVE}:
        raise BadInput(f"the writers' replicators are of different or unknown modes ({sorted(modes)}): "
                       "name the writers of one ReplicatedTable")
    first = published[0]
    mode = modes.pop()
    if mode == ONE_WAY and len(published) > 1:
        raise BadInput("a one-way table has one writer, its source: name the source, then the new replica")
    conflict = None
    if mode == MULTI_ACTIVE:
        if not first.conflict_attribute:
            raise BadInput(f"{first.parameter} names no conflictAttribute: redeploy with this cdk-replication")
        conflict = LastWriterWins(first.conflict_attribute, first.conflict_strategy or "TIMESTAMP")
    return Plan(mode, first.metadata_prefix, conflict, published)


def require_status(topology: Topology, wanted: str, step: str) -> str:
    """The table's published status, refused unless it is ``wanted`` (``step``: how to get there)."""
    table = topology.table.info
    status = read_status(topology.table_conn, table)
    if status == wanted:
        return status
    name = STATUS_PARAMETER.format(table=identity_of(table)[1])
    found = "is not published" if status is None else f"is {status}"
    raise BadInput(f"{table.label()}'s status ({name} in {table.region}) {found}, not {wanted}: {step} first")


def require_senders(topology: Topology, plan: Plan) -> PublishedReplicator | None:
    """Refuse unless every writer's deployed replicator sends to the new table (listed, its mapping enabled)
    and, multi-active, every writer of the topology is named and the new region's own replicator sends to every
    one of them: a copy made before a writer sends to the new table loses the changes made in that writer
    between the copy's scan and the moment it starts sending. Returns the new region's own published
    replicator (multi-active; ``None`` one-way)."""
    new = topology.table.info
    late = [(w.info.label(), _not_sending(p)) for w, p in zip(topology.others, plan.published) if not p.sends_to(new)]
    if late:
        raise BadInput(
            f"the replicator of {', '.join(w for w, _ in late)} does not send to {new.label()} yet "
            f"({'; '.join(why for _, why in late)}): {DEPLOY_JOINING}, and wait until the deployment has finished. "
            "Copying before then would lose the changes made in between"
        )
    if plan.mode != MULTI_ACTIVE:
        return None
    own = own_replicator(topology)
    require_every_region(topology, plan, own)
    missing = [location_id(w.info) for w in topology.others if own is None or not own.sends_to(w.info)]
    if missing:
        why = ("publishes no replicator parameter" if own is None
               else f"does not send to {', '.join(missing)} ({_not_sending(own)})")
        # The status parameter is not ordered after the replicator: once ACTIVE, the application's writes in
        # the new region would never reach a region its replicator does not send to.
        raise BadInput(f"the new region's replicator, {new.label()}, {why}: deploy its stack with every region "
                       "in the app first (the application's writes there would never reach them)")
    return own


def _not_sending(published: PublishedReplicator) -> str:
    """Why a writer's replicator does not send to a table, from its published parameter."""
    if not published.enabled:
        return f"its event source mapping is deployed disabled: `enabled` is false in {published.parameter}"
    return f"{published.parameter} does not list it"


def own_replicator(topology: Topology) -> PublishedReplicator | None:
    """The published ``replicator`` parameter of the table the command is about (a multi-active region is a
    writer too), read with its own connection; ``None`` when it has none."""
    return read_replicator(topology.table_conn, topology.table.info)


def require_every_region(topology: Topology, plan: Plan, own: PublishedReplicator | None) -> None:
    """Multi-active: refuse unless every table a named writer (or the table itself, ``own``) sends to is named:
    a write made in the unnamed region may not have reached the others yet (``join`` would miss it, ``leave``
    would call a region drained whose writes have not reached it)."""
    named = {identity_of(w.info) for w in topology.others} | {identity_of(topology.table.info)}
    for published in [*plan.published, *([own] if own else [])]:
        unnamed = sorted(set(published.targets) - named)
        if unnamed:
            regions = ", ".join(f"{region}:{name}" for region, name in unnamed)
            raise BadInput(
                f"{regions} is a writer region of this table too ({published.parameter} in {published.region} "
                "sends to it): name every existing region, since a write made there may not have reached the "
                "others yet"
            )


def tombstone_ttl_attribute(topology: Topology, plan: Plan, own: PublishedReplicator | None) -> str:
    """The attribute the replicators write their tombstones' expiry to, which reading a tombstone needs (with
    another, a tombstone no longer matches its marker and reads as a live item): the published ``ttlAttribute``;
    from a document without it, every table's TTL setting (DescribeTimeToLive), refused when denied rather
    than taken for the default (exit 2, the permission named).

    Raises:
        BadInput: denied, or the tables disagree (the construct gives every region the same).
    """
    published = [*plan.published, *([own] if own else [])]
    names = {p.ttl_attribute for p in published}
    if None in names:
        default = contract.default_ttl_attribute(plan.metadata_prefix)
        names = {_ttl_setting(handle, default) for handle in [*topology.others, topology.table]}
    if len(names) != 1:
        raise BadInput(f"the tables' tombstone TTL attributes differ ({sorted(map(str, names))}): deploy every "
                       "region with the same replica_table_options.time_to_live_attribute")
    return str(names.pop())


def _ttl_setting(handle: TableHandle, default: str) -> str:
    """``handle``'s TTL attribute when its TTL is on, else ``default`` (the replicator's)."""
    from botocore.exceptions import ClientError

    try:
        answer = handle.client.describe_time_to_live(TableName=handle.name)
    except ClientError as exc:
        if error_code(exc) in ACCESS_ERROR_CODES:
            raise BadInput(
                f"access denied: DescribeTimeToLive on {handle.info.label()} ({error_code(exc)}: "
                f"{error_message(exc)}): its published replicator parameter names no ttlAttribute (deployed "
                "before it was published), so the tombstones' TTL attribute must be read from the tables; grant "
                "dynamodb:DescribeTimeToLive on every table, or deploy with this cdk-replication"
            ) from None
        raise
    ttl = answer.get("TimeToLiveDescription", {})
    on = ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName")
    return str(ttl["AttributeName"]) if on else default
