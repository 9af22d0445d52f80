"""The replicator Lambda's code as a subpackage of ours: ``cdk_replication._lambda.replicator``.

The repository keeps the Lambda's code in ``lambda_src/replicator/`` (``lambda_src/`` is the Lambda asset;
the handler is ``replicator.handler.handler``). A wheel ships the same files as
``cdk_replication/_lambda/replicator/`` (``package-dir`` in pyproject.toml), so that installing the library
puts no generic top-level name such as ``lambda_src`` into site-packages.

This module is the package ``cdk_replication._lambda`` in both layouts: a module that sets ``__path__`` is a
package, and its one path entry, ``ASSET_ROOT``, is whichever folder holds ``replicator/`` -- the wheel's
``cdk_replication/_lambda/`` or, in a checkout (editable install, or the repository on ``PYTHONPATH``), the
repository's ``lambda_src/``. A checkout always uses its own ``lambda_src/``, never another copy's.

The construct library, the command line and the local runtime import ``replicator.contract`` (standard library
only) through it; ``ASSET_ROOT`` is the folder ``Code.from_asset`` packages. Nothing else of the replicator
(which needs boto3) is imported through here at run time.
"""

from __future__ import annotations

from pathlib import Path


def _asset_root() -> Path:
    """The folder that holds the ``replicator`` package: the installed one first, then the checkout's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_lambda", here.parent / "lambda_src"):
        if (candidate / "replicator" / "__init__.py").is_file():
            return candidate
    raise ImportError(
        f"the replicator's code is missing: neither {here / '_lambda'} (installed wheel) nor "
        f"{here.parent / 'lambda_src'} (checkout) holds replicator/__init__.py"
    )


#: The folder that holds ``replicator/`` and nothing else of ours: the Lambda asset.
ASSET_ROOT: Path = _asset_root()
#: Makes this module a package whose submodules live in ``ASSET_ROOT``.
__path__ = [str(ASSET_ROOT)]
