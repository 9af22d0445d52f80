"""LocalFunction runs concurrent invocations as Lambda does: each in a container (process) of its own, idle
containers reused warm, a crash killing only its own container, and ReservedConcurrentExecutions capping the
containers (an invocation beyond it is throttled)."""

from __future__ import annotations

import threading
from pathlib import Path

from cdk_replication.local import LocalFunction

# Each invocation leaves a file named after its process and waits until ``want`` such files exist: it can
# only finish when ``want`` invocations run at the same time (one at a time, the first one times out).
HANDLER = '''
import os, time

def handler(event, context):
    folder = event["folder"]
    open(os.path.join(folder, f"{os.getpid()}-{context.aws_request_id}"), "w").close()
    if event.get("crash"):
        os._exit(3)
    while len(os.listdir(folder)) < event["want"]:
        if context.get_remaining_time_in_millis() < 200:
            raise TimeoutError("the other invocations never ran alongside")
        time.sleep(0.01)
    while event.get("hold") and not os.path.exists(event["hold"]):
        time.sleep(0.01)
    return os.getpid()
'''


def _function(tmp_path: Path, **kwargs) -> LocalFunction:
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.py").write_text(HANDLER)
    return LocalFunction("par", code, "index.handler", region="eu-west-1", account="111111111111",
                         timeout_s=3, **kwargs)


def _invoke_all(fn: LocalFunction, events: list[dict]) -> list:
    results: list = [None] * len(events)

    def run(i: int) -> None:
        results[i] = fn.invoke(events[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(events))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_invocations_run_in_containers_of_their_own_and_are_reused(tmp_path):
    fn = _function(tmp_path)
    try:
        first = tmp_path / "first"
        first.mkdir()
        results = _invoke_all(fn, [{"folder": str(first), "want": 3}] * 3)
        assert [r.error_type for r in results] == [None] * 3
        pids = {r.payload for r in results}
        assert len(pids) == 3 and fn.stats.cold_starts == 3 and fn.containers == 3
        second = tmp_path / "second"
        second.mkdir()
        again = fn.invoke({"folder": str(second), "want": 1})
        assert again.payload in pids and not again.cold_start  # a warm container, no new one
        assert fn.stats.cold_starts == 3
    finally:
        fn.stop()
    assert not fn.running


def test_a_crash_kills_only_its_own_container(tmp_path):
    fn = _function(tmp_path)
    try:
        folder = tmp_path / "run"
        folder.mkdir()
        crashed, survived = _invoke_all(fn, [{"folder": str(folder), "want": 2, "crash": True},
                                             {"folder": str(folder), "want": 2}])
        assert crashed.error_type == "Runtime.ExitError" and survived.error_type is None
        assert fn.containers == 1 and fn.stats.crashes == 1
        again = tmp_path / "again"
        again.mkdir()
        assert fn.invoke({"folder": str(again), "want": 1}).payload == survived.payload
    finally:
        fn.stop()


def test_reserved_concurrency_caps_the_containers_and_throttles(tmp_path):
    fn = _function(tmp_path, reserved_concurrency=1)
    try:
        folder, hold = tmp_path / "run", tmp_path / "hold"
        folder.mkdir()
        busy: list = []
        thread = threading.Thread(target=lambda: busy.append(
            fn.invoke({"folder": str(folder), "want": 1, "hold": str(hold)})))
        thread.start()
        for _ in range(500):  # until the first invocation is in its handler (holding the only container)
            if list(folder.iterdir()):
                break
            threading.Event().wait(0.01)
        refused = fn.invoke({"folder": str(folder), "want": 1})
        hold.touch()
        thread.join()
        assert refused.throttled and refused.error_type == "TooManyRequestsException"
        assert busy[0].error_type is None and fn.stats.throttles == 1 and fn.stats.cold_starts == 1
    finally:
        fn.stop()


def test_a_crash_fault_fires_in_one_of_several_concurrent_invocations(tmp_path):
    # The fault counts DynamoDB writes; this handler makes none, so a carried fault never fires: what is
    # checked is that only one of the concurrent invocations carries it (the others run without it).
    fn = _function(tmp_path)
    try:
        fn.faults.crash_after_writes(1)
        folder = tmp_path / "run"
        folder.mkdir()
        wires: list = []
        original = fn.faults.to_wire_with_refs

        def spy():
            wire, wired = original()
            wires.append(wire["crash_after_writes"])
            return wire, wired

        fn.faults.to_wire_with_refs = spy  # type: ignore[method-assign]
        results = _invoke_all(fn, [{"folder": str(folder), "want": 3}] * 3)
        assert [r.error_type for r in results] == [None] * 3
        assert sorted(wires, key=str) == [1, None, None] and fn.faults.crash_armed
    finally:
        fn.stop()


def test_concurrent_invocations_share_a_write_faults_calls():
    from cdk_replication.local.faults import FunctionFaults

    faults = FunctionFaults()
    fault = faults.throttle_writes("T", calls=40)
    first, first_wired = faults.to_wire_with_refs()
    second, second_wired = faults.to_wire_with_refs()  # runs while the first is in flight
    assert first["write_faults"][0]["calls_left"] == 40 and second["write_faults"][0]["calls_left"] == 0
    faults.apply_usage({"writes": 0, "write_faults_failed": {"0": 15}}, crashed=False, wired=first_wired)
    faults.apply_usage({"writes": 0, "write_faults_failed": {}}, crashed=False, wired=second_wired)
    third, _ = faults.to_wire_with_refs()
    assert fault.failed_calls == 15 and third["write_faults"][0]["calls_left"] == 25
