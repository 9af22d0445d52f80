"""``ExportVerifyJob``: the Glue 5.0 job of ``verify --from-exports --glue-job`` (issue 16).

IAM is pinned statement by statement: the role reads exactly the two export prefixes, writes exactly the
result prefix, reads its own two code assets, and writes Glue's logs and metrics. cdk-nag and cfn-lint run
over the stack. The shipped library zip is imported on its own, with no checkout on the path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from cfnlint.api import lint_all
from construct_helpers import SOURCE_ACCOUNT, Synthesized, only_resource, partition_arn, synth

from cdk_replication import ExportVerifyJob
from cdk_replication.errors import ReplicationConfigError

IGNORED_LINT = {"I4010", "I1022"}  # as test_construct_compliance.py, for the same reasons


@pytest.fixture(scope="module")
def verify_job(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    def build(app: cdk.App) -> ExportVerifyJob:
        stack = cdk.Stack(app, "Verify", env=cdk.Environment(account=SOURCE_ACCOUNT, region="us-east-1"))
        return ExportVerifyJob(stack, "OrdersVerify", source_exports="s3://exports-a/orders",
                               target_exports="s3://exports-b/replica/orders", results="s3://results/orders",
                               job_name="orders-verify", workers=4)

    return synth(tmp_path_factory.mktemp("verify-job"), build)


def _template(s: Synthesized) -> dict[str, Any]:
    return s.template_json("Verify")


def test_the_job_runs_the_spark_script_on_glue_5(verify_job: Synthesized) -> None:
    props = only_resource(_template(verify_job), "AWS::Glue::Job")["Properties"]
    assert props["GlueVersion"] == "5.0" and props["Name"] == "orders-verify"
    assert props["Command"]["Name"] == "glueetl" and props["Command"]["PythonVersion"] == "3"
    assert props["Command"]["ScriptLocation"].startswith("s3://cdk-") and props["Command"]["ScriptLocation"].endswith(".py")
    assert props["DefaultArguments"]["--extra-py-files"].endswith(".zip")
    assert props["DefaultArguments"]["--metadata-prefix"] == "_rep_"
    assert props["DefaultArguments"]["--no-metadata-prefix"] == "false"  # a flag of its own: no spelling collides
    assert props["DefaultArguments"]["--job-bookmark-option"] == "job-bookmark-disable"
    assert (props["WorkerType"], props["NumberOfWorkers"], props["MaxRetries"]) == ("G.1X", 4, 0)


def test_the_role_can_do_exactly_what_the_job_does(verify_job: Synthesized) -> None:
    template = _template(verify_job)
    role_id = next(k for k, v in template["Resources"].items() if v["Type"] == "AWS::IAM::Role")
    role = template["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [{
        "Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"}}]
    assert "ManagedPolicyArns" not in role and "Policies" not in role
    (policy,) = [v for v in template["Resources"].values()
                 if v["Type"] == "AWS::IAM::Policy" and v["Properties"]["Roles"] == [{"Ref": role_id}]]
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    code = statements.pop("ReadJobCode")
    assert code["Action"] == "s3:GetObject" and len(code["Resource"]) == 2  # the two assets' object ARNs
    logs = ":logs:us-east-1:111111111111:log-group:/aws-glue/jobs/*"
    assert statements == {
        "ReadSourceExports": {"Sid": "ReadSourceExports", "Effect": "Allow", "Action": "s3:GetObject",
                              "Resource": partition_arn(":s3:::exports-a/orders/*")},
        "ListSourceExports": {"Sid": "ListSourceExports", "Effect": "Allow", "Action": "s3:ListBucket",
                              "Resource": partition_arn(":s3:::exports-a"),
                              "Condition": {"StringLike": {"s3:prefix": ["orders", "orders/*"]}}},
        "ReadTargetExports": {"Sid": "ReadTargetExports", "Effect": "Allow", "Action": "s3:GetObject",
                              "Resource": partition_arn(":s3:::exports-b/replica/orders/*")},
        "ListTargetExports": {"Sid": "ListTargetExports", "Effect": "Allow", "Action": "s3:ListBucket",
                              "Resource": partition_arn(":s3:::exports-b"),
                              "Condition": {"StringLike": {"s3:prefix": ["replica/orders", "replica/orders/*"]}}},
        "WriteResults": {"Sid": "WriteResults", "Effect": "Allow", "Action": "s3:PutObject",
                         "Resource": partition_arn(":s3:::results/orders/*")},
        "WriteGlueLogs": {"Sid": "WriteGlueLogs", "Effect": "Allow",
                          "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                          "Resource": [partition_arn(logs), partition_arn(logs + ":*")]},
        "WriteGlueMetrics": {"Sid": "WriteGlueMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData",
                             "Resource": "*", "Condition": {"StringEquals": {"cloudwatch:namespace": "Glue"}}},
    }


def test_cdk_nag_and_cfn_lint_are_clean(verify_job: Synthesized) -> None:
    assert verify_job.nag_error is None, verify_job.nag_report()
    assert verify_job.nag_report()["pluginReports"] == []
    path = verify_job.assembly.get_stack_by_name("Verify").template_full_path
    findings = [(m.rule.id, m.message) for m in lint_all(Path(path).read_text()) if m.rule.id not in IGNORED_LINT]
    assert findings == []


def test_the_shipped_library_runs_the_job_on_its_own(verify_job: Synthesized, tmp_path: Path) -> None:
    """The zip asset holds everything the script imports and no aws_cdk: the job's parser and a line's digest
    work from it with no checkout on the path (as on Glue)."""
    props = only_resource(_template(verify_job), "AWS::Glue::Job")["Properties"]
    asset_hash = props["DefaultArguments"]["--extra-py-files"].rsplit("/", 1)[1][: -len(".zip")]
    staged = verify_job.outdir / f"asset.{asset_hash}"
    assert (staged / "cdk_replication" / "cli" / "items.py").is_file()
    code = ("import sys, cdk_replication.spark.job as j, cdk_replication.spark.lines as l;"
            "assert 'aws_cdk' not in sys.modules and 'boto3' not in sys.modules;"
            "print(l.parse_line('{\"Item\":{\"pk\":{\"S\":\"a\"},\"n\":{\"N\":\"1.50\"}}}', ['pk'], '_rep_')[0])")
    run = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(staged)!r}); {code}"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"pk": {"S": "a"}}


@pytest.mark.parametrize("bad", ["exports-a/orders", "s3://exports-a", "s3://exports-a/", "s3://Bad_Bucket/x"])
def test_locations_must_be_literal_s3_prefixes(bad: str) -> None:
    stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(account=SOURCE_ACCOUNT, region="us-east-1"))
    with pytest.raises(ReplicationConfigError):
        ExportVerifyJob(stack, "J", source_exports=bad, target_exports="s3://b/t", results="s3://b/r")


def test_a_bucket_of_the_app_may_name_a_location(tmp_path: Path) -> None:
    """``f"s3://{bucket.bucket_name}/orders"``: the bucket is a token (known at deploy time), the prefix a
    literal, so the grant is still exactly that prefix; a location that is one token (no literal prefix to
    bound the grant) stays refused."""
    from aws_cdk import aws_s3 as s3

    def build(app: cdk.App) -> ExportVerifyJob:
        stack = cdk.Stack(app, "Verify", env=cdk.Environment(account=SOURCE_ACCOUNT, region="us-east-1"))
        bucket = s3.Bucket(stack, "Exports", enforce_ssl=True, server_access_logs_prefix="access/",
                           block_public_access=s3.BlockPublicAccess.BLOCK_ALL)
        return ExportVerifyJob(stack, "OrdersVerify", source_exports=f"s3://{bucket.bucket_name}/orders",
                               target_exports="s3://exports-b/replica", results=f"s3://{bucket.bucket_name}/results")

    synthesized = synth(tmp_path, build)
    template = synthesized.template_json("Verify")
    (policy,) = [v for v in template["Resources"].values() if v["Type"] == "AWS::IAM::Policy"]
    read = next(s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == "ReadSourceExports")
    bucket_id = next(k for k, v in template["Resources"].items() if v["Type"] == "AWS::S3::Bucket")
    assert read["Resource"] == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Ref": bucket_id},
                                                  "/orders/*"]]}
    assert synthesized.nag_error is None, synthesized.nag_report()
    stack = cdk.Stack(cdk.App(), "S", env=cdk.Environment(account=SOURCE_ACCOUNT, region="us-east-1"))
    with pytest.raises(ReplicationConfigError):
        ExportVerifyJob(stack, "J", source_exports=cdk.Token.as_string(cdk.Fn.ref("AWS::NoValue")),
                        target_exports="s3://b/t", results="s3://b/r")
