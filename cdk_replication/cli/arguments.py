"""Argument types that refuse bad values while parsing, so they end in one line and exit 2, not a traceback.

botocore only checks an endpoint URL or a region when a client is created, deep inside a command, and
raises ``ValueError``/``InvalidRegionError`` there; every such value is checked here first.
"""

from __future__ import annotations

import argparse
import math
import re
import textwrap
from urllib.parse import urlsplit

#: Thread-backed options (``--segments``, ``--workers``) at most: each unit is one thread.
MAX_THREADS = 1000

# botocore's own rule for a region name (a DNS label), so nothing botocore accepts is refused here.
_REGION_RE = re.compile(r"^(?!-)[a-zA-Z0-9-]{1,63}(?<!-)$")


class UsageError(Exception):
    """A bad command line (unknown option, bad value); ``main`` prints it as one line and exits 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors become :class:`UsageError` instead of usage text and ``exit(2)``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; option help wrapped at spaces only, so a path such as
    ``.cdk-replication/backfill-<source>...`` is never split (a long one overflows the line instead)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def thread_count(text: str) -> int:
    """A whole number from 1 to :data:`MAX_THREADS` (one thread each)."""
    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"{text!r} is more than {MAX_THREADS:,} (each one is a thread)")
    return value


def positive_float(text: str) -> float:
    """A finite number greater than 0 (``inf`` and ``nan`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number greater than 0")
    return value


def endpoint_url(text: str) -> str:
    """An ``http://`` or ``https://`` URL with a host, e.g. ``http://127.0.0.1:8000``."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        hint = f"http://{text}" if "://" not in text and text else "http://127.0.0.1:8000"
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an endpoint URL: give the scheme and the host, e.g. {hint}"
        )
    return text


def region(text: str) -> str:
    """A region name (``us-east-1``); botocore's format (letters, digits and inner hyphens)."""
    if not _REGION_RE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a region name, e.g. us-east-1")
    return text


def attribute_name(text: str) -> str:
    """A non-empty attribute name."""
    if not text:
        raise argparse.ArgumentTypeError("an attribute name cannot be empty")
    return text
