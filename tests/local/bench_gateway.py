"""Micro-benchmark of IAM evaluation in the local runtime (not a test: prints, asserts nothing about time).

Run from a checkout:  PYTHONPATH=. .venv/bin/python tests/local/bench_gateway.py [--before path/to/old_iam.py]

It times, per call: ``iam.evaluate`` for a replicator-like role (a few statements, ARNs with wildcards, a
resource policy with a condition), and ``Gateway._authorize`` (which memoises decisions). ``--before`` loads
another copy of iam.py (e.g. ``git show <commit>:cdk_replication/local/iam.py > old.py``) and times it too.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import threading
import timeit
from types import ModuleType
from typing import Any

from cdk_replication.local import iam
from cdk_replication.local.gateway import Gateway, Identity, Role, request_context

SOURCE, REPLICA, REGION = "111111111111", "222222222222", "us-east-1"
ROLE = f"arn:aws:iam::{SOURCE}:role/Replicator"
TABLE = f"arn:aws:dynamodb:{REGION}:{REPLICA}:table/Ledger"
POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "ReadSourceStream", "Effect": "Allow",
     "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
     "Resource": f"arn:aws:dynamodb:us-west-2:{SOURCE}:table/Ledger/stream/*"},
    {"Sid": "ListStreams", "Effect": "Allow", "Action": "dynamodb:ListStreams", "Resource": "*"},
    {"Sid": "WriteTargetTables", "Effect": "Allow",
     "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
                "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem",
                "dynamodb:DescribeTable"],
     "Resource": [TABLE, f"{TABLE}/index/*"]},
    {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
     "Resource": f"arn:aws:logs:us-west-2:{SOURCE}:log-group:/aws/lambda/Replicator:*"},
]}
RESOURCE_POLICY = {"Version": "2012-10-17", "Statement": [{
    "Sid": "Replicator0", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{SOURCE}:root"},
    "Action": ["dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable"], "Resource": TABLE,
    "Condition": {"ArnEquals": {"aws:PrincipalArn": ROLE}}}]}
PRINCIPAL = iam.Principal(ROLE, SOURCE, f"arn:aws:sts::{SOURCE}:assumed-role/Replicator/fn")


def _per_call_us(fn: Any, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def _evaluate(module: ModuleType, context: dict[str, Any]) -> Any:
    principal = module.Principal(PRINCIPAL.arn, PRINCIPAL.account, PRINCIPAL.session_arn)
    return lambda: module.evaluate(principal, "dynamodb:BatchWriteItem", TABLE, identity_policies=[POLICY],
                                   resource_policy=RESOURCE_POLICY, resource_account=REPLICA, context=context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="another iam.py to time as well")
    parser.add_argument("--number", type=int, default=2000, help="calls per timing (default 2000)")
    args = parser.parse_args()
    if args.before:
        spec = importlib.util.spec_from_file_location("iam_before", args.before)
        assert spec and spec.loader
        before = importlib.util.module_from_spec(spec)
        sys.modules["iam_before"] = before  # dataclasses look their module up
        spec.loader.exec_module(before)
        context = {"aws:SecureTransport": "true"}
        print(f"iam.evaluate, before ({args.before}): {_per_call_us(_evaluate(before, context), args.number):8.1f} us")
    print(f"iam.evaluate, now:                 "
          f"{_per_call_us(_evaluate(iam, request_context(REGION)), args.number):8.1f} us")

    gateway = Gateway.__new__(Gateway)  # no server, no DynamoDB Local: only the IAM path
    gateway.enforce_iam = True
    gateway._roles, gateway._resource_policies, gateway._decisions, gateway._generation = {}, {}, {}, 0
    gateway._lock = threading.Lock()
    gateway._roles[ROLE] = Role(ROLE, (POLICY,))
    identity = Identity(PRINCIPAL, role_arn=ROLE)

    def authorize() -> None:
        gateway._authorize(identity, "dynamodb:BatchWriteItem", TABLE, REPLICA, RESOURCE_POLICY, REGION)

    print(f"Gateway._authorize (memoised):     {_per_call_us(authorize, args.number):8.1f} us")


if __name__ == "__main__":
    main()
