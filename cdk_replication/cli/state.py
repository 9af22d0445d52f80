"""Resumable state files: small JSON documents rewritten atomically after each unit of work."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from cdk_replication.cli.errors import BadInput

#: Folder (relative to the working directory) for state files when ``--state-file`` is not given.
DEFAULT_STATE_DIR = Path(".cdk-replication")

STATE_VERSION = 1


def _state_file_name(command: str, parts: tuple[str, ...]) -> str:
    return f"{command}-{'-'.join(parts)}.json"


def _pair_parts(source_region: str, source: str, target_region: str, target: str) -> tuple[str, ...]:
    return (source_region, source, "to", target_region, target)


def default_state_path(command: str, *parts: str) -> Path:
    """``.cdk-replication/<command>-<part>-<part>.json`` with characters unsafe in file names replaced."""
    return DEFAULT_STATE_DIR / _state_file_name(command, tuple(re.sub(r"[^A-Za-z0-9_.-]+", "_", p) for p in parts))


def pair_state_path(command: str, source_region: str, source: str, target_region: str, target: str) -> Path:
    """The default state file of ``command`` run from table ``source`` to table ``target`` (names, not ARNs):
    ``.cdk-replication/<command>-<source region>-<source>-to-<target region>-<target>.json``."""
    return default_state_path(command, *_pair_parts(source_region, source, target_region, target))


def pair_state_pattern(command: str) -> str:
    """:func:`pair_state_path`'s name with placeholders, for ``--state-file``'s help (built by the same code, so
    the help cannot drift from the file the command writes)."""
    parts = _pair_parts("<source-region>", "<source>", "<target-region>", "<target>")
    return str(DEFAULT_STATE_DIR / _state_file_name(command, parts))


class StateFile:
    """A JSON state document at ``path``, saved by replacing the file so a crash never leaves half of it.

    Args:
        path: the file; its folder is created on the first save.
        identity: fields that must match an existing file for it to be resumed (e.g. source and target).
    """

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = Path(path)
        self.identity = identity
        self.data: dict[str, Any] = {}
        self.resumed = False
        #: Guards :attr:`data` for threads that update it; :meth:`save` takes it too (re-entrant).
        self.lock = threading.RLock()
        #: Folders the first :meth:`save` created, deepest first: :meth:`delete` removes them when empty.
        self._created_dirs: list[Path] = []

    def read(self) -> dict[str, Any] | None:
        """The existing file's document (its version checked, its identity not), or ``None`` when there is none.

        Raises:
            BadInput: the file cannot be read or has another version.
        """
        if not self.path.exists():
            return None
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise BadInput(
                f"state file {self.path} is unreadable ({exc}): add --restart to start over (or delete it)"
            ) from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            version = data.get("version") if isinstance(data, dict) else None
            raise BadInput(
                f"state file {self.path} has version {version!r}, expected {STATE_VERSION}: resume it with the "
                "cdk-replication that wrote it, or add --restart to start over (or delete it)"
            )
        return data

    def differing(self, data: dict[str, Any]) -> list[str]:
        """The identity fields whose value in ``data`` is not this run's, in identity order."""
        return [name for name, expected in self.identity.items() if data.get(name) != expected]

    def adopt(self, data: dict[str, Any]) -> dict[str, Any]:
        """Continue from ``data`` (an existing document of this run); returns :attr:`data`."""
        self.data = data
        self.resumed = True
        return self.data

    def start(self, **fields: Any) -> dict[str, Any]:
        """A new document (not saved yet) with this run's identity and ``fields``; returns :attr:`data`."""
        self.data = {"version": STATE_VERSION, **self.identity, **fields}
        self.resumed = False
        return self.data

    def load(self) -> dict[str, Any]:
        """Read an existing state (checking its identity) or start an empty one; returns :attr:`data`."""
        data = self.read()
        if data is None:
            return self.start()
        for name in self.differing(data):
            raise BadInput(
                f"state file {self.path} belongs to another run ({name} is {data.get(name)!r}, this run has "
                f"{self.identity[name]!r}): pass another --state-file, or --restart to start over"
            )
        return self.adopt(data)

    def save(self) -> None:
        """Write :attr:`data` atomically (a temporary file in the same folder, then ``os.replace``)."""
        with self.lock:
            if not self.path.parent.is_dir():
                self._created_dirs = [p for p in self.path.parents if not p.exists()]
                self.path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(self.data, indent=1, sort_keys=True)
            fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def delete(self) -> None:
        """Remove the file (the work it tracked is finished), and its folder when that is left empty and is
        either one this object created or the default :data:`DEFAULT_STATE_DIR` (only this tool makes it, e.g.
        in the run a resumed one continues): a finished run leaves nothing behind, and never removes a folder
        of the user's."""
        self.path.unlink(missing_ok=True)
        folders = self._created_dirs or ([self.path.parent] if self.path.parent == DEFAULT_STATE_DIR else [])
        for folder in folders:
            try:
                folder.rmdir()  # refuses a folder that holds anything (another run's state file)
            except OSError:
                break
