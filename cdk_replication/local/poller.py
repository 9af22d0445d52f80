"""A background thread that calls ``step()`` until stopped: the driving loop shared by the event source
mapping emulation and the Kinesis streaming destination bridge."""

from __future__ import annotations

import threading


class BackgroundPoller:
    """Mixin: :meth:`start` runs ``step()`` in a daemon thread (pausing ``_polling_interval()`` seconds after
    a step that did nothing) until :meth:`stop`. An error stops the thread; :meth:`stop` raises it."""

    _thread: threading.Thread | None = None
    _bg_error: BaseException | None = None

    def _init_poller(self) -> None:
        self._thread = None
        self._stop = threading.Event()
        self._bg_error = None

    def step(self) -> int:
        raise NotImplementedError

    def _polling_interval(self) -> float:
        raise NotImplementedError

    def _thread_name(self) -> str:
        return type(self).__name__

    @property
    def background_error(self) -> BaseException | None:
        """The error that stopped the background thread, if any (:meth:`stop` raises it too)."""
        return self._bg_error

    def start(self) -> None:
        """Poll in a background thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self._thread_name(), daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the background thread (the step in progress completes first)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout_s)
        if self._bg_error is not None:
            error, self._bg_error = self._bg_error, None
            raise RuntimeError(f"{self!r} stopped on an error: {error!r}") from error

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                made = self.step()
            except Exception as exc:  # noqa: BLE001 - reported by stop(); the thread must not die silently
                self._bg_error = exc
                return
            if made == 0:
                self._stop.wait(self._polling_interval())
