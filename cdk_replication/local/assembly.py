"""Read a synthesized cloud assembly (``cdk.out``): its stacks, their environments, templates and assets."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdk_replication.local.intrinsics import TemplateError

_ENVIRONMENT = re.compile(r"^aws://(?P<account>[^/]+)/(?P<region>[^/]+)$")


@dataclass(frozen=True)
class Asset:
    """A file asset of the assembly: where it lies in ``cdk.out`` and how CDK packages it."""

    path: Path
    packaging: str  # "zip" (a folder zipped at publish time, or a .zip file) or "file"


@dataclass
class StackArtifact:
    """One stack of a cloud assembly.

    Attributes:
        artifact_id: the artifact id in ``manifest.json``.
        stack_name: the CloudFormation stack name.
        region: the stack's explicit region.
        account: the stack's explicit account.
        template: the parsed template.
        directory: the assembly folder the stack's paths are relative to.
        dependencies: artifact ids of the stacks this one depends on.
        assets: file assets by S3 object key (what the template's ``Code.S3Key`` names).
    """

    artifact_id: str
    stack_name: str
    region: str
    account: str
    template: dict[str, Any]
    directory: Path
    dependencies: list[str] = field(default_factory=list)
    assets: dict[str, Asset] = field(default_factory=dict)

    def asset_for(self, logical_id: str, resource: dict[str, Any], s3_key: Any) -> Asset:
        """The asset behind a resource's code, from its ``aws:asset:path`` metadata or the asset manifest."""
        metadata = resource.get("Metadata", {})
        if "aws:asset:path" in metadata:
            path = self.directory / metadata["aws:asset:path"]
            return Asset(path, "zip" if path.is_dir() or path.suffix == ".zip" else "file")
        if isinstance(s3_key, str) and s3_key in self.assets:
            return self.assets[s3_key]
        raise TemplateError(
            f"stack {self.stack_name}, {logical_id}: its code (S3 key {s3_key!r}) is not an asset of this "
            "assembly; only functions whose code is a local asset (lambda.Code.from_asset) can run locally"
        )


def read_assembly(cdk_out: Path | str) -> list[StackArtifact]:
    """Every stack of the assembly in ``cdk_out`` (including nested stage assemblies), dependencies first.

    Raises :class:`TemplateError` if the folder holds no assembly or a stack has no explicit environment.
    """
    root = Path(cdk_out)
    if not (root / "manifest.json").is_file():
        raise TemplateError(
            f"{str(root)!r} holds no manifest.json: synthesize the app first (e.g. `cdk synth` or "
            "`python app.py` with CDK_OUTDIR set)"
        )
    stacks: list[StackArtifact] = []
    _read(root, stacks)
    return _dependency_order(stacks)


def _read(directory: Path, stacks: list[StackArtifact]) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    artifacts: dict[str, Any] = manifest.get("artifacts", {})
    for artifact_id, artifact in artifacts.items():
        kind = artifact.get("type")
        props = artifact.get("properties", {})
        if kind == "cdk:cloud-assembly":
            _read(directory / props["directoryName"], stacks)
            continue
        if kind != "aws:cloudformation:stack":
            continue
        env = _ENVIRONMENT.match(artifact.get("environment", ""))
        if env is None or env["account"].startswith("unknown") or env["region"].startswith("unknown"):
            raise TemplateError(
                f"stack {props.get('stackName', artifact_id)} has no explicit environment "
                f"({artifact.get('environment')!r}); give it env=Environment(account=..., region=...)"
            )
        template = json.loads((directory / props["templateFile"]).read_text())
        assets: dict[str, Asset] = {}
        for dep in artifact.get("dependencies", []):
            dep_artifact = artifacts.get(dep, {})
            if dep_artifact.get("type") == "cdk:asset-manifest":
                assets.update(_read_assets(directory, dep_artifact["properties"]["file"]))
        stacks.append(
            StackArtifact(
                artifact_id=artifact_id,
                stack_name=props.get("stackName", artifact_id),
                region=env["region"],
                account=env["account"],
                template=template,
                directory=directory,
                dependencies=[d for d in artifact.get("dependencies", [])
                              if artifacts.get(d, {}).get("type") == "aws:cloudformation:stack"],
                assets=assets,
            )
        )


def _read_assets(directory: Path, file: str) -> dict[str, Asset]:
    manifest = json.loads((directory / file).read_text())
    assets: dict[str, Asset] = {}
    for entry in manifest.get("files", {}).values():
        source = entry.get("source", {})
        if "path" not in source:
            continue  # built by a command at publish time; nothing on disk to run
        asset = Asset(directory / source["path"], source.get("packaging", "file"))
        for destination in entry.get("destinations", {}).values():
            assets[destination["objectKey"]] = asset
    return assets


def _dependency_order(stacks: list[StackArtifact]) -> list[StackArtifact]:
    by_id = {s.artifact_id: s for s in stacks}
    ordered: list[StackArtifact] = []
    state: dict[str, str] = {}

    def visit(stack: StackArtifact) -> None:
        if state.get(stack.artifact_id) == "done":
            return
        if state.get(stack.artifact_id) == "visiting":
            raise TemplateError(f"stack {stack.stack_name} depends on itself through other stacks")
        state[stack.artifact_id] = "visiting"
        for dep in stack.dependencies:
            if dep in by_id:
                visit(by_id[dep])
        state[stack.artifact_id] = "done"
        ordered.append(stack)

    for stack in stacks:
        visit(stack)
    return ordered
