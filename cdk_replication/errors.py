"""The one exception type the construct library raises for a bad configuration."""

from __future__ import annotations


class ReplicationConfigError(ValueError):
    """A replication construct was given props that cannot be synthesized or would replicate incorrectly.

    Raised at synth time (while the construct is being built), before anything reaches CloudFormation. The
    message names the construct path, the offending value and how to fix it.

    Args:
        construct_path: the path of the construct that refused its props (``node.path``). Required.
        problem: what is wrong, naming the offending value. Required.
        fix: how to fix it. Required.
    """

    def __init__(self, construct_path: str, problem: str, fix: str) -> None:
        self.construct_path = construct_path
        self.problem = problem
        self.fix = fix
        super().__init__(f"{construct_path}: {problem}. Fix: {fix}")
