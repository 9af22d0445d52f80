"""Synthesize a CDK app into a cloud assembly folder without the CDK CLI and without AWS credentials."""

from __future__ import annotations

import json
import os
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
    env = dict(os.environ)
    env.update({"CDK_OUTDIR": str(out), "CDK_CONTEXT_JSON": json.dumps(merged),
                # jsii's banners about Node versions are noise for a person running a demo.
                "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
                "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"})
    node = find_node()
    if node:
        env["JSII_NODE"] = node
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
