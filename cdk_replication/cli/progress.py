"""A progress line on stderr: rewritten in place on a terminal, printed every few seconds otherwise."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

#: Seconds between redraws on a terminal.
TTY_INTERVAL_S = 0.25
#: Seconds between printed lines when stderr is a file or pipe (CI logs stay readable).
LOG_INTERVAL_S = 10.0


def format_duration(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``42s``."""
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Draws ``render()`` on ``stream`` from a background thread until :meth:`close`.

    Args:
        render: returns the current line (without newline); called from the progress thread.
        stream: where to draw; default ``sys.stderr``.
        enabled: ``False`` (``--quiet``) draws nothing.
        interval: seconds between lines; default 0.25 s on a terminal, 10 s otherwise.
    """

    def __init__(
        self,
        render: Callable[[], str],
        stream: TextIO | None = None,
        enabled: bool = True,
        interval: float | None = None,
    ) -> None:
        self._render = render
        self._stream = stream or sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._interval = interval or (TTY_INTERVAL_S if self._tty else LOG_INTERVAL_S)
        self._enabled = enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0

    def __enter__(self) -> "Progress":
        if self._enabled:
            self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop drawing and leave the last line on screen."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._draw(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._draw(final=False)

    def _draw(self, final: bool) -> None:
        line = self._render()
        if self._tty:
            # Pad over the previous, possibly longer, line; newline only at the end.
            self._stream.write("\r" + line.ljust(self._width) + ("\n" if final else ""))
            self._width = len(line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()


class Rate:
    """Counts done units against elapsed time and estimates the time left.

    Args:
        total: expected units (e.g. DescribeTable's ItemCount, refreshed only about every six hours);
            0 means unknown, so no ETA is shown.
    """

    def __init__(self, total: int = 0) -> None:
        self.total = total
        self.started = time.monotonic()

    def describe(self, done: int) -> str:
        """``1234 items/s, ETA 3m05s`` (the ETA only when a total is known and not yet reached)."""
        elapsed = max(1e-6, time.monotonic() - self.started)
        per_second = done / elapsed
        text = f"{per_second:,.0f} items/s"
        if self.total and per_second > 0 and done < self.total:
            text += f", ETA {format_duration((self.total - done) / per_second)}"
        return text
