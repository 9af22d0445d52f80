"""The ``cdk-replication`` command line: ``backfill``, ``verify [--repair]`` and ``migrate``.

Run ``cdk-replication --help``; the user's guide is docs/cli.md in the source repository (pip does not install
it). :func:`main` takes the arguments as a list and returns the exit code, so the commands can also be driven
from Python.
"""

from cdk_replication.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
