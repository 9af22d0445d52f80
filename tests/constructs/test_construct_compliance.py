"""cdk-nag (AwsSolutions) and cfn-lint over every synthesized stack of every shape."""

from __future__ import annotations

from typing import Any

from cfnlint.api import lint_all
from construct_helpers import Synthesized

#: cfn-lint rules ignored, with why:
#: - I4010 (informational) asks for a free-text ``Metadata.com.aws.cloudformation.Context`` architecture
#:   description on templates and resources; it documents nothing CloudFormation or the replicator uses.
#: - I1022 (informational) prefers Fn::Sub to Fn::Join; CDK renders every token-bearing string with
#:   Fn::Join, so the constructs cannot choose.
IGNORED_RULES = {"I4010", "I1022"}


def _is_cdk_function_role_depends_on(match: Any, template: dict[str, Any]) -> bool:
    """W3005 on a Lambda function's DependsOn its own role: aws-cdk-lib's Function always adds that DependsOn
    (needed when a role has a separate default policy); redundant with the Role GetAtt here, and harmless."""
    path = list(match.path)
    if match.rule.id != "W3005" or len(path) != 4 or path[0] != "Resources" or path[2] != "DependsOn":
        return False
    resource = template["Resources"][path[1]]
    return resource["Type"] == "AWS::Lambda::Function" and resource["Properties"]["Role"] == {
        "Fn::GetAtt": [resource["DependsOn"][path[3]], "Arn"]
    }


def test_cdk_nag_aws_solutions_has_no_unacknowledged_findings(any_shape: Synthesized) -> None:
    report = any_shape.nag_report()
    assert any_shape.nag_error is None, report
    assert report["pluginReports"] == []


def test_cfn_lint_has_no_findings(any_shape: Synthesized) -> None:
    findings = []
    for stack in any_shape.stacks():
        template = any_shape.template_json(stack.stack_name)
        path = any_shape.assembly.get_stack_by_name(stack.stack_name).template_full_path
        with open(path, encoding="utf-8") as handle:
            matches = lint_all(handle.read())
        for match in matches:
            if match.rule.id in IGNORED_RULES or _is_cdk_function_role_depends_on(match, template):
                continue
            findings.append((stack.stack_name, match.rule.id, match.message))
    assert findings == []


def test_cdk_nag_catches_a_violation_in_this_setup(tmp_path: Any) -> None:
    """The nag harness itself works: an unencrypted, non-TLS queue is reported (so an empty report above
    means something)."""
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs
    from construct_helpers import synth

    def build(app: cdk.App) -> None:
        stack = cdk.Stack(app, "Probe", env=cdk.Environment(account="111111111111", region="us-east-1"))
        sqs.Queue(stack, "Queue")

    probe = synth(tmp_path, build)
    assert probe.nag_error is not None
    rules = {v["ruleName"] for r in probe.nag_report()["pluginReports"] for v in r["violations"]}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules
