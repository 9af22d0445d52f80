"""cdk-replication: AWS CDK constructs that keep Amazon DynamoDB tables replicated across regions and
accounts.

The construct classes import ``aws_cdk``; they are loaded on first use so that the AWS-free parts of the
package (``cdk_replication.local``, ``cdk_replication.cli``) can be imported without it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .alarms import ReplicationAlarms
    from .failure_destination import FailureDestination, FailureDestinationKind
    from .change_stream import KinesisOptions
    from .errors import ReplicationConfigError
    from .model import (
        ChangeSource,
        ConflictStrategy,
        CrossAccountAccess,
        ExistingSource,
        KeySchema,
        LocationStatus,
        MigrationOptions,
        ReplicationMode,
        ReplicationTarget,
        ResolvedTable,
        TableLocation,
    )
    from .migration import ExportImportSource, MigrationBucket
    from .replicated_table import ReplicatedTable
    from .replicator import Replicator, ReplicatorOptions
    from .tables import ReplicaTable, TableOptions
    from .transform import Filter, Mask, ReplicaTransform

_EXPORTS = {
    "FailureDestination": "failure_destination",
    "FailureDestinationKind": "failure_destination",
    "ReplicationAlarms": "alarms",
    "ReplicationConfigError": "errors",
    "KinesisOptions": "change_stream",
    "ChangeSource": "model",
    "ConflictStrategy": "model",
    "CrossAccountAccess": "model",
    "ExistingSource": "model",
    "KeySchema": "model",
    "LocationStatus": "model",
    "ReplicationMode": "model",
    "ResolvedTable": "model",
    "TableLocation": "model",
    "ExportImportSource": "migration",
    "MigrationBucket": "migration",
    "MigrationOptions": "model",
    "ReplicatedTable": "replicated_table",
    "ReplicationTarget": "model",
    "Replicator": "replicator",
    "ReplicatorOptions": "replicator",
    "ReplicaTable": "tables",
    "TableOptions": "tables",
    "Filter": "transform",
    "Mask": "transform",
    "ReplicaTransform": "transform",
}

__all__ = sorted(_EXPORTS)

try:
    #: The installed distribution's version (written once, in pyproject.toml); ``unknown`` when the package is
    #: imported from a checkout that was never installed.
    __version__: str = version("cdk-replication")
except PackageNotFoundError:  # pragma: no cover - a checkout on sys.path without `pip install`
    __version__ = "unknown"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cdk_replication' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
