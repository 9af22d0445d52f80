"""The tutorial app (app.py): synthesizes without AWS credentials, one template per region."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import aws_cdk as cdk
import pytest
from construct_helpers import only_resource, synth

ROOT = Path(__file__).resolve().parents[2]


def _app_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_example_app", ROOT / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cdk_json_runs_app_py_from_the_venv() -> None:
    config = json.loads((ROOT / "cdk.json").read_text())
    assert config["app"] == ".venv/bin/python app.py"


def test_defaults_give_the_tutorial_topology(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    synthesized = synth(tmp_path, _app_module().build_app)
    assert synthesized.nag_error is None, synthesized.nag_report()
    assert sorted((s.stack_name, s.account, s.region) for s in synthesized.stacks()) == [
        ("Employee-us-east-1", "111111111111", "us-east-1"),
        ("Employee-us-west-2", "111111111111", "us-west-2"),
    ]
    assert sorted(p.name for p in tmp_path.glob("*.template.json")) == sorted(
        f"{s.artifact_id}.template.json" for s in synthesized.stacks()
    )
    source = only_resource(synthesized.template_json("Employee-us-west-2"), "AWS::DynamoDB::Table")
    assert source["Properties"]["KeySchema"] == [{"AttributeName": "Id", "KeyType": "HASH"}]
    assert source["Properties"]["AttributeDefinitions"] == [{"AttributeName": "Id", "AttributeType": "N"}]


def test_context_overrides_locations(tmp_path: Path) -> None:
    module = _app_module()
    context = {
        "account": "123456789012",
        "sourceRegion": "eu-west-1",
        "replicaRegion": "eu-central-1",
        "replicaAccount": "210987654321",
        "tableName": "Staff",
    }
    app = cdk.App(outdir=str(tmp_path), context=context)
    construct = module.build_app(app)
    assert sorted((s.stack_name, s.account, s.region) for s in construct.stacks.values()) == [
        ("Staff-210987654321-eu-central-1", "210987654321", "eu-central-1"),
        ("Staff-eu-west-1", "123456789012", "eu-west-1"),
    ]
