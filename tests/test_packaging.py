"""The distribution, built and installed as a release is (issue 11 item 6, issue 13 item 1; docs/release.md).

``python -m build`` runs on a copy of the release tree (every file git tracks or would track, plus a stub
``node_modules``; building in the checkout would leave ``build/`` and ``*.egg-info`` there). It builds the
sdist, then the wheel FROM the sdist, so a file the sdist lacks fails the build. The wheel ships the Lambda's
code inside our own package, ``cdk_replication/_lambda/replicator/``, with no generic top-level name.

A fresh venv (``python -m venv``) gets the package by README's own install commands (a wheel built from a
checkout, then installed with its dependencies from the package index, pinned by constraints.txt); that
wheel must hold the same files as the release's. It is used from a temporary folder with no PYTHONPATH: no
checkout is importable. There it synthesizes the README's own example app, on the supported Node the README asks for,
and jsii prints no end-of-life banner. Installing aws-cdk-lib into the venv is most of this file's time; pip's
byte-compilation of its modules (and the other dependencies') was 24 of the install's 30 s of CPU (measured),
so the install runs with ``PIP_COMPILE=0`` (:func:`fresh_venv` says what it keeps of what pip compiles).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALLED_LAMBDA = "cdk_replication/_lambda"
#: Variables that would make the fresh venv see the checkout or hide jsii's banner.
DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JSII_NODE",
               "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION",
               "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION")
SUPPORTED_NODE = ROOT / "node_modules" / ".bin" / "node"


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _run(args: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in ``cwd``; fail the test with the end of its output if it fails."""
    run = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    assert run.returncode == 0, f"{' '.join(map(str, args))} failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}"
    return run


def _release_tree(dest: Path) -> Path:
    """Copy what a release is built from: the files git tracks or would track (untracked, not ignored)."""
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(source.read_bytes())
    # A checkout that ran `make setup` has node_modules; the sdist must not take it.
    (dest / "node_modules" / "stub").mkdir(parents=True)
    (dest / "node_modules" / "stub" / "index.js").write_text("// stub\n")
    return dest


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel) as ``python -m build`` makes them, the wheel built from the sdist."""
    work = tmp_path_factory.mktemp("release")
    source = _release_tree(work / "source")
    run = _run([sys.executable, "-m", "build", "--outdir", work / "dist", source], cwd=work)
    assert "Building wheel from sdist" in run.stdout + run.stderr, "the wheel must be built from the sdist"
    (sdist,) = (work / "dist").glob("cdk_replication-*.tar.gz")
    (wheel,) = (work / "dist").glob("cdk_replication-*-py3-none-any.whl")
    assert sdist.name == f"cdk_replication-{_version()}.tar.gz"
    return sdist, wheel


@pytest.fixture(scope="module")
def wheel(dists: tuple[Path, Path]) -> Path:
    return dists[1]


def _clean_env(*, bytecode: bool = False, **extra: str) -> dict[str, str]:
    """This process's environment without :data:`DROPPED_ENV`, plus ``extra``; Python writes no ``.pyc`` files
    unless ``bytecode`` (default False)."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    return {**env, **({} if bytecode else {"PYTHONDONTWRITEBYTECODE": "1"}), **extra}


def _user_env(**extra: str) -> dict[str, str]:
    """A user's environment as README's "Node.js" asks for it: a supported Node for jsii, nothing silenced.

    That Node is the Node 22 `make setup` installs; without it, the machine's ``node`` (and its banner, if any).
    Python writes ``.pyc`` files as it does for a user: the first run in the fresh venv compiles the modules it
    imports, the next ones reuse them (pip did not compile them, :func:`fresh_venv`).
    """
    node = {"JSII_NODE": str(SUPPORTED_NODE)} if SUPPORTED_NODE.exists() else {}
    return _clean_env(bytecode=True, **node, **extra)


def readme_install() -> list[str]:
    """The install commands of README's "Using the construct in your app" (the first block), as written."""
    section = (ROOT / "README.md").read_text().split("## Using the construct in your app", 1)[1]
    block = section.split("```\n", 2)[1]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("python -m pip")]


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv into which README's install commands put the package, run with that venv's ``python``.

    ``path/to/cdk-replication`` is a copy of the release tree; PIP_CONSTRAINT pins the dependencies to
    constraints.txt so the test does not drift with new aws-cdk-lib releases. ``PIP_COMPILE=0`` (pip's
    ``--no-compile``) skips byte-compiling the dependencies, which only costs time; our own package is then
    compiled as pip would have, so the installed replicator folder holds ``__pycache__`` as a user's does (the
    function's asset must leave it out).
    """
    work = tmp_path_factory.mktemp("venv")
    venv, checkout = work / "venv", _release_tree(work / "checkout")
    _run([sys.executable, "-m", "venv", venv], cwd=work, env=_clean_env())
    commands = readme_install()
    assert len(commands) == 2 and "pip wheel" in commands[0] and "pip install" in commands[1], commands
    env = _clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
                     PIP_CONSTRAINT=str(ROOT / "constraints.txt"), PIP_COMPILE="0")
    for command in commands:
        _run(["bash", "-c", command.replace("path/to/cdk-replication", str(checkout))], cwd=work, env=env)
    (package,) = venv.glob("lib/python*/site-packages/cdk_replication")
    _run([venv / "bin" / "python", "-m", "compileall", "-q", package], cwd=work, env=_clean_env(bytecode=True))
    assert list(package.glob("_lambda/replicator/__pycache__/*.pyc")), "our package was not compiled"
    return venv


def test_readmes_install_builds_the_wheel_a_release_builds(fresh_venv: Path, wheel: Path) -> None:
    """The wheel README's commands build from a checkout holds the files of the one built from the sdist."""
    (installed,) = (fresh_venv.parent / "dist").glob("cdk_replication-*-py3-none-any.whl")
    assert installed.name == wheel.name
    assert sorted(zipfile.ZipFile(installed).namelist()) == sorted(zipfile.ZipFile(wheel).namelist())


def test_the_sdist_holds_the_sources_and_not_the_checkouts_tooling(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as tar:
        names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"PKG-INFO", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", "CHANGELOG.md",
                         "docs", "cdk_replication", "cdk_replication.egg-info", "lambda_src"}
    assert [n for n in names if n.startswith("lambda_src/") and n.endswith(".py")] == [
        p.relative_to(ROOT).as_posix() for p in _python_files(ROOT / "lambda_src" / "replicator")
    ]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


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


#: Run in the fresh venv: where the code is found, and the file list of the function's asset after a synth.
_PROBE = """
import json, sys, sysconfig
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
    "purelib": sysconfig.get_path("purelib"), "sys_path": sys.path, "version": cdk_replication.__version__,
    "package": cdk_replication.__file__, "contract": contract.__file__, "asset_root": str(lambda_source_dir()),
    "asset_root_holds": sorted(p.name for p in lam.ASSET_ROOT.iterdir()),
    "asset": sorted(p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file()),
}))
"""


def test_installed_from_the_wheel_the_asset_is_the_replicator_folder(fresh_venv: Path, tmp_path: Path) -> None:
    probe = _run([fresh_venv / "bin" / "python", "-c", _PROBE, tmp_path / "out"], cwd=tmp_path,
                 env=_user_env())
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    site = Path(found["purelib"])
    installed = site / INSTALLED_LAMBDA
    assert site.is_relative_to(fresh_venv)
    assert not [p for p in found["sys_path"] if p and Path(p).resolve().is_relative_to(ROOT)], found["sys_path"]
    assert found["version"] == _version()
    assert found["package"] == str(site / "cdk_replication" / "__init__.py")
    assert found["contract"] == str(installed / "replicator" / "contract.py")
    assert found["asset_root"] == str(installed)
    assert found["asset_root_holds"] == ["replicator"]
    assert found["asset"] == [
        p.relative_to(ROOT / "lambda_src").as_posix() for p in _python_files(ROOT / "lambda_src" / "replicator")
    ]


def test_the_installed_cli_reports_the_version_of_pyproject(fresh_venv: Path, tmp_path: Path) -> None:
    run = _run([fresh_venv / "bin" / "cdk-replication", "--version"], cwd=tmp_path, env=_clean_env(bytecode=True))
    assert run.stdout.strip() == f"cdk-replication {_version()}"
    assert run.stderr == ""


def readme_example() -> str:
    """The ``ReplicatedTable`` example of README's "Using the construct in your app", as written there."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using the construct in your app", 1)[1].split("\n## ", 1)[0]
    blocks = [b for b in re.findall(r"```python\n(.*?)```", section, flags=re.S) if "ReplicatedTable(" in b]
    assert blocks, "README's 'Using the construct in your app' has no ReplicatedTable example"
    return blocks[0]


def _replicator_assets(out: Path) -> list[tuple[str, list[str]]]:
    """(handler, files of its asset folder) of every Lambda function in the assembly ``out``."""
    found = []
    manifest = json.loads((out / "manifest.json").read_text())
    for artifact in manifest["artifacts"].values():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        template_file = artifact["properties"]["templateFile"]
        template = json.loads((out / template_file).read_text())
        assets = json.loads((out / template_file.replace(".template.json", ".assets.json")).read_text())["files"]
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            key = resource["Properties"]["Code"]["S3Key"]
            (asset,) = [a for a in assets.values()
                        if any(d["objectKey"] == key for d in a["destinations"].values())]
            folder = out / asset["source"]["path"]
            found.append((resource["Properties"]["Handler"],
                          sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.py"))))
    return found


def test_the_readme_example_synthesizes_from_the_wheel_without_a_node_banner(fresh_venv: Path,
                                                                          tmp_path: Path) -> None:
    """README's example, run as a user runs it (``python app.py``) on a supported Node (README, "Node.js")."""
    (tmp_path / "app.py").write_text(readme_example())
    env = _user_env(CDK_OUTDIR=str(tmp_path / "cdk.out"))
    run = _run([fresh_venv / "bin" / "python", "app.py"], cwd=tmp_path, env=env)
    assert "end-of-life" not in run.stderr and "!!!!!!!!" not in run.stderr, run.stderr
    replicators = _replicator_assets(tmp_path / "cdk.out")
    expected = [p.relative_to(ROOT / "lambda_src").as_posix()
                for p in _python_files(ROOT / "lambda_src" / "replicator")]
    assert replicators == [("replicator.handler.handler", expected)]
