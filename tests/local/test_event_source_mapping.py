"""Each event source mapping setting and fault hook changes what the function receives, as on Lambda."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cdk_replication.local import LocalFunction, credentials_for_account
from cdk_replication.local.event_source_mapping import MappingSettings, StreamEventSourceMapping
from cdk_replication.local.queue import LocalQueue

from esm_helpers import ACCOUNT, REGION, FakeClock, ScriptedFunction, keys_of, put, stream_table


def _mapping(ddb_local, arn, function, clock=None, destination=None, **settings):
    return StreamEventSourceMapping(
        function,
        arn,
        streams_client=ddb_local.client("dynamodbstreams", region=REGION, account=ACCOUNT),
        region=REGION,
        account=ACCOUNT,
        settings=MappingSettings(**settings),
        destination=destination,
        clock=clock or time.time,
    )


def _keys(n, prefix="k"):
    return [f"{prefix}{i:03d}" for i in range(n)]


def test_batch_size_caps_records_per_invocation(ddb_local):
    client, table, arn = stream_table(ddb_local)
    put(client, table, *_keys(25))
    fn = ScriptedFunction()
    stats = _mapping(ddb_local, arn, fn, batch_size=10).run_until_idle()
    assert [len(b) for b in fn.batches] == [10, 10, 5]
    assert sum(fn.batches, []) == _keys(25)  # stream order
    assert stats.records_processed == 25 and stats.batches_succeeded == 3


def test_event_has_lambdas_shape(ddb_local):
    client, table, arn = stream_table(ddb_local)
    put(client, table, "a")
    fn = ScriptedFunction()
    mapping = _mapping(ddb_local, arn, fn)
    mapping.run_until_idle()
    (record,) = fn.events[0]["Records"]
    assert set(fn.events[0]) == {"Records"}
    assert record["eventSourceARN"] == mapping.event_source_arn
    assert record["eventSourceARN"].startswith(f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/")
    assert record["awsRegion"] == REGION and record["eventName"] == "INSERT"


def test_batching_window_gathers_records_until_it_expires(ddb_local):
    client, table, arn = stream_table(ddb_local)
    clock = FakeClock(time.time())
    fn = ScriptedFunction()
    mapping = _mapping(ddb_local, arn, fn, clock=clock, batch_size=5, maximum_batching_window_s=30)
    put(client, table, "a", "b")
    assert mapping.step() == 0  # window still open: wait for more records
    put(client, table, "c")
    clock.advance(29)
    assert mapping.step() == 0
    clock.advance(2)
    assert mapping.step() == 1
    assert fn.batches == [["a", "b", "c"]]
    put(client, table, *_keys(5))
    assert mapping.step() == 1  # a full batch does not wait for the window
    assert fn.batches[1] == _keys(5)


def test_without_batching_window_records_go_out_at_once(ddb_local):
    client, table, arn = stream_table(ddb_local)
    fn = ScriptedFunction()
    mapping = _mapping(ddb_local, arn, fn, clock=FakeClock(time.time()), batch_size=5)
    put(client, table, "a")
    assert mapping.step() == 1 and fn.batches == [["a"]]


def test_starting_position_latest_skips_older_records(ddb_local):
    client, table, arn = stream_table(ddb_local)
    put(client, table, "old")
    latest, horizon = ScriptedFunction(), ScriptedFunction()
    m_latest = _mapping(ddb_local, arn, latest, starting_position="LATEST")
    m_horizon = _mapping(ddb_local, arn, horizon, starting_position="TRIM_HORIZON")
    put(client, table, "new")
    m_latest.run_until_idle()
    m_horizon.run_until_idle()
    assert sum(latest.batches, []) == ["new"]
    assert sum(horizon.batches, []) == ["old", "new"]


def _poison(key):
    def behaviour(event):
        if key in keys_of(event):
            raise ValueError(f"cannot apply {key}")
    return behaviour


def test_bisect_isolates_a_poison_record(ddb_local):
    client, table, arn = stream_table(ddb_local)
    keys = _keys(8)
    put(client, table, *keys)
    fn = ScriptedFunction(_poison("k005"))
    dlq = LocalQueue("dlq")
    stats = _mapping(ddb_local, arn, fn, destination=dlq, batch_size=8, bisect_batch_on_function_error=True,
                     maximum_retry_attempts=1).run_until_idle()
    # 8 -> [0..3] ok, [4..7] fails -> [4,5] fails -> [4] ok, [5] fails, retried once, discarded -> [6,7] ok
    assert [len(b) for b in fn.batches] == [8, 4, 4, 2, 1, 1, 1, 2]
    (failure,) = dlq.bodies()
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1
    assert failure["requestContext"]["approximateInvokeCount"] == 5  # 8, 4, 2, 1, 1
    delivered_ok = {k for b in fn.batches if "k005" not in b for k in b}
    assert delivered_ok == set(keys) - {"k005"}
    assert stats.records_processed == 7 and stats.records_discarded == 1 and stats.bisections == 3


def test_without_bisect_the_whole_batch_is_discarded(ddb_local):
    client, table, arn = stream_table(ddb_local)
    put(client, table, *_keys(8))
    fn = ScriptedFunction(_poison("k005"))
    dlq = LocalQueue("dlq")
    stats = _mapping(ddb_local, arn, fn, destination=dlq, batch_size=8, maximum_retry_attempts=1).run_until_idle()
    assert [len(b) for b in fn.batches] == [8, 8]
    assert dlq.bodies()[0]["DDBStreamBatchInfo"]["batchSize"] == 8
    assert stats.records_discarded == 8


def test_maximum_retry_attempts_then_on_failure_record(ddb_local):
    client, table, arn = stream_table(ddb_local)
    put(client, table, "a", "b")
    fn = ScriptedFunction(_poison("a"))
    dlq = LocalQueue("dlq")
    mapping = _mapping(ddb_local, arn, fn, destination=dlq, maximum_retry_attempts=2)
    stats = mapping.run_until_idle()
    assert len(fn.events) == 3  # the first attempt and two retries
    assert stats.retries == 2 and stats.function_errors == 3
    (record,) = dlq.bodies()
    seqs = [r["dynamodb"]["SequenceNumber"] for r in fn.events[0]["Records"]]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"] == fn.arn
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["version"] == "1.0"
    info = record["DDBStreamBatchInfo"]
    assert set(info) == {"shardId", "startSequenceNumber", "endSequenceNumber", "approximateArrivalOfFirstRecord",
                         "approximateArrivalOfLastRecord", "batchSize", "streamArn"}
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (seqs[0], seqs[-1], 2)
    assert info["streamArn"] == mapping.event_source_arn
    assert info["shardId"].startswith("shardId-")
    assert record["timestamp"].endswith("Z") and info["approximateArrivalOfFirstRecord"].endswith("Z")


def test_unlimited_retries_hold_the_shard(ddb_local):
    client, table, arn = stream_table(ddb_local)
    put(client, table, "a", "b")
    fn = ScriptedFunction(_poison("a"))
    mapping = _mapping(ddb_local, arn, fn)  # Lambda's default: -1, retry until the record expires
    for _ in range(6):
        mapping.step()
    assert len(fn.events) == 6 and mapping.stats.records_processed == 0
    with pytest.raises(TimeoutError, match="still busy"):
        mapping.run_until_idle(timeout_s=0.5)


def test_maximum_record_age_discards_old_records(ddb_local):
    client, table, arn = stream_table(ddb_local)
    clock = FakeClock(time.time())
    put(client, table, "a", "b")
    fn = ScriptedFunction(_poison("a"))
    dlq = LocalQueue("dlq")
    mapping = _mapping(ddb_local, arn, fn, clock=clock, destination=dlq, maximum_record_age_s=60)
    mapping.step()
    mapping.step()
    assert len(fn.events) == 2 and len(dlq) == 0  # still young: retried
    clock.advance(120)
    mapping.step()
    assert len(fn.events) == 2  # too old: discarded without another invocation
    (record,) = dlq.bodies()
    assert record["requestContext"]["condition"] == "MaximumRecordAgeExceeded"
    assert record["DDBStreamBatchInfo"]["batchSize"] == 2
    put(client, table, "c")
    clock.now = time.time()  # a fresh record is young again
    mapping.run_until_idle()
    assert fn.batches[-1] == ["c"]


def _fail_key(key):
    def behaviour(event):
        for r in event["Records"]:
            if r["dynamodb"]["Keys"]["pk"]["S"] == key:
                return {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]}]}
        return {"batchItemFailures": []}
    return behaviour


def test_report_batch_item_failures_resumes_from_the_lowest_failure(ddb_local):
    client, table, arn = stream_table(ddb_local)
    put(client, table, *_keys(6))
    fails = {"k002": 1, "k004": 2}  # k002 fails once, k004 twice

    def behaviour(event):
        failed = []
        for r in event["Records"]:
            key = r["dynamodb"]["Keys"]["pk"]["S"]
            if fails.get(key):
                fails[key] -= 1
                failed.append({"itemIdentifier": r["dynamodb"]["SequenceNumber"]})
        return {"batchItemFailures": failed[::-1]}  # order in the list does not matter: lowest wins

    fn = ScriptedFunction(behaviour)
    stats = _mapping(ddb_local, arn, fn, report_batch_item_failures=True).run_until_idle()
    assert fn.batches == [_keys(6), _keys(6)[2:], _keys(6)[4:]]
    assert stats.partial_failures == 2 and stats.records_processed == 6


def test_batch_item_failures_are_ignored_without_the_setting(ddb_local):
    client, table, arn = stream_table(ddb_local)
    put(client, table, *_keys(3))
    fn = ScriptedFunction(_fail_key("k001"))
    stats = _mapping(ddb_local, arn, fn).run_until_idle()
    assert fn.batches == [_keys(3)] and stats.retries == 0


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"id": "1"}]},
        {"batchItemFailures": [{"itemIdentifier": "999"}]},
        {"batchItemFailures": "k001"},
    ],
)
def test_malformed_batch_item_failures_fail_the_whole_batch(ddb_local, response):
    client, table, arn = stream_table(ddb_local)
    put(client, table, *_keys(3))
    answers = iter([response])
    fn = ScriptedFunction(lambda event: next(answers, None))
    stats = _mapping(ddb_local, arn, fn, report_batch_item_failures=True).run_until_idle()
    assert fn.batches == [_keys(3), _keys(3)]
    assert stats.malformed_responses == 1


@pytest.mark.parametrize("response", [None, {}, {"batchItemFailures": None}, {"batchItemFailures": []}])
def test_empty_batch_item_failures_mean_success(ddb_local, response):
    client, table, arn = stream_table(ddb_local)
    put(client, table, *_keys(3))
    fn = ScriptedFunction(lambda event: response)
    stats = _mapping(ddb_local, arn, fn, report_batch_item_failures=True).run_until_idle()
    assert fn.batches == [_keys(3)] and stats.retries == 0


def test_partial_failures_count_against_the_retry_quota(ddb_local):
    client, table, arn = stream_table(ddb_local)
    put(client, table, *_keys(4))
    fn = ScriptedFunction(_fail_key("k002"))
    dlq = LocalQueue("dlq")
    _mapping(ddb_local, arn, fn, destination=dlq, report_batch_item_failures=True,
             maximum_retry_attempts=1).run_until_idle()
    assert fn.batches == [_keys(4), ["k002", "k003"]]
    (record,) = dlq.bodies()
    assert record["DDBStreamBatchInfo"]["batchSize"] == 2
    assert "functionError" not in record["responseContext"]  # the function itself succeeded


def test_disabled_mapping_reads_nothing_until_enabled(ddb_local):
    client, table, arn = stream_table(ddb_local)
    put(client, table, "a")
    fn = ScriptedFunction()
    mapping = _mapping(ddb_local, arn, fn, enabled=False)
    mapping.run_until_idle()
    assert fn.events == []
    mapping.enable()
    mapping.run_until_idle()
    assert fn.batches == [["a"]]


def test_pause_and_resume(ddb_local):
    client, table, arn = stream_table(ddb_local)
    fn = ScriptedFunction()
    mapping = _mapping(ddb_local, arn, fn)
    mapping.pause()
    put(client, table, "a")
    assert mapping.step() == 0
    mapping.resume()
    mapping.run_until_idle()
    assert fn.batches == [["a"]]


def test_duplicate_delivery_and_replay(ddb_local):
    client, table, arn = stream_table(ddb_local)
    fn = ScriptedFunction()
    mapping = _mapping(ddb_local, arn, fn)
    mapping.duplicate_next_batches(1)
    put(client, table, "a")
    mapping.run_until_idle()
    assert fn.batches == [["a"], ["a"]] and mapping.stats.duplicates == 1
    put(client, table, "b")
    mapping.run_until_idle()
    mapping.replay_last_batch()
    mapping.run_until_idle()
    assert fn.batches[2:] == [["b"], ["b"]]
    mapping.replay_from_trim_horizon()
    mapping.run_until_idle()
    assert fn.batches[4:] == [["a", "b"]]


def test_delay_slows_invocations(ddb_local):
    client, table, arn = stream_table(ddb_local)
    put(client, table, *_keys(3))
    fn = ScriptedFunction()
    mapping = _mapping(ddb_local, arn, fn, batch_size=1)
    mapping.delay_invocations(0.2, count=2)
    started = time.monotonic()
    mapping.run_until_idle()
    assert 0.4 <= time.monotonic() - started < 5 and len(fn.events) == 3


def test_iterator_age_is_reported(ddb_local):
    client, table, arn = stream_table(ddb_local)
    clock = FakeClock(time.time())
    put(client, table, "a")
    slow = ScriptedFunction(lambda event: clock.advance(10))  # the batch takes 10 s to process
    mapping = _mapping(ddb_local, arn, slow, clock=clock)
    mapping.run_until_idle()
    assert 9_000 <= mapping.stats.iterator_age_ms <= 12_000


def test_background_thread_delivers_new_records(ddb_local):
    client, table, arn = stream_table(ddb_local)
    fn = ScriptedFunction()
    mapping = _mapping(ddb_local, arn, fn, polling_interval_s=0.05)
    mapping.start()
    try:
        put(client, table, "a", "b")
        deadline = time.monotonic() + 10
        while mapping.stats.records_processed < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        mapping.stop()
    assert sum(fn.batches, []) == ["a", "b"]


def test_settings_out_of_range_name_the_value():
    with pytest.raises(ValueError, match="batch_size=0"):
        MappingSettings(batch_size=0)
    with pytest.raises(ValueError, match="starting_position='AT_TIMESTAMP'"):
        MappingSettings(starting_position="AT_TIMESTAMP")


PROBE = Path(__file__).parent / "functions" / "probe"


def test_function_error_and_timeout_are_both_retried(ddb_local, tmp_path):
    # The record's own content tells the probe what to do: sleep past the timeout, or raise.
    client, table, arn = stream_table(ddb_local)
    handler_dir = tmp_path / "code"
    handler_dir.mkdir()
    (handler_dir / "by_record.py").write_text(
        "import os, time\n"
        "def handler(event, context):\n"
        "    key = event['Records'][0]['dynamodb']['Keys']['pk']['S']\n"
        f"    marker = {str(tmp_path / 'slept')!r}\n"
        "    if key == 'slow' and not os.path.exists(marker):\n"  # only the first attempt is slow
        "        open(marker, 'w').close()\n"
        "        time.sleep(5)\n"
        "    if key == 'bad':\n"
        "        raise RuntimeError('bad record')\n"
    )
    fn = LocalFunction("by-record", handler_dir, "by_record.handler", region=REGION, account=ACCOUNT,
                       credentials_env=credentials_for_account(ACCOUNT).as_env(), timeout_s=0.5)
    dlq = LocalQueue("dlq")
    mapping = _mapping(ddb_local, arn, fn, destination=dlq, batch_size=1, maximum_retry_attempts=1)
    put(client, table, "slow", "bad")
    try:
        stats = mapping.run_until_idle()
    finally:
        fn.stop()
    assert fn.stats.timeouts == 1 and fn.stats.cold_starts == 2  # the timeout replaced the container
    assert stats.records_processed == 1 and stats.records_discarded == 1
    assert stats.last_error == "RuntimeError: bad record"
    assert dlq.bodies()[0]["responseContext"]["functionError"] == "Unhandled"


def test_clear_faults_cancels_duplicates_and_delays(ddb_local):
    client, table, arn = stream_table(ddb_local)
    fn = ScriptedFunction()
    mapping = _mapping(ddb_local, arn, fn)
    mapping.duplicate_next_batches(5)
    mapping.delay_invocations(60.0)
    mapping.pause()
    mapping.clear_faults()
    put(client, table, "a")
    started = time.monotonic()
    mapping.run_until_idle()
    assert fn.batches == [["a"]] and time.monotonic() - started < 30


def test_timing_listener_splits_each_records_time_into_poll_assembly_and_invocation(ddb_local):
    client, table, arn = stream_table(ddb_local)
    clock = FakeClock(time.time())

    def slow(event):
        clock.advance(0.5)  # the invocation takes half a second
        return None

    fn = ScriptedFunction(behaviour=slow)
    mapping = _mapping(ddb_local, arn, fn, clock=clock, batch_size=5, maximum_batching_window_s=2)
    timings = []
    mapping.add_timing_listener(timings.extend)
    put(client, table, "a", "b")
    assert mapping.step() == 0  # read now, held for the batching window
    clock.advance(2)
    assert mapping.step() == 1
    assert [t.raw["dynamodb"]["Keys"]["pk"]["S"] for t in timings] == ["a", "b"]
    for t in timings:
        assert t.invoked_at - t.read_at == pytest.approx(2)  # batch assembly: the window
        assert t.finished_at - t.invoked_at == pytest.approx(0.5)  # the invocation
        assert t.created <= t.read_at + 1 and t.attempts == 1  # DynamoDB's creation time is whole seconds


def test_at_the_tip_of_a_steady_stream_a_batch_is_what_one_poll_read(ddb_local):
    # Every read finds one more record (a steady stream is never empty), so reading on until batch_size
    # records are buffered would hold the first record until nine more were written.
    client, table, arn = stream_table(ddb_local)
    put(client, table, "a", "b", "c")
    fn = ScriptedFunction()
    mapping = _mapping(ddb_local, arn, fn, batch_size=10)
    read, written = mapping.source.read, iter(_keys(50, prefix="w"))

    def steady(*args, **kwargs):
        put(client, table, next(written))
        return read(*args, **kwargs)

    mapping.source.read = steady
    assert mapping.step() == 1
    assert len(fn.batches[0]) < 10
