"""``migrate``: create a new replica from a native export to S3 and an import, then start replication.

Steps, each recorded in the state file when finished so a re-run continues where the last one stopped:

``stream``  the source stream on (NEW_AND_OLD_IMAGES) - before the copy, so every later change is kept;
            with ``--change-source KINESIS`` instead: the source streams to its Kinesis data stream (ACTIVE;
            ENABLING is waited for), and that stream's retention is recorded;
``pitr``    point-in-time recovery on the source (an export needs it);
``export``  ExportTableToPointInTime to ``s3://bucket/prefix`` (the bucket may belong to another account);
``import``  ImportTable of the export's data files into the new target table (key schema, GSIs, billing
            and provisioned capacity of the source);
``ttl``     the source's time-to-live setting on the target;
``target-stream`` (``--target-stream``) a NEW_AND_OLD_IMAGES stream on the target (multi-active);
``mapping`` (``--event-source-mapping-uuid``) enable the replicator's disabled event source mapping, which
            then applies the stream from TRIM_HORIZON over the imported copy.

Export and import requests carry a client token kept in the state file, so a crash between a request and
the state write cannot start a second export or import.

The change source decides how long the changes made after the export's start stay readable, and so the
deadline for enabling the mapping: 24 hours for a DynamoDB stream, the data stream's retention for Kinesis
(read with DescribeStreamSummary; 24 hours, Kinesis' minimum, when it cannot be read). The change source,
the data stream's ARN and its retention are kept in the state file, so ``--after-import`` uses the same.

Two modes drive the ``ReplicatedTable`` construct's import path instead, where CloudFormation creates the
replica from the export (``MigrationOptions(export_arn=...)``):

``--export-only``  ``stream``, ``pitr`` and ``export`` only, into the construct's migration bucket by default;
                   prints the export ARN and the next steps. TARGET must not exist (the stack creates it).
``--after-import`` TARGET exists (the stack created it): check it, then only the ``mapping`` step.

The package, in the order a run uses it: ``parser`` (the arguments), ``command`` (:func:`cmd_migrate`),
``checks`` (refusals before anything changes), ``choices`` (change source and bucket), ``kinesis`` (the
Kinesis change source), ``steps`` (the steps above), ``report`` (text or ``--json``); ``context`` holds what
they share.
"""

from cdk_replication.cli.migrate.command import cmd_migrate
from cdk_replication.cli.migrate.parser import add_migrate_parser

__all__ = ["add_migrate_parser", "cmd_migrate"]
