"""One snapshot per stack shape. Asset hashes are masked, so editing lambda_src/ does not break them.

Update after an intended change with:  UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/constructs -k snapshot
and review the diff of tests/constructs/snapshots/ like any other code change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from construct_helpers import OTHER_ACCOUNT, Synthesized, mask_asset_hashes

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"

CASES = [
    ("one_way", "Employee-us-west-2", "source-stack"),
    ("one_way", "Employee-us-east-1", "replica-stack"),
    ("imported", "Orders-us-west-2", "imported-source-stack"),
    ("cross_account", f"Employee-{OTHER_ACCOUNT}-eu-west-1", "cross-account-replica-stack"),
    ("multi_active", "Profiles-us-east-1", "multi-active-writer-stack"),
    ("migration_prepare", f"Orders-{OTHER_ACCOUNT}-eu-west-1", "migration-bucket-stack"),
    ("migration_import", f"Orders-{OTHER_ACCOUNT}-eu-west-1", "migration-import-stack"),
    ("migration_import", "Orders-us-west-2", "migration-source-stack"),
    ("kinesis_source", "Events-us-west-2", "kinesis-source-stack"),
]


@pytest.mark.parametrize(("shape", "stack_name", "snapshot"), CASES, ids=[c[2] for c in CASES])
def test_snapshot(shape: str, stack_name: str, snapshot: str, request: pytest.FixtureRequest) -> None:
    synthesized: Synthesized = request.getfixturevalue(shape)
    actual = mask_asset_hashes(synthesized.template_json(stack_name))
    path = SNAPSHOTS / f"{snapshot}.json"
    rendered = json.dumps(actual, indent=1, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}; create it with UPDATE_SNAPSHOTS=1"
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert actual == expected, f"{stack_name} differs from {path.name}; if intended, rerun with UPDATE_SNAPSHOTS=1"


def test_masking_removes_asset_hashes_only() -> None:
    digest = "0123456789abcdef" * 4
    masked = mask_asset_hashes({"S3Key": f"{digest}.zip", "List": [f"x{digest}"], "Keep": "Employee", "N": 3})
    assert masked == {"S3Key": "<asset-hash>.zip", "List": ["x<asset-hash>"], "Keep": "Employee", "N": 3}
