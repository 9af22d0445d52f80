"""Lag-aware re-reads (single-machine verify and from exports) and ``verify --from-exports`` end to end."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

from cdk_replication.cli.tables import Connection, TableRef, describe_table
from cdk_replication.cli.verify import VerifyOptions, recheck, run_verify


def test_recheck_reports_only_what_every_round_still_sees() -> None:
    """A key the replica catches up with in round 3 settles with 3 rounds and is reported with 2; the pause
    is taken only between rounds that still have keys to read."""
    reads: dict[str, int] = {}

    def classify(key: Any) -> tuple[str, list[str]]:
        reads[key] = reads.get(key, 0) + 1
        if key == "lagging" and reads[key] >= 3:
            return "same", []
        return ("different", ["v"]) if key != "gone" else ("missing", [])

    pauses: list[float] = []
    assert recheck(["lagging", "gone"], classify, 2, rounds=3, pause=0.5, sleep=pauses.append) == {
        "gone": ("missing", [])}
    assert pauses == [0.5, 0.5]
    reads.clear()
    assert set(recheck(["lagging", "gone"], classify, 2, rounds=2, pause=0, sleep=pauses.append)) == {"lagging", "gone"}
    pauses.clear()
    assert recheck(["lagging"], lambda k: ("same", []), 2, rounds=3, pause=9, sleep=pauses.append) == {}
    assert pauses == []  # settled in the first round: no wait


class Lagging:
    """The target's client, behind by one write: ``catch_up`` runs just before the ``after``-th GetItem."""

    def __init__(self, real: Any, catch_up: Any, after: int) -> None:
        self._real, self._catch_up, self._left = real, catch_up, after

    def get_item(self, **kwargs: Any) -> Any:
        self._left -= 1
        if self._left == 0:
            self._catch_up()
        return self._real.get_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_single_machine_verify_waits_out_a_lagging_replica(local, ddb, table) -> None:
    source, target = table("lsrc"), table("ltgt")
    for name in (source, target):
        ddb.put_item(TableName=name, Item={"pk": {"S": "same"}, "v": {"N": "1"}})
    ddb.put_item(TableName=source, Item={"pk": {"S": "late"}, "v": {"N": "2"}})
    ddb.put_item(TableName=target, Item={"pk": {"S": "late"}, "v": {"N": "1"}})  # the replicator is behind
    ddb.put_item(TableName=source, Item={"pk": {"S": "wrong"}, "v": {"N": "2"}})
    ddb.put_item(TableName=target, Item={"pk": {"S": "wrong"}, "v": {"N": "3"}})  # a real difference
    conn = Connection(endpoint_url=local.endpoint_url)

    def verify(rounds: int) -> Any:
        src = describe_table(conn, TableRef.parse(source), "source")
        tgt = describe_table(conn, TableRef.parse(target), "target")
        late = ddb.get_item(TableName=source, Key={"pk": {"S": "late"}})["Item"]
        ddb.put_item(TableName=target, Item={**late, "v": {"N": "1"}})
        # One target read per differing key per round, two keys: the 5th target read is in round 3.
        tgt.client = Lagging(tgt.client, lambda: ddb.put_item(TableName=target, Item=late), after=5)
        return run_verify(src, tgt, VerifyOptions(segments=1, workers=1, recheck_rounds=rounds, recheck_pause=0),
                          progress_stream=io.StringIO(), show_progress=False)

    once = verify(1)
    assert sorted(k[0] for k in once.different) == ["late", "wrong"]
    settled = verify(3)
    assert [k[0] for k in settled.different] == ["wrong"] and settled.settled_on_reread == 1
    assert settled.different_attributes == {("wrong",): ["v"]}


def test_verify_from_exports_reports_what_persists_repairs_it_and_says_where_the_report_is(
        spark, ddb, table, export_table, cli, tmp_path) -> None:
    """The target's export was taken while the replica lagged on one key and held a real difference on
    another; by the time of the re-reads the lag is gone. Only the real difference is reported; --repair
    fixes it from the same exports."""
    source, target = table("esrc"), table("etgt")
    for i in range(6):
        ddb.put_item(TableName=source, Item={"pk": {"S": f"k{i}"}, "v": {"N": "1"}})
        ddb.put_item(TableName=target, Item={"pk": {"S": f"k{i}"}, "v": {"N": "1"}})
    ddb.put_item(TableName=target, Item={"pk": {"S": "k1"}, "v": {"N": "0"}})  # lagging when exported...
    ddb.put_item(TableName=target, Item={"pk": {"S": "k2"}, "v": {"N": "7"}})  # ...and really different
    ddb.delete_item(TableName=target, Key={"pk": {"S": "k3"}})  # really missing
    exports = [str(export_table(source)), str(export_table(target))]
    ddb.put_item(TableName=target, Item={"pk": {"S": "k1"}, "v": {"N": "1"}})  # the replica caught up
    report = tmp_path / "report"

    code, doc, err = cli("verify", source, target, "--from-exports", *exports, "--report", str(report),
                         "--recheck-pause", "0", "--json")
    assert code == 1, err
    assert [k["pk"]["S"] for k in doc["different"]] == ["k2"] and doc["differentAttributes"] == [["v"]]
    assert [k["pk"]["S"] for k in doc["missing"]] == ["k3"] and doc["extra"] == []
    assert doc["settledOnReread"] == 1 and doc["reread"] is True and doc["matching"] == 3
    job_doc = json.loads((report / "report.json").read_text())  # the exports' own comparison, before re-reads
    assert sorted(k["pk"]["S"] for k in job_doc["different"]) == ["k1", "k2"]
    assert err.rstrip().splitlines()[-1] == f"the exports' comparison (before the re-reads): {report / 'report.json'}"

    code, doc, err = cli("verify", source, target, "--from-exports", *exports, "--report", str(report),
                         "--recheck-pause", "0", "--repair", "--json", "--quiet")
    assert code == 0, err
    assert doc["repair"]["counts"] == {"repaired": 2}
    assert cli("verify", source, target, "--quiet")[0] == 0


def test_from_exports_without_pyspark_names_the_extra(cli, table, monkeypatch, tmp_path) -> None:
    source, target = table("nsrc"), table("ntgt")
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark now raises ImportError
    code, text, err = cli("verify", source, target, "--from-exports", str(tmp_path), str(tmp_path))
    assert code == 2
    assert "pip install 'cdk-replication[spark]'" in err and "--glue-job" in err


def test_from_exports_options_are_checked_before_anything_runs(cli, table) -> None:
    source, target = table("osrc"), table("otgt")
    code, _, err = cli("verify", source, target, "--glue-job", "j")
    assert code == 2 and "only applies to --from-exports" in err
    code, _, err = cli("verify", source, target, "--from-exports", "s3://b/a", "/local/b", "--glue-job", "j",
                       "--report", "s3://b/r")
    assert code == 2 and "give s3:// URIs" in err


class _FakeGlue:
    """Glue and S3 as ``--glue-job`` uses them: a run that is RUNNING once, then SUCCEEDED, and its report."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report, self.started, self.polls, self.read = report, [], 0, []

    def client(self, service: str, region: Any) -> Any:
        return self

    def start_job_run(self, JobName: str, Arguments: dict[str, str]) -> dict[str, str]:
        self.started.append((JobName, Arguments))
        return {"JobRunId": "jr_1"}

    def get_job_run(self, JobName: str, RunId: str) -> dict[str, Any]:
        self.polls += 1
        return {"JobRun": {"JobRunState": "RUNNING" if self.polls == 1 else "SUCCEEDED"}}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.read.append(f"s3://{Bucket}/{Key}")
        return {"Body": io.BytesIO(json.dumps(self.report).encode())}


def test_glue_job_is_started_with_the_exports_and_its_report_is_rechecked(cli, ddb, table, monkeypatch) -> None:
    """Starting the job on AWS cannot run here (docs/local-runtime.md): Glue and S3 are stand-ins; what is
    checked is what the CLI asks Glue for and what it does with the report."""
    from cdk_replication.cli import verify_exports

    source, target = table("gsrc"), table("gtgt")
    ddb.put_item(TableName=source, Item={"pk": {"S": "gone"}, "v": {"N": "1"}})
    ddb.put_item(TableName=source, Item={"pk": {"S": "late"}, "v": {"N": "1"}})
    ddb.put_item(TableName=target, Item={"pk": {"S": "late"}, "v": {"N": "1"}})
    report = {"command": "verify", "inSync": False, "sourceItems": 2, "targetItems": 0, "matching": 0,
              "sourceTombstones": 0, "targetTombstones": 0, "settledOnReread": 0, "reread": False,
              "missing": [{"pk": {"S": "gone"}}, {"pk": {"S": "late"}}], "extra": [], "different": [],
              "differentAttributes": [], "seconds": 1.0}
    fake = _FakeGlue(report)
    monkeypatch.setattr(verify_exports, "connections", lambda args: (fake, fake))
    code, doc, err = cli("verify", source, target, "--from-exports", "s3://ex/a/AWSDynamoDB/1", "s3://ex/b",
                         "--glue-job", "orders-verify", "--report", "s3://res/orders/run1", "--poll-interval", "0.01",
                         "--recheck-pause", "0", "--json", "--quiet")
    assert code == 1, err
    # The job is told which tables the exports must be of (it refuses others before reading a line).
    tables = {side: ddb.describe_table(TableName=name)["Table"] for side, name in (("source", source),
                                                                                   ("target", target))}
    identities = {f"--{side}-table-{what}": t[field] for side, t in tables.items()
                  for what, field in (("arn", "TableArn"), ("id", "TableId")) if t.get(field)}
    assert fake.started == [("orders-verify", {
        "--source-export": "s3://ex/a/AWSDynamoDB/1", "--target-export": "s3://ex/b", "--key": "pk",
        "--output": "s3://res/orders/run1", "--metadata-prefix": "_rep_", "--no-metadata-prefix": "false",
        **identities})]
    assert "--source-table-arn" in identities
    assert fake.read == ["s3://res/orders/run1/report.json"]
    assert doc["missing"] == [{"pk": {"S": "gone"}}] and doc["settledOnReread"] == 1
    assert err.rstrip().endswith("s3://res/orders/run1/report.json")
