"""The local IAM evaluator decides as AWS does, and refuses to guess where it cannot.

The policy documents below are written out literally in the shapes our constructs synthesize (intrinsics
resolved, as the gateway hands them over): the replicator role's policy (``Replicator._statements``), a target
table's resource policy naming the replicator role by condition (``_resource_policy`` with ``_only_role``:
the account as principal, ``ArnEquals aws:PrincipalArn`` as condition), and a writer role's trust policy.
"""

from __future__ import annotations

from typing import Any

import pytest

from cdk_replication.local.iam import (
    UNKNOWN,
    Decision,
    PolicyError,
    Principal,
    denied_message,
    evaluate,
    service_may_assume,
)

SRC = "111111111111"
DST = "222222222222"
OTHER = "333333333333"
REPLICATOR_ROLE = f"arn:aws:iam::{SRC}:role/orders-replicator-eu-west-1"
REPLICATOR = Principal(
    arn=REPLICATOR_ROLE,
    account=SRC,
    session_arn=f"arn:aws:sts::{SRC}:assumed-role/orders-replicator-eu-west-1/orders-replicator-fn",
)
#: Another role of the source account (the "wrong principal of the right account").
INTRUDER = Principal(
    arn=f"arn:aws:iam::{SRC}:role/intruder",
    account=SRC,
    session_arn=f"arn:aws:sts::{SRC}:assumed-role/intruder/s",
)
SOURCE_TABLE = f"arn:aws:dynamodb:eu-west-1:{SRC}:table/orders"
SOURCE_STREAM = f"{SOURCE_TABLE}/stream/2026-11-30T02:00:00.000"
TARGET_TABLE = f"arn:aws:dynamodb:us-east-1:{DST}:table/orders"
SAME_ACCOUNT_TARGET = f"arn:aws:dynamodb:us-east-1:{SRC}:table/orders"
WRITER_ROLE = f"arn:aws:iam::{DST}:role/orders-writer-us-east-1-{SRC}-eu-west-1"
WRITE_ACTIONS = ["dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:DescribeTable"]


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


#: The replicator role's policy as synthesized (RESOURCE_POLICY mode: targets named by table ARN).
REPLICATOR_POLICY = doc(
    {
        "Sid": "ReadSourceStream",
        "Effect": "Allow",
        "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
        "Resource": SOURCE_STREAM,
    },
    {"Sid": "ListStreams", "Effect": "Allow", "Action": "dynamodb:ListStreams", "Resource": "*"},
    {
        "Sid": "WriteOwnLogGroup",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": f"arn:aws:logs:eu-west-1:{SRC}:log-group:/aws/lambda/orders-replicator:*",
    },
    {
        "Sid": "WriteTargetTables",
        "Effect": "Allow",
        "Action": WRITE_ACTIONS,
        "Resource": [TARGET_TABLE, SAME_ACCOUNT_TARGET],
    },
    {"Sid": "AssumeWriterRoles", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": WRITER_ROLE},
)

#: The target table's resource policy: the source account as principal, the replicator role by condition.
TABLE_POLICY = doc(
    {
        "Sid": "Replicator0",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{SRC}:root"},
        "Action": WRITE_ACTIONS,
        "Resource": TARGET_TABLE,
        "Condition": {"ArnEquals": {"aws:PrincipalArn": REPLICATOR_ROLE}},
    }
)

#: A writer role's trust policy (ASSUME_ROLE mode): same shape, action sts:AssumeRole, no Resource.
TRUST_POLICY = doc(
    {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{SRC}:root"},
        "Action": "sts:AssumeRole",
        "Condition": {"ArnEquals": {"aws:PrincipalArn": REPLICATOR_ROLE}},
    }
)

NO_IDENTITY = "because no identity-based policy allows the {} action"
NO_RESOURCE = "because no resource-based policy allows the {} action"
IDENTITY_DENY = "with an explicit deny in an identity-based policy"
RESOURCE_DENY = "with an explicit deny in a resource-based policy"
ALLOWED = "allowed"


def decide(
    principal: Principal = REPLICATOR,
    action: str = "dynamodb:PutItem",
    resource: str = TARGET_TABLE,
    identity: list[dict[str, Any]] | None = None,
    resource_policy: dict[str, Any] | None = None,
    account: str | None = None,
    context: dict[str, Any] | None = None,
) -> Decision:
    """evaluate() with the synthesized shapes as defaults; the resource's account is read from its ARN."""
    return evaluate(
        principal,
        action,
        resource,
        identity_policies=[REPLICATOR_POLICY] if identity is None else identity,
        resource_policy=resource_policy,
        resource_account=account or (SRC if resource == "*" else resource.split(":")[4]),
        context=context,
    )


def reason(template: str, action: str = "dynamodb:PutItem") -> str:
    return template.format(action)


# ------------------------------------------------------------------------- the synthesized shapes end to end

SYNTHESIZED_CASES = [
    # id, principal, action, resource, identity, resource policy, expected reason
    ("cross-account allowed by both", REPLICATOR, "dynamodb:PutItem", TARGET_TABLE, None, TABLE_POLICY, ALLOWED),
    ("cross-account identity only", REPLICATOR, "dynamodb:PutItem", TARGET_TABLE, None, None,
     reason(NO_RESOURCE)),
    ("cross-account resource policy only", REPLICATOR, "dynamodb:PutItem", TARGET_TABLE, [], TABLE_POLICY,
     reason(NO_IDENTITY)),
    ("wrong role of the right account", INTRUDER, "dynamodb:PutItem", TARGET_TABLE, None, TABLE_POLICY,
     reason(NO_RESOURCE)),
    ("action the table policy omits", REPLICATOR, "dynamodb:UpdateItem", TARGET_TABLE,
     [doc({"Effect": "Allow", "Action": "dynamodb:*", "Resource": TARGET_TABLE})], TABLE_POLICY,
     reason(NO_RESOURCE, "dynamodb:UpdateItem")),
    ("missing identity permission", REPLICATOR, "dynamodb:UpdateItem", TARGET_TABLE, None, TABLE_POLICY,
     reason(NO_IDENTITY, "dynamodb:UpdateItem")),
    ("same account by identity policy", REPLICATOR, "dynamodb:PutItem", SAME_ACCOUNT_TARGET, None, None, ALLOWED),
    ("same account, other table", REPLICATOR, "dynamodb:PutItem",
     f"arn:aws:dynamodb:us-east-1:{SRC}:table/payments", None, None, reason(NO_IDENTITY)),
    ("index ARN is not the table ARN", REPLICATOR, "dynamodb:Query", f"{SAME_ACCOUNT_TARGET}/index/byDate",
     [doc({"Effect": "Allow", "Action": "dynamodb:Query", "Resource": SAME_ACCOUNT_TARGET})], None,
     reason(NO_IDENTITY, "dynamodb:Query")),
    ("stream read (colons in the stream label)", REPLICATOR, "dynamodb:GetRecords", SOURCE_STREAM, None, None,
     ALLOWED),
    ("ListStreams on *", REPLICATOR, "dynamodb:ListStreams", "*", None, None, ALLOWED),
    ("log stream under the log group", REPLICATOR, "logs:PutLogEvents",
     f"arn:aws:logs:eu-west-1:{SRC}:log-group:/aws/lambda/orders-replicator:log-stream:2026/11/30/abc", None, None,
     ALLOWED),
    ("assume the writer role: both allow", REPLICATOR, "sts:AssumeRole", WRITER_ROLE, None, TRUST_POLICY, ALLOWED),
    ("assume the writer role: wrong role", INTRUDER, "sts:AssumeRole", WRITER_ROLE,
     [doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"})], TRUST_POLICY,
     reason(NO_RESOURCE, "sts:AssumeRole")),
    ("assume the writer role: no identity permission", REPLICATOR, "sts:AssumeRole", WRITER_ROLE, [], TRUST_POLICY,
     reason(NO_IDENTITY, "sts:AssumeRole")),
]


@pytest.mark.parametrize(
    ("principal", "action", "resource", "identity", "resource_policy", "expected"),
    [case[1:] for case in SYNTHESIZED_CASES],
    ids=[case[0] for case in SYNTHESIZED_CASES],
)
def test_synthesized_shapes(
    principal: Principal,
    action: str,
    resource: str,
    identity: list[dict[str, Any]] | None,
    resource_policy: dict[str, Any] | None,
    expected: str,
) -> None:
    decision = decide(principal, action, resource, identity, resource_policy)
    assert decision == Decision(expected == ALLOWED, expected)


def test_denied_message_is_aws_text() -> None:
    decision = decide(resource_policy=None)
    assert denied_message(REPLICATOR, "dynamodb:PutItem", TARGET_TABLE, decision) == (
        f"User: arn:aws:sts::{SRC}:assumed-role/orders-replicator-eu-west-1/orders-replicator-fn is not "
        f"authorized to perform: dynamodb:PutItem on resource: {TARGET_TABLE} because no resource-based policy "
        "allows the dynamodb:PutItem action"
    )
    with pytest.raises(ValueError, match="denied decision"):
        denied_message(REPLICATOR, "dynamodb:PutItem", TARGET_TABLE, decide(resource_policy=TABLE_POLICY))


# ----------------------------------------------------------------------------------- explicit deny wins

DENY_PUT = {"Effect": "Deny", "Action": "dynamodb:PutItem", "Resource": "*"}


@pytest.mark.parametrize(
    ("identity", "resource_policy", "expected"),
    [
        ([REPLICATOR_POLICY, doc(DENY_PUT)], TABLE_POLICY, IDENTITY_DENY),
        ([doc(DENY_PUT, *REPLICATOR_POLICY["Statement"])], TABLE_POLICY, IDENTITY_DENY),
        (None, doc(*TABLE_POLICY["Statement"], {**DENY_PUT, "Principal": "*"}), RESOURCE_DENY),
        # A deny naming only the caller's account applies to the caller too.
        (None, doc(*TABLE_POLICY["Statement"], {**DENY_PUT, "Principal": {"AWS": SRC}}), RESOURCE_DENY),
        # A deny for another account, or for a service, does not apply to the caller.
        (None, doc(*TABLE_POLICY["Statement"], {**DENY_PUT, "Principal": {"AWS": OTHER}}), ALLOWED),
        (None, doc(*TABLE_POLICY["Statement"], {**DENY_PUT, "Principal": {"Service": "lambda.amazonaws.com"}}),
         ALLOWED),
        # A deny for another action does not apply.
        ([doc({**DENY_PUT, "Action": "dynamodb:DeleteItem"}), REPLICATOR_POLICY], TABLE_POLICY, ALLOWED),
    ],
    ids=["identity deny", "deny in the same document", "resource deny", "resource deny by account",
         "deny for another account", "deny for a service", "deny for another action"],
)
def test_explicit_deny_wins(
    identity: list[dict[str, Any]] | None, resource_policy: dict[str, Any], expected: str
) -> None:
    decision = decide(identity=identity, resource_policy=resource_policy)
    assert decision == Decision(expected == ALLOWED, expected)


def test_explicit_deny_wins_in_the_same_account_too() -> None:
    table_policy = doc({**DENY_PUT, "Principal": {"AWS": REPLICATOR_ROLE}})
    assert decide(resource=SAME_ACCOUNT_TARGET, resource_policy=table_policy).reason == RESOURCE_DENY


# ------------------------------------------------------------------------- same account vs cross account


def allow_put(principal: Any, **extra: Any) -> dict[str, Any]:
    return doc({"Effect": "Allow", "Principal": principal, "Action": "dynamodb:PutItem", **extra})


SAME_ACCOUNT_CASES = [
    # id, identity, resource policy, expected
    ("no policy at all", [], None, reason(NO_IDENTITY)),
    ("identity only", None, None, ALLOWED),
    ("resource policy names the role", [], allow_put({"AWS": REPLICATOR_ROLE}), ALLOWED),
    ("resource policy names the session", [], allow_put({"AWS": REPLICATOR.session_arn}), ALLOWED),
    ("resource policy names another session", [],
     allow_put({"AWS": f"arn:aws:sts::{SRC}:assumed-role/orders-replicator-eu-west-1/other"}), reason(NO_IDENTITY)),
    ("resource policy names everyone", [], allow_put("*"), ALLOWED),
    ("resource policy names AWS *", [], allow_put({"AWS": "*"}), ALLOWED),
    # Naming the account delegates to the account's identity policies: it grants nothing by itself.
    ("resource policy names the account only", [], allow_put({"AWS": SRC}), reason(NO_IDENTITY)),
    ("resource policy names the account root only", [], allow_put({"AWS": f"arn:aws:iam::{SRC}:root"}),
     reason(NO_IDENTITY)),
    ("resource policy names another role", [], allow_put({"AWS": f"arn:aws:iam::{SRC}:role/intruder"}),
     reason(NO_IDENTITY)),
    ("resource policy names a list with the role", [],
     allow_put({"AWS": [f"arn:aws:iam::{SRC}:role/intruder", REPLICATOR_ROLE]}), ALLOWED),
    ("resource policy names a service", [], allow_put({"Service": "dynamodb.amazonaws.com"}), reason(NO_IDENTITY)),
]


@pytest.mark.parametrize(
    ("identity", "resource_policy", "expected"),
    [case[1:] for case in SAME_ACCOUNT_CASES],
    ids=[case[0] for case in SAME_ACCOUNT_CASES],
)
def test_same_account_either_policy_allows(
    identity: list[dict[str, Any]] | None, resource_policy: dict[str, Any] | None, expected: str
) -> None:
    decision = decide(resource=SAME_ACCOUNT_TARGET, identity=identity, resource_policy=resource_policy)
    assert decision == Decision(expected == ALLOWED, expected)


CROSS_ACCOUNT_CASES = [
    ("by account number", allow_put({"AWS": SRC}), ALLOWED),
    ("by account root", allow_put({"AWS": f"arn:aws:iam::{SRC}:root"}), ALLOWED),
    ("by role", allow_put({"AWS": REPLICATOR_ROLE}), ALLOWED),
    ("by session", allow_put({"AWS": REPLICATOR.session_arn}), ALLOWED),
    ("by everyone", allow_put("*"), ALLOWED),
    ("another account", allow_put({"AWS": OTHER}), reason(NO_RESOURCE)),
    ("another partition", allow_put({"AWS": f"arn:aws-cn:iam::{SRC}:root"}), reason(NO_RESOURCE)),
    ("another role", allow_put({"AWS": f"arn:aws:iam::{SRC}:role/intruder"}), reason(NO_RESOURCE)),
    ("a federated principal", allow_put({"Federated": "cognito-identity.amazonaws.com"}), reason(NO_RESOURCE)),
    ("statement for another resource", allow_put({"AWS": SRC}, Resource=f"{TARGET_TABLE}-other"),
     reason(NO_RESOURCE)),
    ("empty statement list", doc(), reason(NO_RESOURCE)),
]


@pytest.mark.parametrize(
    ("resource_policy", "expected"),
    [case[1:] for case in CROSS_ACCOUNT_CASES],
    ids=[case[0] for case in CROSS_ACCOUNT_CASES],
)
def test_cross_account_needs_both(resource_policy: dict[str, Any], expected: str) -> None:
    decision = decide(resource_policy=resource_policy)
    assert decision == Decision(expected == ALLOWED, expected)


def test_cross_account_without_identity_permission_names_the_identity_policy() -> None:
    assert decide(identity=[doc()], resource_policy=allow_put({"AWS": REPLICATOR_ROLE})).reason == reason(NO_IDENTITY)


# --------------------------------------------------------------------------------- trust policy (same account)

SAME_ACCOUNT_ROLE = f"arn:aws:iam::{SRC}:role/writer"
IDENTITY_ASSUME = doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": SAME_ACCOUNT_ROLE})


def trust(principal: Any) -> dict[str, Any]:
    return doc({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"})


TRUST_CASES = [
    # The trust policy is required even in the same account, unlike a table's resource policy.
    ("identity allows, no trust policy", [IDENTITY_ASSUME], None, reason(NO_RESOURCE, "sts:AssumeRole")),
    ("identity allows, trust names a service", [IDENTITY_ASSUME], trust({"Service": "lambda.amazonaws.com"}),
     reason(NO_RESOURCE, "sts:AssumeRole")),
    ("trust names the role directly, no identity", [], trust({"AWS": REPLICATOR_ROLE}), ALLOWED),
    ("trust names the session directly, no identity", [], trust({"AWS": REPLICATOR.session_arn}), ALLOWED),
    ("trust names the account, no identity", [], trust({"AWS": SRC}), reason(NO_IDENTITY, "sts:AssumeRole")),
    ("trust names the account, identity allows", [IDENTITY_ASSUME], trust({"AWS": SRC}), ALLOWED),
    ("trust names the account root, identity allows", [IDENTITY_ASSUME], trust({"AWS": f"arn:aws:iam::{SRC}:root"}),
     ALLOWED),
]


@pytest.mark.parametrize(
    ("identity", "trust_policy", "expected"),
    [case[1:] for case in TRUST_CASES],
    ids=[case[0] for case in TRUST_CASES],
)
def test_trust_policy_is_required_in_the_same_account(
    identity: list[dict[str, Any]], trust_policy: dict[str, Any] | None, expected: str
) -> None:
    decision = decide(action="sts:AssumeRole", resource=SAME_ACCOUNT_ROLE, identity=identity,
                      resource_policy=trust_policy)
    assert decision == Decision(expected == ALLOWED, expected)


def test_key_policy_is_required_in_the_same_account_too() -> None:
    key = f"arn:aws:kms:eu-west-1:{SRC}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    identity = identity_allowing(Action="kms:Decrypt", Resource=key)
    key_policy = doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{SRC}:root"}, "Action": "kms:*",
                      "Resource": "*"})
    assert decide(action="kms:Decrypt", resource=key, identity=identity).reason == reason(NO_RESOURCE, "kms:Decrypt")
    assert decide(action="kms:Decrypt", resource=key, identity=identity, resource_policy=key_policy).allowed
    assert not decide(action="kms:Decrypt", resource=key, identity=[], resource_policy=key_policy).allowed


def test_the_root_user_cannot_assume_a_role() -> None:
    root = Principal(arn=f"arn:aws:iam::{SRC}:root", account=SRC)
    decision = decide(principal=root, action="sts:AssumeRole", resource=SAME_ACCOUNT_ROLE, identity=[],
                      resource_policy=trust({"AWS": SRC}))
    assert not decision.allowed


# ------------------------------------------------------------------------------- action and resource matching


def identity_allowing(**statement: Any) -> list[dict[str, Any]]:
    return [doc({"Effect": "Allow", **statement})]


MATCHING_CASES = [
    # id, statement, action, resource, allowed
    ("action exact", {"Action": "dynamodb:PutItem", "Resource": SAME_ACCOUNT_TARGET}, "dynamodb:PutItem", True),
    ("action case-insensitive", {"Action": "DynamoDB:putitem", "Resource": SAME_ACCOUNT_TARGET},
     "dynamodb:PutItem", True),
    ("action service wildcard", {"Action": "dynamodb:*", "Resource": SAME_ACCOUNT_TARGET}, "dynamodb:PutItem", True),
    ("action star", {"Action": "*", "Resource": SAME_ACCOUNT_TARGET}, "dynamodb:PutItem", True),
    ("action prefix wildcard", {"Action": "dynamodb:Batch*", "Resource": SAME_ACCOUNT_TARGET},
     "dynamodb:BatchWriteItem", True),
    ("action prefix wildcard, other action", {"Action": "dynamodb:Batch*", "Resource": SAME_ACCOUNT_TARGET},
     "dynamodb:PutItem", False),
    ("action ? wildcard", {"Action": "dynamodb:?etItem", "Resource": SAME_ACCOUNT_TARGET}, "dynamodb:GetItem", True),
    ("action ? is one character", {"Action": "dynamodb:?etItem", "Resource": SAME_ACCOUNT_TARGET},
     "dynamodb:PutItemX", False),
    ("other service", {"Action": "dynamodb:*", "Resource": "*"}, "sqs:SendMessage", False),
    ("NotAction excludes", {"NotAction": "dynamodb:DeleteItem", "Resource": SAME_ACCOUNT_TARGET},
     "dynamodb:DeleteItem", False),
    ("NotAction allows the rest", {"NotAction": ["dynamodb:DeleteItem"], "Resource": SAME_ACCOUNT_TARGET},
     "dynamodb:PutItem", True),
    ("resource case-sensitive", {"Action": "dynamodb:PutItem", "Resource": SAME_ACCOUNT_TARGET.upper()},
     "dynamodb:PutItem", False),
    ("resource wildcard per segment", {"Action": "dynamodb:PutItem", "Resource": "arn:aws:dynamodb:*:*:table/ord*"},
     "dynamodb:PutItem", True),
    ("resource ? wildcard", {"Action": "dynamodb:PutItem", "Resource": "arn:aws:dynamodb:us-east-?:*:table/orders"},
     "dynamodb:PutItem", True),
    ("resource wildcard, other account",
     {"Action": "dynamodb:PutItem", "Resource": f"arn:aws:dynamodb:*:{DST}:table/*"}, "dynamodb:PutItem", False),
    # A '*' ending a segment runs past colons (AWS's documented rule).
    ("resource segment-final star crosses colons", {"Action": "dynamodb:PutItem", "Resource": "arn:aws:dynamodb:*"},
     "dynamodb:PutItem", True),
    ("NotResource excludes", {"Action": "dynamodb:PutItem", "NotResource": SAME_ACCOUNT_TARGET},
     "dynamodb:PutItem", False),
    ("NotResource allows the rest",
     {"Action": "dynamodb:PutItem", "NotResource": [f"arn:aws:dynamodb:us-east-1:{SRC}:table/payments"]},
     "dynamodb:PutItem", True),
]


@pytest.mark.parametrize(
    ("statement", "action", "allowed"),
    [case[1:] for case in MATCHING_CASES],
    ids=[case[0] for case in MATCHING_CASES],
)
def test_action_and_resource_matching(statement: dict[str, Any], action: str, allowed: bool) -> None:
    decision = decide(action=action, resource=SAME_ACCOUNT_TARGET, identity=identity_allowing(**statement))
    assert decision.allowed is allowed


def test_not_resource_deny_spares_only_the_listed_resource() -> None:
    identity = [
        doc(
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "dynamodb:*", "NotResource": SAME_ACCOUNT_TARGET},
        )
    ]
    assert decide(resource=SAME_ACCOUNT_TARGET, identity=identity).allowed
    other = f"arn:aws:dynamodb:us-east-1:{SRC}:table/payments"
    assert decide(resource=other, identity=identity).reason == IDENTITY_DENY


def test_a_star_inside_a_segment_that_would_have_to_cross_a_colon_is_refused() -> None:
    # Whether AWS lets 'dyn*db' span "dynamodb:us-east-1" is not documented: refuse rather than guess.
    identity = identity_allowing(Action="dynamodb:PutItem", Resource="arn:aws:dyn*1:*:table/orders")
    with pytest.raises(PolicyError, match="crosses a colon"):
        decide(resource=SAME_ACCOUNT_TARGET, identity=identity)


# ------------------------------------------------------------------------------------------------ conditions


def conditioned(condition: dict[str, Any]) -> list[dict[str, Any]]:
    return identity_allowing(Action="dynamodb:PutItem", Resource=SAME_ACCOUNT_TARGET, Condition=condition)


SECURE = {"aws:SecureTransport": "true"}
SOURCE = {"aws:SourceArn": f"arn:aws:lambda:eu-west-1:{SRC}:function:orders-replicator"}

CONDITION_CASES = [
    # id, condition, context, allowed
    ("ArnEquals PrincipalArn: the role", {"ArnEquals": {"aws:PrincipalArn": REPLICATOR_ROLE}}, None, True),
    ("ArnEquals PrincipalArn: another role", {"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{SRC}:role/x"}},
     None, False),
    ("ArnEquals with wildcards", {"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::*:role/orders-*"}}, None, True),
    ("ArnLike", {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{SRC}:role/orders-?eplicator-*"}}, None, True),
    ("ArnNotEquals the role", {"ArnNotEquals": {"aws:PrincipalArn": REPLICATOR_ROLE}}, None, False),
    ("ArnNotLike another role", {"ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::{SRC}:role/x*"}}, None, True),
    ("ArnLike on absent key", {"ArnLike": {"aws:SourceArn": "arn:aws:lambda:*"}}, None, False),
    ("ArnLike on SourceArn", {"ArnLike": {"aws:SourceArn": "arn:aws:lambda:*:*:function:orders-*"}}, SOURCE, True),
    ("StringEquals PrincipalAccount", {"StringEquals": {"aws:PrincipalAccount": SRC}}, None, True),
    ("StringEquals other account", {"StringEquals": {"aws:PrincipalAccount": OTHER}}, None, False),
    ("StringEquals values ORed", {"StringEquals": {"aws:PrincipalAccount": [OTHER, SRC]}}, None, True),
    ("StringEquals is case-sensitive", {"StringEquals": {"aws:PrincipalType": "assumedrole"}}, None, False),
    ("StringEqualsIgnoreCase", {"StringEqualsIgnoreCase": {"aws:PrincipalType": "assumedrole"}}, None, True),
    ("StringNotEquals", {"StringNotEquals": {"aws:PrincipalAccount": OTHER}}, None, True),
    ("StringNotEquals values NORed", {"StringNotEquals": {"aws:PrincipalAccount": [OTHER, SRC]}}, None, False),
    ("StringLike", {"StringLike": {"aws:PrincipalArn": "*:role/orders-*"}}, None, True),
    ("StringNotLike", {"StringNotLike": {"aws:PrincipalArn": "*:role/orders-*"}}, None, False),
    ("condition key names are case-insensitive", {"StringEquals": {"AWS:PRINCIPALACCOUNT": SRC}}, None, True),
    ("keys ANDed: one fails", {"StringEquals": {"aws:PrincipalAccount": SRC, "aws:PrincipalType": "User"}},
     None, False),
    ("operators ANDed: one fails",
     {"StringEquals": {"aws:PrincipalAccount": SRC}, "Bool": {"aws:SecureTransport": "true"}}, None, False),
    ("operators ANDed: all hold",
     {"StringEquals": {"aws:PrincipalAccount": SRC}, "Bool": {"aws:SecureTransport": "true"}}, SECURE, True),
    ("Bool from context", {"Bool": {"aws:SecureTransport": "true"}}, SECURE, True),
    ("Bool with a JSON boolean", {"Bool": {"aws:SecureTransport": True}}, SECURE, True),
    ("Bool false vs true", {"Bool": {"aws:SecureTransport": "false"}}, SECURE, False),
    ("Bool on absent key", {"Bool": {"aws:SecureTransport": "true"}}, None, False),
    ("negated operator on absent key holds", {"StringNotEquals": {"aws:SourceAccount": OTHER}}, None, True),
    ("IfExists on absent key holds", {"StringEqualsIfExists": {"aws:SourceAccount": OTHER}}, None, True),
    ("IfExists on present key compares", {"StringEqualsIfExists": {"aws:SourceAccount": OTHER}},
     {"aws:SourceAccount": SRC}, False),
    ("Null true on absent key", {"Null": {"aws:SourceArn": "true"}}, None, True),
    ("Null false on absent key", {"Null": {"aws:SourceArn": "false"}}, None, False),
    ("Null false on present key", {"Null": {"aws:SourceArn": "false"}}, SOURCE, True),
    ("Null false on a key of unknown value", {"Null": {"aws:SourceIp": "false"}}, {"aws:SourceIp": UNKNOWN}, True),
    ("a key declared absent in context", {"StringEquals": {"aws:PrincipalOrgID": "o-123"}},
     {"aws:PrincipalOrgID": None}, False),
    ("NumericLessThan", {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}, {"aws:MultiFactorAuthAge": "60"},
     True),
    ("NumericGreaterThanEquals", {"NumericGreaterThanEquals": {"aws:MultiFactorAuthAge": 3600}},
     {"aws:MultiFactorAuthAge": "60"}, False),
    ("IpAddress", {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "10.1.2.3"}, True),
    ("NotIpAddress", {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": "10.1.2.3"}, False),
    ("ForAnyValue: one matches", {"ForAnyValue:StringEquals": {"aws:CalledVia": ["athena.amazonaws.com"]}},
     {"aws:CalledVia": ["dynamodb.amazonaws.com", "athena.amazonaws.com"]}, True),
    ("ForAnyValue: absent key", {"ForAnyValue:StringEquals": {"aws:CalledVia": "athena.amazonaws.com"}}, None, False),
    ("ForAllValues: one does not match", {"ForAllValues:StringEquals": {"aws:CalledVia": "athena.amazonaws.com"}},
     {"aws:CalledVia": ["dynamodb.amazonaws.com", "athena.amazonaws.com"]}, False),
    ("ForAllValues: absent key holds", {"ForAllValues:StringEquals": {"aws:CalledVia": "athena.amazonaws.com"}},
     None, True),
]


@pytest.mark.parametrize(
    ("condition", "context", "allowed"),
    [case[1:] for case in CONDITION_CASES],
    ids=[case[0] for case in CONDITION_CASES],
)
def test_conditions(condition: dict[str, Any], context: dict[str, Any] | None, allowed: bool) -> None:
    decision = decide(resource=SAME_ACCOUNT_TARGET, identity=conditioned(condition), context=context)
    assert decision.allowed is allowed


def test_principal_keys_of_a_user_and_of_the_root() -> None:
    user = Principal(arn=f"arn:aws:iam::{SRC}:user/ops/alice", account=SRC)
    condition = {"StringEquals": {"aws:username": "alice", "aws:PrincipalType": "User"}}
    assert decide(principal=user, resource=SAME_ACCOUNT_TARGET, identity=conditioned(condition)).allowed
    # A role session has no aws:username: a condition on it fails.
    no_username = conditioned({"StringEquals": {"aws:username": "x"}})
    assert not decide(resource=SAME_ACCOUNT_TARGET, identity=no_username).allowed
    root = Principal(arn=f"arn:aws:iam::{SRC}:root", account=SRC)
    table_policy = doc({**DENY_PUT, "Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalType": "Account"}}})
    assert decide(principal=root, resource=SAME_ACCOUNT_TARGET, identity=[]).allowed
    assert decide(principal=root, resource=SAME_ACCOUNT_TARGET, identity=[],
                  resource_policy=table_policy).reason == RESOURCE_DENY
    assert decide(principal=root, identity=[]).reason == reason(NO_RESOURCE)


def test_context_cannot_contradict_the_principal() -> None:
    with pytest.raises(ValueError, match="contradicts the principal"):
        decide(context={"aws:PrincipalArn": INTRUDER.arn})


# ----------------------------------------------------------------------- what the evaluator refuses to guess

REFUSED = [
    # id, where, policy, message fragment
    ("unknown condition operator", "identity",
     conditioned({"StringEqualsMaybe": {"aws:PrincipalAccount": SRC}}), "unknown condition operator"),
    ("unknown operator in a statement that does not apply", "identity",
     identity_allowing(Action="sqs:SendMessage", Resource="*", Condition={"Foo": {"aws:PrincipalAccount": SRC}}),
     "unknown condition operator 'Foo'"),
    ("unsupported Date operator", "identity",
     conditioned({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}), "not supported"),
    ("unknown set qualifier", "identity",
     conditioned({"ForSomeValues:StringEquals": {"aws:PrincipalAccount": SRC}}), "unknown condition set operator"),
    ("condition key unknown for this request", "identity",
     conditioned({"StringEquals": {"aws:PrincipalOrgID": "o-123"}}), "aws:PrincipalOrgID"),
    ("condition key unknown, in a deny", "identity",
     [REPLICATOR_POLICY, doc({**DENY_PUT, "Condition": {"StringEquals": {"aws:PrincipalTag/team": "x"}}})],
     "aws:PrincipalTag/team"),
    ("ForAnyValue with a negated operator on an absent key", "identity",
     conditioned({"ForAnyValue:StringNotEquals": {"aws:CalledVia": "athena.amazonaws.com"}}), "no documented result"),
    ("Null with IfExists", "identity", conditioned({"NullIfExists": {"aws:SourceArn": "true"}}),
     "not a valid condition operator"),
    ("single-valued operator on a multivalued key", "identity+context",
     conditioned({"StringEquals": {"aws:CalledVia": "athena.amazonaws.com"}}), "ForAnyValue"),
    ("NotPrincipal", "resource",
     doc({"Effect": "Deny", "NotPrincipal": {"AWS": REPLICATOR_ROLE}, "Action": "*", "Resource": "*"}),
     "NotPrincipal"),
    ("wildcard principal ARN", "resource", allow_put({"AWS": f"arn:aws:iam::{SRC}:role/*"}), "wildcards"),
    ("CanonicalUser principal", "resource", allow_put({"CanonicalUser": "79a59df900b949e55d96a1e698fbace"}),
     "CanonicalUser"),
    ("unique-id principal", "resource", allow_put({"AWS": "AROAEXAMPLEID"}), "AROAEXAMPLEID"),
    ("resource statement without Principal", "resource",
     doc({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TARGET_TABLE}), "needs a Principal"),
    ("identity statement with Principal", "identity",
     [doc({"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"})], "cannot have a Principal"),
    ("identity statement without Resource", "identity",
     [doc({"Effect": "Allow", "Action": "dynamodb:PutItem"})], "needs Resource or NotResource"),
    ("Action and NotAction", "identity",
     identity_allowing(Action="dynamodb:PutItem", NotAction="dynamodb:GetItem", Resource="*"), "exactly one"),
    ("unresolved intrinsic", "identity",
     identity_allowing(Action="dynamodb:PutItem", Resource={"Fn::GetAtt": ["Table", "Arn"]}), "intrinsics"),
    ("policy variable", "identity",
     identity_allowing(Action="dynamodb:PutItem", Resource="arn:aws:dynamodb:*:*:table/${aws:username}"),
     "policy variables"),
    ("bad Effect", "identity", [doc({"Effect": "allow", "Action": "*", "Resource": "*"})], "Effect"),
    ("unknown statement element", "identity",
     [doc({"Effect": "Allow", "Action": "*", "Resource": "*", "Conditions": {}})], "Conditions"),
    ("no Statement", "identity", [{"Version": "2012-10-17"}], "Statement"),
    ("unknown Version", "identity", [{"Version": "2020-01-01", "Statement": []}], "Version"),
]


@pytest.mark.parametrize(
    ("where", "policy", "fragment"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED]
)
def test_refuses_what_it_cannot_evaluate_exactly(where: str, policy: Any, fragment: str) -> None:
    kwargs: dict[str, Any] = {}
    if where.startswith("identity"):
        kwargs["identity"] = policy
        kwargs["resource"] = SAME_ACCOUNT_TARGET
    else:
        kwargs["resource_policy"] = policy
    if where.endswith("+context"):
        kwargs["context"] = {"aws:CalledVia": ["dynamodb.amazonaws.com", "athena.amazonaws.com"]}
    with pytest.raises(PolicyError, match=fragment.replace("$", r"\$").replace("{", r"\{")):
        decide(**kwargs)


def test_statement_may_be_a_single_object_and_elements_single_strings() -> None:
    identity = [{"Version": "2012-10-17",
                 "Statement": {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": SAME_ACCOUNT_TARGET}}]
    assert decide(resource=SAME_ACCOUNT_TARGET, identity=identity).allowed


def test_an_empty_statement_list_allows_nothing() -> None:
    assert decide(resource=SAME_ACCOUNT_TARGET, identity=[doc()]).reason == reason(NO_IDENTITY)


@pytest.mark.parametrize(
    "principal",
    [
        Principal(arn=REPLICATOR_ROLE, account=DST),
        Principal(arn="arn:aws:sts::111111111111:assumed-role/R/s", account=SRC),
        Principal(arn=REPLICATOR_ROLE, account=SRC, session_arn=f"arn:aws:sts::{SRC}:assumed-role/other/s"),
        Principal(arn=f"arn:aws:iam::{SRC}:user/alice", account=SRC,
                  session_arn=f"arn:aws:sts::{SRC}:assumed-role/alice/s"),
    ],
    ids=["account mismatch", "session ARN as identity", "session of another role", "session of a user"],
)
def test_malformed_principal_is_refused(principal: Principal) -> None:
    with pytest.raises(ValueError, match="Principal"):
        decide(principal=principal)


# ------------------------------------------------------------------------------- keys of unknown value


@pytest.mark.parametrize("operator", ["IpAddress", "NotIpAddress", "IpAddressIfExists"])
@pytest.mark.parametrize("effect", ["Allow", "Deny"])
def test_a_condition_on_a_key_of_unknown_value_is_refused(operator: str, effect: str) -> None:
    # AWS sets aws:SourceIp on every call; reading it as absent would skip a Deny (or an Allow's IfExists).
    statement = {"Effect": effect, "Action": "dynamodb:PutItem", "Resource": "*",
                 "Condition": {operator: {"aws:SourceIp": "0.0.0.0/0"}}}
    with pytest.raises(PolicyError, match="aws:SourceIp"):
        decide(resource=SAME_ACCOUNT_TARGET, identity=[doc(statement)], context={"aws:SourceIp": UNKNOWN})


# ------------------------------------------------------------------------------ service trust policies

LAMBDA = "lambda.amazonaws.com"


@pytest.mark.parametrize(("statements", "allowed"), [
    ([{"Effect": "Allow", "Principal": {"Service": LAMBDA}, "Action": "sts:AssumeRole"}], True),
    ([{"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com", LAMBDA]}, "Action": ["sts:*"]}], True),
    ([{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}], True),
    ([{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}], False),
    ([{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{SRC}:root"}, "Action": "sts:AssumeRole"}], False),
    ([{"Effect": "Allow", "Principal": {"Service": LAMBDA}, "Action": "sts:TagSession"}], False),
    ([{"Effect": "Allow", "Principal": {"Service": LAMBDA}, "NotAction": "sts:AssumeRole"}], False),
    ([{"Effect": "Allow", "Principal": {"Service": LAMBDA}, "Action": "sts:AssumeRole"},
      {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}], False),
    ([], False),
])
def test_service_may_assume(statements: list[dict[str, Any]], allowed: bool) -> None:
    assert service_may_assume(doc(*statements), LAMBDA) is allowed


def test_service_may_assume_refuses_to_guess_a_condition() -> None:
    statement = {"Effect": "Allow", "Principal": {"Service": LAMBDA}, "Action": "sts:AssumeRole",
                 "Condition": {"StringEquals": {"aws:SourceAccount": SRC}}}
    with pytest.raises(PolicyError, match="Condition"):
        service_may_assume(doc(statement), LAMBDA)
    assert service_may_assume(None, LAMBDA) is False
