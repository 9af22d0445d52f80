"""A ReplicatedTable whose locations come from the context, for the end-to-end tests of joining and leaving
(tests/e2e/test_e2e_join.py): one app, synthesized once per step of a topology change.

Context:
    tableName: the table's name in every region (and the construct's id). Default ``JoinOrders``.
    mode: ``ONE_WAY`` (default) or ``MULTI_ACTIVE``.
    locations: comma-separated ``REGION[:STATUS]``, the source (or first writer) first; STATUS is a
        ``LocationStatus`` name, default ``ACTIVE``. Default ``us-west-2,eu-west-1``.
    batchSize: the replicator's maximum batch. Default 25 (small, so that a workload spans several batches).
"""

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import ReplicatedTable, ReplicationMode, ReplicatorOptions, TableLocation

#: Every location in one account: the topology change, not the account boundary, is under test here.
ACCOUNT = "444444444444"


def _location(spec: str, table_name: str | None = None) -> TableLocation:
    """``REGION[:STATUS]`` as a location (the status only when given, so the app also synthesizes with a
    cdk-replication that has no ``LocationStatus``)."""
    region, _, status = spec.partition(":")
    options: dict[str, object] = {"region": region, "account": ACCOUNT}
    if table_name:
        options["table_name"] = table_name
    if status:
        from cdk_replication import LocationStatus

        options["status"] = LocationStatus[status]
    return TableLocation(**options)  # type: ignore[arg-type]


def build(app: cdk.App) -> None:
    """Add this app's stacks to ``app``."""
    name = app.node.try_get_context("tableName") or "JoinOrders"
    mode = ReplicationMode[app.node.try_get_context("mode") or "ONE_WAY"]
    first, *rest = (app.node.try_get_context("locations") or "us-west-2,eu-west-1").split(",")
    ReplicatedTable(
        app,
        name,
        source=_location(first, table_name=name),
        replicas=[_location(spec) for spec in rest],
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        mode=mode,
        replicator=ReplicatorOptions(batch_size=int(app.node.try_get_context("batchSize") or 25)),
    )


def synth_all(jobs: dict[str, dict[str, str]]) -> None:
    """Synthesize one assembly per ``{out dir: context}`` in this process (jsii and aws-cdk-lib load once)."""
    for out_dir, context in jobs.items():
        app = cdk.App(outdir=out_dir, context=context)
        build(app)
        app.synth()


if __name__ == "__main__":
    import json
    import sys

    if len(sys.argv) > 1:  # a JSON {out dir: context} of every assembly wanted
        synth_all(json.loads(sys.argv[1]))
    else:
        cdk_app = cdk.App()
        build(cdk_app)
        cdk_app.synth()
