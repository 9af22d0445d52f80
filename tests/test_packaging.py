"""The distribution (issue 11, item 6): the wheel ships the Lambda's code inside our own package,
``cdk_replication/_lambda/replicator/``, with no generic top-level name such as ``lambda_src``; installed from
the wheel, the library finds that folder and packages exactly it as the function's code.

Builds a wheel from a copy of the sources (pip's in-tree build would leave ``build/`` and ``*.egg-info`` in the
checkout), with pip's build isolation (setuptools comes from the package index, as for any user).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALLED_LAMBDA = "cdk_replication/_lambda"


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for folder in ("cdk_replication", "lambda_src"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(work / "dist"), str(source)],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, f"pip wheel failed:\n{run.stdout}{run.stderr}"
    (built,) = (work / "dist").glob("cdk_replication-*.whl")
    return built


def test_the_wheel_holds_our_package_only_with_the_replicator_inside(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"cdk_replication"}
    replicator = sorted(n for n in names if n.startswith(f"{INSTALLED_LAMBDA}/"))
    assert replicator == [
        f"{INSTALLED_LAMBDA}/{p.relative_to(ROOT / 'lambda_src').as_posix()}"
        for p in _python_files(ROOT / "lambda_src" / "replicator")
    ]
    # Every module of the library is shipped (the package list in pyproject.toml is written by hand).
    missing = [p.relative_to(ROOT).as_posix() for p in _python_files(ROOT / "cdk_replication")]
    assert [name for name in missing if name not in names] == []


#: Run with only the installed wheel (and the test environment's dependencies) importable: where the code
#: is found, and the file list of the function's asset after a synth.
_PROBE = """
import json, sys
from pathlib import Path
import aws_cdk as cdk
import cdk_replication, cdk_replication._lambda as lam
from cdk_replication import KeySchema, ResolvedTable, ReplicationTarget, Replicator
from cdk_replication._lambda.replicator import contract
from cdk_replication.replicator import lambda_source_dir

app = cdk.App(outdir=sys.argv[1])
stack = cdk.Stack(app, "S", env=cdk.Environment(account="111111111111", region="us-west-2"))
Replicator(stack, "R", source=ResolvedTable("t", "us-west-2", "111111111111"),
           stream_arn="arn:aws:dynamodb:us-west-2:111111111111:table/t/stream/x", key=KeySchema("pk"),
           targets=[ReplicationTarget(ResolvedTable("t", "us-east-1", "111111111111"))])
app.synth()
(asset,) = Path(sys.argv[1]).glob("asset.*")
print(json.dumps({
    "package": cdk_replication.__file__, "contract": contract.__file__, "asset_root": str(lambda_source_dir()),
    "asset_root_holds": sorted(p.name for p in lam.ASSET_ROOT.iterdir()),
    "asset": sorted(p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file()),
}))
"""


def test_installed_from_the_wheel_the_asset_is_the_replicator_folder(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, f"pip install failed:\n{run.stdout}{run.stderr}"
    # The installed copy must come first: run outside the checkout, with the target directory on the path.
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONDONTWRITEBYTECODE": "1"}
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "out")], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    installed = target / INSTALLED_LAMBDA
    assert found["package"] == str(target / "cdk_replication" / "__init__.py")
    assert found["contract"] == str(installed / "replicator" / "contract.py")
    assert found["asset_root"] == str(installed)
    assert found["asset_root_holds"] == ["replicator"]
    assert found["asset"] == [
        p.relative_to(ROOT / "lambda_src").as_posix() for p in _python_files(ROOT / "lambda_src" / "replicator")
    ]
