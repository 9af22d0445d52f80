"""The release path and Node's banner at the library's own entry points (issue 13, items 1 and 2).

jsii prints an 11-line banner on every start when its Node is end of life. A user's app decides for itself
(README, "Node.js"); what this library starts must stay quiet: the CLI never starts jsii, and a synth that
``cdk_replication.local.synthesize`` runs (the demo, the local runtime) turns the banner off.
The wheel, the sdist and a fresh venv are tested in tests/test_packaging.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cdk_replication.local.synth import SynthError, synthesize

ROOT = Path(__file__).resolve().parent.parent
BANNER = "end-of-life"
SILENCERS = ("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION",
             "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION")


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _machine_node() -> str | None:
    """The first ``node`` on PATH outside any ``node_modules`` (the Makefile puts the project's Node 22 first)."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if folder and "node_modules" not in Path(folder).parts:
            found = shutil.which("node", path=folder)
            if found:
                return found
    return None


def jsii_banner(node: str, extra_env: dict[str, str] | None = None) -> str:
    """What jsii prints on stderr when it starts on ``node``: its banner, or nothing."""
    env = {k: v for k, v in os.environ.items() if k not in SILENCERS} | {"JSII_NODE": node} | (extra_env or {})
    run = subprocess.run([sys.executable, "-c", "import aws_cdk"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stderr


@pytest.fixture(scope="module")
def end_of_life_node() -> str:
    """A Node on this machine that jsii calls end of life (skips where the machine's Node is supported)."""
    node = _machine_node()
    if node is None or BANNER not in jsii_banner(node):
        pytest.skip("this machine's Node is supported by jsii: there is no banner to silence")
    return node


def test_the_cli_never_starts_jsii() -> None:
    """Every CLI module imports without aws_cdk, so no command can print jsii's banner."""
    probe = (
        "import importlib, pkgutil, sys, cdk_replication.cli as cli\n"
        "for m in pkgutil.walk_packages(cli.__path__, 'cdk_replication.cli.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('aws_cdk', 'jsii')))\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_a_synth_run_by_the_library_shows_no_node_banner(
    end_of_life_node: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an end-of-life Node, the output a failed synth reports holds the app's error and not the banner."""
    app = tmp_path / "app.py"
    app.write_text("import aws_cdk\nraise SystemExit('the app failed on purpose')\n")
    monkeypatch.setenv("JSII_NODE", end_of_life_node)
    for name in SILENCERS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SynthError) as failed:
        synthesize(app, tmp_path / "cdk.out")
    assert "the app failed on purpose" in str(failed.value)
    assert BANNER not in str(failed.value)


def test_the_readme_names_the_variable_that_silences_the_banner(end_of_life_node: str) -> None:
    """The variable and value README gives a user on an end-of-life Node are the ones jsii reads."""
    major = subprocess.run([end_of_life_node, "--version"], capture_output=True, text=True).stdout
    major = major.strip().lstrip("v").split(".")[0]
    readme = (ROOT / "README.md").read_text()
    assert "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20" in readme
    assert BANNER not in jsii_banner(end_of_life_node, {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": major})


def test_the_changelog_and_the_release_guide_cover_this_version() -> None:
    version = _version()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{version}]" in changelog, f"CHANGELOG.md has no section for version {version} (pyproject.toml)"
    guide = (ROOT / "docs" / "release.md").read_text()
    for step in ("python -m build", "twine check", "CHANGELOG.md", "pyproject.toml"):
        assert step in guide
