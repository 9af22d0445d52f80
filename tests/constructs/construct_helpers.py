"""Synthesis helpers shared by the construct tests."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

SOURCE_ACCOUNT = "111111111111"
OTHER_ACCOUNT = "222222222222"
PK = dynamodb.Attribute(name="Id", type=dynamodb.AttributeType.NUMBER)
SK = dynamodb.Attribute(name="Version", type=dynamodb.AttributeType.STRING)
IMPORTED_STREAM_ARN = (
    f"arn:aws:dynamodb:us-west-2:{SOURCE_ACCOUNT}:table/Orders/stream/2026-01-01T00:00:00.000"
)
SOURCE_KEY_ARN = f"arn:aws:kms:us-west-2:{SOURCE_ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
REPLICA_KEY_ARN = f"arn:aws:kms:us-east-1:{SOURCE_ACCOUNT}:key/66666666-7777-8888-9999-000000000000"
FOREIGN_KEY_ARN = f"arn:aws:kms:eu-west-1:{OTHER_ACCOUNT}:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#: A completed export of the imported source table ``Orders`` (us-west-2, SOURCE_ACCOUNT).
DATA_STREAM_ARN = f"arn:aws:kinesis:us-west-2:{SOURCE_ACCOUNT}:stream/orders-changes"
EXPORT_ID = "01763800000000-a1b2c3d4"
EXPORT_ARN = f"arn:aws:dynamodb:us-west-2:{SOURCE_ACCOUNT}:table/Orders/export/{EXPORT_ID}"
#: The role in SOURCE_ACCOUNT that runs the export in the import-phase fixture.
EXPORTER_ROLE_ARN = f"arn:aws:iam::{SOURCE_ACCOUNT}:role/orders-exporter"


@dataclass
class Synthesized:
    """One synthesized app: its construct of interest, every stack's template, and the cdk-nag verdict."""

    app: cdk.App
    subject: Any
    assembly: cdk.cx_api.CloudAssembly
    nag_error: str | None
    outdir: Path

    def stacks(self) -> Iterator[cdk.Stack]:
        for child in self.app.node.find_all():
            if cdk.Stack.is_stack(child):
                yield child

    def stack(self, stack_name: str) -> cdk.Stack:
        for stack in self.stacks():
            if stack.stack_name == stack_name:
                return stack
        raise KeyError(f"no stack named {stack_name}; have {[s.stack_name for s in self.stacks()]}")

    def template(self, stack_name: str) -> Template:
        return Template.from_stack(self.stack(stack_name))

    def template_json(self, stack_name: str) -> dict[str, Any]:
        artifact = self.assembly.get_stack_by_name(stack_name)
        return json.loads(Path(artifact.template_full_path).read_text())

    def nag_report(self) -> dict[str, Any]:
        return json.loads((self.outdir / "validation-report.json").read_text())


def synth(tmp_dir: Path, build: Callable[[cdk.App], Any]) -> Synthesized:
    """Build an app with ``build`` and synthesize it once, with cdk-nag's AwsSolutions pack attached.

    A cdk-nag failure does not raise here: it is returned as ``nag_error`` so that the compliance test can
    report it while the other tests of the module still use the templates.
    """
    app = cdk.App(outdir=str(tmp_dir))
    subject = build(app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    nag_error = None
    try:
        assembly = app.synth()
    except RuntimeError as error:
        if "ValidationFailed" not in str(error):
            raise
        nag_error = str(error)
        assembly = cdk.cx_api.CloudAssembly(str(tmp_dir))
    return Synthesized(app=app, subject=subject, assembly=assembly, nag_error=nag_error, outdir=tmp_dir)


_HASH_RE = re.compile(r"[0-9a-f]{64}")


def mask_asset_hashes(value: Any) -> Any:
    """Replace every 64-hex asset hash with a placeholder, so lambda_src changes do not break snapshots."""
    if isinstance(value, dict):
        return {k: mask_asset_hashes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_asset_hashes(v) for v in value]
    if isinstance(value, str):
        return _HASH_RE.sub("<asset-hash>", value)
    return value


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def only_resource(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = resources_of_type(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.values()))


def policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every IAM statement of the template: (logical id, where, statement) — role inline policies,
    trust policies, IAM::Policy documents, queue and bucket policies and table resource policies."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        documents: list[tuple[str, dict[str, Any]]] = []
        if kind == "AWS::IAM::Role":
            documents.append(("trust", props["AssumeRolePolicyDocument"]))
            documents += [(f"policy {p['PolicyName']}", p["PolicyDocument"]) for p in props.get("Policies", [])]
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(("policy", props["PolicyDocument"]))
        elif kind == "AWS::SQS::QueuePolicy":
            documents.append(("queue policy", props["PolicyDocument"]))
        elif kind == "AWS::S3::BucketPolicy":
            documents.append(("bucket policy", props["PolicyDocument"]))
        elif kind == "AWS::DynamoDB::Table" and "ResourcePolicy" in props:
            documents.append(("table resource policy", props["ResourcePolicy"]["PolicyDocument"]))
        for where, document in documents:
            for statement in document["Statement"]:
                yield logical_id, where, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(template: dict[str, Any], logical_id_prefix: str) -> list[dict[str, Any]]:
    """The inline policy statements of the one role whose logical id starts with ``logical_id_prefix``."""
    roles = {k: v for k, v in resources_of_type(template, "AWS::IAM::Role").items() if k.startswith(logical_id_prefix)}
    assert len(roles) == 1, f"expected one role {logical_id_prefix}*, found {sorted(roles)}"
    role = next(iter(roles.values()))
    policies = role["Properties"]["Policies"]
    assert len(policies) == 1
    return policies[0]["PolicyDocument"]["Statement"]


def replicator_config() -> ModuleType:
    """lambda_src/replicator/config.py, the module the Lambda runs, imported under the library's name for it
    (``cdk_replication._lambda.replicator.config``, see cdk_replication/_lambda.py).

    Not as ``replicator.config``: ``tests/replicator`` is also a package named ``replicator`` and comes first on
    sys.path under pytest. config.py imports only the standard library and ``replicator.contract``.
    """
    return importlib.import_module("cdk_replication._lambda.replicator.config")


def partition_arn(suffix: str) -> dict[str, Any]:
    """The template form of ``arn:<partition>`` + suffix as the constructs write it."""
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, suffix]]}
