"""The two sides' connections from the connection options every command shares."""

from __future__ import annotations

import argparse
from typing import Any

from cdk_replication.cli.tables import Connection


def connections(args: argparse.Namespace) -> tuple[Connection, Connection]:
    """The source and target connections from ``--profile``/``--source-profile``/``--target-profile``.

    ``--region``, ``--endpoint-url`` and ``--max-retries`` apply to both sides; a side's own profile
    (``--source-profile``, ``--target-profile``) overrides ``--profile``.
    """
    shared: dict[str, Any] = {"region": args.region, "endpoint_url": args.endpoint_url, "max_attempts": args.max_retries}
    source = Connection(profile=args.source_profile or args.profile, **shared)
    target = Connection(profile=args.target_profile or args.profile, **shared)
    return source, target
