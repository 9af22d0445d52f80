"""Adversarial review of ``LocalFunction.update_configuration`` (branch r14a, contract A.5): a configuration set
by an update must reach the next invocation that starts, whatever the threads do. (Fixed: a lock of its own guards the read and the clear.)

``_take_pending`` reads the pending configuration and then clears it (``pending, self._pending = self._pending,
None``) without a lock that ``update_configuration`` also takes, so an update landing between the read and the
write is dropped: the function keeps its OLD configuration for good (its replicator keeps the old targets while
the published parameter lists the new ones). The test makes that interleaving deterministic: the read of
``_pending`` lets a second thread run ``update_configuration`` before ``_take_pending`` goes on (waiting at most
half a second for it, so a fixed version, where that thread waits for the lock, passes instead of hanging).
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any


from cdk_replication.local.lambda_runtime import FunctionConfiguration, LocalFunction


class _RacyFunction(LocalFunction):
    """A LocalFunction whose next read of ``_pending`` lets another thread's update in before it returns."""

    armed = False
    racing_update: FunctionConfiguration | None = None
    racer: threading.Thread | None = None

    @property  # type: ignore[override]
    def _pending(self) -> Any:
        value = self.__dict__.get("_pending_value")
        if self.armed:
            self.armed = False
            self.racer = threading.Thread(target=self.update_configuration, args=(self.racing_update,))
            self.racer.start()
            self.racer.join(timeout=0.5)  # a correct version blocks this update until the take is complete
        return value

    @_pending.setter
    def _pending(self, value: Any) -> None:
        self.__dict__["_pending_value"] = value


def test_an_update_landing_while_an_invocation_starts_is_not_lost(tmp_path: Path):
    (tmp_path / "index.py").write_text("def handler(event, context):\n    return None\n")
    function = _RacyFunction("review-fn", tmp_path, "index.handler", {"TARGETS": "v1"}, region="eu-west-1",
                             account="111111111111")
    v2 = dataclasses.replace(function.configuration(), environment={"TARGETS": "v2"})
    v3 = dataclasses.replace(function.configuration(), environment={"TARGETS": "v3"})
    function.update_configuration(v2)
    function.armed, function.racing_update = True, v3
    with function._lock:  # as invoke() does
        function._take_pending()  # the invocation that starts now takes v2 ...
    assert function.racer is not None
    function.racer.join(timeout=5)  # the update call has returned (at once, or once the take released a lock)
    # ... and v3, set while it was starting, must be what the next invocation starts with.
    assert function.configuration().environment == {"TARGETS": "v3"}
