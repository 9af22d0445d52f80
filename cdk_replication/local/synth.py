"""Synthesize a CDK app into a cloud assembly folder without the CDK CLI and without AWS credentials."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cdk_replication.local.intrinsics import TemplateError

#: How long synthesis may take, in seconds (jsii starts Node and loads aws-cdk-lib: a few seconds).
SYNTH_TIMEOUT_S = 300.0


class SynthError(RuntimeError):
    """The app failed to synthesize; the message holds the end of its output."""


def find_node() -> str | None:
    """The Node binary jsii should use: ``$JSII_NODE``, else ``node_modules/.bin/node`` of this checkout."""
    if os.environ.get("JSII_NODE"):
        return os.environ["JSII_NODE"]
    for base in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (base, *base.parents):
            node = folder / "node_modules" / ".bin" / "node"
            if node.exists():
                return str(node)
    return None


def _node_major(node: str) -> str | None:
    """The major version of the Node binary ``node`` (``"20"`` for ``v20.20.2``), or None if it cannot run."""
    try:
        proc = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    major = proc.stdout.strip().lstrip("v").split(".")[0]
    return major if proc.returncode == 0 and major.isdigit() else None


def jsii_quiet_env() -> dict[str, str]:
    """Environment for a child process that runs a CDK app for us: jsii's Node banners turned off.

    jsii prints an 11-line banner on every start when its Node is end of life, deprecated or untested (the
    variables below are jsii's own). In a synth that this library runs and whose output it captures (the demo,
    the local runtime) the banner is only noise in an error message, so it is silenced there; a user's own app
    is not touched (README, "Node.js"). ``JSII_NODE`` is set to :func:`find_node`'s Node when there is one.
    A variable the caller already set wins.
    """
    env = {"JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1", "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    node = find_node()
    if node:
        env["JSII_NODE"] = node
    # The end-of-life banner is silenced per major version: the variable lists the majors to accept.
    major = _node_major(node or shutil.which("node") or "node")
    if major:
        env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = major
    return {name: value for name, value in env.items() if name not in os.environ}


def synthesize(
    app: Path | str = "app.py",
    out_dir: Path | str = "cdk.out",
    context: dict[str, str] | None = None,
    python: str | None = None,
    timeout_s: float = SYNTH_TIMEOUT_S,
) -> Path:
    """Run ``python <app>`` with ``CDK_OUTDIR=<out_dir>`` and return the assembly folder.

    Like the CDK CLI, passes the ``context`` of the ``cdk.json`` next to the app plus ``context`` (which
    wins) through ``CDK_CONTEXT_JSON``. Raises :class:`SynthError` with the app's output if it fails.

    Args:
        app: the app's entry script. Default: ``app.py``.
        out_dir: where to write the assembly. Default: ``cdk.out``.
        context: extra context values, as ``cdk synth -c key=value`` would pass.
        python: the interpreter. Default: the one running this code.
        timeout_s: how long synthesis may take, in seconds. Default: 300.
    """
    app_path = Path(app).resolve()
    if not app_path.is_file():
        raise FileNotFoundError(f"CDK app {str(app_path)!r} does not exist")
    out = Path(out_dir).resolve()
    merged: dict[str, str] = {}
    cdk_json = app_path.parent / "cdk.json"
    if cdk_json.is_file():
        merged.update(json.loads(cdk_json.read_text()).get("context", {}))
    merged.update(context or {})
    env = {**os.environ, **jsii_quiet_env(), "CDK_OUTDIR": str(out), "CDK_CONTEXT_JSON": json.dumps(merged)}
    try:
        proc = subprocess.run([python or sys.executable, str(app_path)], cwd=app_path.parent, env=env,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SynthError(f"synthesizing {app_path} took longer than {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise SynthError(f"synthesizing {app_path} failed (exit code {proc.returncode}):\n{tail}")
    if not (out / "manifest.json").is_file():
        raise TemplateError(f"{app_path} ran but wrote no assembly to {out}; does it call app.synth()?")
    return out
