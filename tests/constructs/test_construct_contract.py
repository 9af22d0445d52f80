"""Both sides of the replicator contract agree (issue 11): what the construct writes into each function's
environment is exactly what the replicator's own parser (lambda_src/replicator/config.py) reads back, and the
function's code asset is the replicator package and nothing else.

The literal side (every ``REPLICATION_*`` name comes from contract.py) is tests/test_contract.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from cdk_replication import ConflictStrategy, ReplicatedTable, ReplicationMode, ReplicatorOptions, TableLocation
from cdk_replication._lambda.replicator import contract
from cdk_replication.replicator import lambda_source_dir

from construct_helpers import PK, SOURCE_ACCOUNT, Synthesized, replicator_config, resources_of_type, synth

ROOT = Path(__file__).resolve().parents[2]


def replicator_functions(synthesized: Synthesized) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(stack name, template, function properties) of every replicator function in the app."""
    found = []
    for stack in synthesized.assembly.stacks:
        template = synthesized.template_json(stack.stack_name)
        for function in resources_of_type(template, "AWS::Lambda::Function").values():
            if contract.SOURCE in function["Properties"].get("Environment", {}).get("Variables", {}):
                found.append((stack.stack_name, template, function["Properties"]))
    assert found, "no replicator function in the app"
    return found


def read_back(config: Any, name: str) -> Any:
    """The value of variable ``name`` as the parsed configuration holds it, in the form the construct writes."""
    def table(ref: Any) -> dict[str, str]:
        fields = {"tableName": ref.table_name, "region": ref.region, "account": ref.account}
        return fields if ref.role_arn is None else {**fields, "roleArn": ref.role_arn}

    readers = {
        contract.MODE: lambda: config.mode.value,
        contract.CHANGE_SOURCE: lambda: config.change_source.value,
        contract.SOURCE: lambda: json.dumps(table(config.source), separators=(",", ":"), sort_keys=True),
        contract.TARGETS: lambda: json.dumps([table(t) for t in config.targets], separators=(",", ":"), sort_keys=True),
        contract.KEY: lambda: json.dumps(
            {"partitionKey": config.key.partition_key, "sortKey": config.key.sort_key}, separators=(",", ":"),
            sort_keys=True,
        ),
        contract.METADATA_PREFIX: lambda: config.metadata_prefix,
        contract.CONFLICT_ATTRIBUTE: lambda: config.conflict_attribute,
        contract.CONFLICT_STRATEGY: lambda: config.conflict_strategy.value,
        contract.MAX_CONCURRENCY: lambda: str(config.max_concurrency),
        contract.TTL_ATTRIBUTE: lambda: config.ttl_attribute,
        contract.TTL_DELETES: lambda: config.ttl_deletes.value,
        contract.TOMBSTONE_TTL_SECONDS: lambda: str(config.tombstone_ttl_seconds),
        contract.LOG_LEVEL: lambda: config.log_level,
        contract.POWERTOOLS_LOG_LEVEL: lambda: config.log_level,
    }
    assert set(readers) == set(contract.ALL_VARIABLES), "a variable of the contract has no reader here"
    return readers[name]()


def expected_tombstone_ttl(template: dict[str, Any], env: dict[str, str]) -> int | None:
    """The tombstone lifetime the contract's arithmetic gives for this stack's mapping or data stream; ``None``
    where the template does not hold the input (a data stream created elsewhere)."""
    if env.get(contract.CHANGE_SOURCE) == "KINESIS":
        streams = list(resources_of_type(template, "AWS::Kinesis::Stream").values())
        if not streams:
            return None
        return contract.kinesis_tombstone_ttl_seconds(streams[0]["Properties"]["RetentionPeriodHours"] * 3600)
    (mapping,) = resources_of_type(template, "AWS::Lambda::EventSourceMapping").values()
    age = mapping["Properties"].get("MaximumRecordAgeInSeconds", -1)
    return contract.multi_active_tombstone_ttl_seconds(None if age == -1 else age)


def assert_agreement(synthesized: Synthesized) -> None:
    load_config = replicator_config().load_config
    for stack_name, template, function in replicator_functions(synthesized):
        env = function["Environment"]["Variables"]
        where = f"{stack_name}: {env}"
        assert set(env) <= set(contract.ALL_VARIABLES), f"{where}: written but never read by the replicator"
        config = load_config(env)
        for name, value in env.items():
            assert read_back(config, name) == value, f"{where}: {name}"
        if contract.TOMBSTONE_TTL_SECONDS in env:
            expected = expected_tombstone_ttl(template, env)
            assert expected is None or config.tombstone_ttl_seconds == expected, where
        if config.mode.value == "MULTI_ACTIVE":
            # The replicator writes each tombstone's expiry where the tables' TTL process looks.
            (table,) = resources_of_type(template, "AWS::DynamoDB::Table").values()
            assert table["Properties"]["TimeToLiveSpecification"]["AttributeName"] == config.ttl_attribute, where


def test_every_shape_writes_what_the_replicator_reads(any_shape: Synthesized) -> None:
    assert_agreement(any_shape)


@pytest.fixture(scope="module")
def tuned_multi_active(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Multi-active with every contract setting away from its default."""
    return synth(
        tmp_path_factory.mktemp("tuned"),
        lambda app: ReplicatedTable(
            app,
            "Tuned",
            source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="us-east-1")],
            partition_key=PK,
            mode=ReplicationMode.MULTI_ACTIVE,
            conflict_attribute="version",
            conflict_strategy=ConflictStrategy.VERSION,
            replicator=ReplicatorOptions(
                metadata_prefix="meta.", max_concurrency=7, log_level="DEBUG", max_record_age=cdk.Duration.hours(6)
            ),
        ),
    )


def test_tuned_settings_reach_the_replicator(tuned_multi_active: Synthesized) -> None:
    assert_agreement(tuned_multi_active)
    config = replicator_config().load_config(replicator_functions(tuned_multi_active)[0][2]["Environment"]["Variables"])
    assert (config.metadata_prefix, config.conflict_attribute, config.conflict_strategy.value) == (
        "meta.", "version", "VERSION",
    )
    assert (config.max_concurrency, config.log_level, config.ttl_attribute) == (7, "DEBUG", "meta.expiresAt")
    assert config.tombstone_ttl_seconds == (24 + 6 + 24) * 3600


def asset_files(synthesized: Synthesized, function: dict[str, Any]) -> list[str]:
    """The files of the function's code asset in cdk.out, relative to the asset's root."""
    key = function["Code"]["S3Key"]
    folder = synthesized.outdir / f"asset.{key.removesuffix('.zip')}"
    assert folder.is_dir(), f"no asset folder {folder}"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_the_code_asset_is_the_replicator_package_and_nothing_else(one_way: Synthesized) -> None:
    """``Code.from_asset`` gets exactly the .py files of lambda_src/replicator: no caches, no tests, no other
    folder of the repository or of the installed package (tests/test_packaging.py checks the wheel's layout)."""
    package = ROOT / "lambda_src"
    expected = sorted(
        str(p.relative_to(package))
        for p in (package / "replicator").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    assert lambda_source_dir() == package
    for _, _, function in replicator_functions(one_way):
        assert asset_files(one_way, function) == expected
        assert function["Handler"] == "replicator.handler.handler"


def test_caches_next_to_the_code_stay_out_of_the_asset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkout or an installed package that has run the code holds ``__pycache__`` folders; the asset
    leaves them out. Built from a copy of lambda_src with caches and one extra module (which proves the copy is
    what was packaged)."""
    import shutil

    import cdk_replication._lambda as lambda_package

    copy = tmp_path / "code"
    shutil.copytree(ROOT / "lambda_src", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "replicator" / "marker_module.py").write_text('"""Only in this copy."""\n')
    (copy / "replicator" / "__pycache__").mkdir()
    (copy / "replicator" / "__pycache__" / "handler.cpython-313.pyc").write_bytes(b"\0")
    (copy / "replicator" / "stray.pyc").write_bytes(b"\0")
    monkeypatch.setattr(lambda_package, "ASSET_ROOT", copy)

    built = synth(
        tmp_path / "out",
        lambda app: ReplicatedTable(
            app, "Cached", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="us-east-1")], partition_key=PK,
        ),
    )
    expected = sorted(str(p.relative_to(copy)) for p in (copy / "replicator").glob("*.py"))
    assert "replicator/marker_module.py" in expected
    for _, _, function in replicator_functions(built):
        assert asset_files(built, function) == expected


@pytest.mark.parametrize("ttl_attribute", ["updatedAt", "Id"])
def test_a_ttl_attribute_the_replicator_would_refuse_is_refused_at_synth(ttl_attribute: str) -> None:
    """The tombstone expiry cannot go into the conflict attribute or a key attribute: the replicator refuses
    such an environment at every cold start (contract.ttl_attribute_problem), so the construct refuses it first."""
    from cdk_replication import ReplicationConfigError

    app = cdk.App()
    with pytest.raises(ReplicationConfigError, match=f"ttl_attribute '{ttl_attribute}' is a key or the conflict"):
        ReplicatedTable(
            app, "Ttl", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="us-east-1")], partition_key=PK, mode=ReplicationMode.MULTI_ACTIVE,
            time_to_live_attribute=ttl_attribute,
        )
