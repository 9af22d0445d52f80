"""Resolve the CloudFormation intrinsic functions of a synthesized template to literal values.

Covers what CDK templates use for the resources the local deploy creates: ``Ref``, ``Fn::GetAtt``,
``Fn::Join``, ``Fn::Sub`` (both forms), ``Fn::Select``, ``Fn::Split``, ``Fn::ImportValue`` (cross-stack
references), ``Fn::If``/``Fn::Equals``/``Fn::Not``/``Fn::And``/``Fn::Or``/``Condition``, ``Fn::GetAZs``,
``Fn::Base64``, the pseudo parameters, and parameters with defaults. Anything else is reported with the
path of the value inside the template.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

#: What ``Ref: AWS::NoValue`` resolves to: the key holding it is dropped.
NO_VALUE = object()

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """A template cannot be deployed locally; the message names the stack, the path and the fix."""


def partition_of(region: str) -> tuple[str, str]:
    """(partition, URL suffix) of ``region``."""
    if region.startswith("cn-"):
        return "aws-cn", "amazonaws.com.cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov", "amazonaws.com"
    return "aws", "amazonaws.com"


class Resolver:
    """Resolves intrinsics in one stack.

    Args:
        stack_name: the stack's name (``AWS::StackName``).
        region: the stack's region.
        account: the stack's account.
        parameters: resolved parameter values by name.
        ref: returns the ``Ref`` value of a resource by logical id.
        get_att: returns ``Fn::GetAtt`` of a resource by logical id and attribute name.
        exports: the values exported by stacks deployed so far, by export name.
        conditions: the template's ``Conditions`` section.
    """

    def __init__(
        self,
        stack_name: str,
        region: str,
        account: str,
        parameters: dict[str, Any],
        ref: Callable[[str], Any],
        get_att: Callable[[str, str], Any],
        exports: dict[str, Any],
        conditions: dict[str, Any] | None = None,
    ) -> None:
        partition, suffix = partition_of(region)
        self.stack_name = stack_name
        self._pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": partition,
            "AWS::URLSuffix": suffix,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{account}:stack/{stack_name}/local",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        self._parameters = parameters
        self._ref = ref
        self._get_att = get_att
        self._exports = exports
        self._conditions = conditions or {}
        self._condition_values: dict[str, bool] = {}

    def _fail(self, path: str, problem: str) -> TemplateError:
        return TemplateError(f"stack {self.stack_name}, {path}: {problem}")

    def condition(self, name: str, path: str = "Conditions") -> bool:
        """The value of a named condition."""
        if name not in self._condition_values:
            if name not in self._conditions:
                raise self._fail(path, f"condition {name!r} is not defined in the template's Conditions")
            self._condition_values[name] = bool(self.resolve(self._conditions[name], f"Conditions.{name}"))
        return self._condition_values[name]

    def resolve(self, value: Any, path: str = "") -> Any:
        """``value`` with every intrinsic function replaced by its literal result."""
        if isinstance(value, list):
            out = [self.resolve(v, f"{path}[{i}]") for i, v in enumerate(value)]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            handler = _FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, arg, f"{path}.{key}")
            if key.startswith("Fn::"):
                raise self._fail(path, f"intrinsic function {key} is not supported by the local deploy")
        out = {k: self.resolve(v, f"{path}.{k}") for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    # --- functions ------------------------------------------------------------------------------------

    def _fn_ref(self, name: Any, path: str) -> Any:
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        return self._ref(name)

    def _fn_get_att(self, arg: Any, path: str) -> Any:
        if isinstance(arg, str):
            logical_id, _, attribute = arg.partition(".")
        else:
            logical_id, attribute = arg[0], self.resolve(arg[1], path)
        return self._get_att(logical_id, attribute)

    def _fn_join(self, arg: Any, path: str) -> str:
        delimiter, parts = arg
        values = self.resolve(parts, path)
        return str(delimiter).join(_text(v, path, self) for v in values)

    def _fn_sub(self, arg: Any, path: str) -> str:
        if isinstance(arg, str):
            template, variables = arg, {}
        else:
            template, variables = arg[0], self.resolve(arg[1], path)

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return _text(variables[name], path, self)
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return _text(self._get_att(logical_id, attribute), path, self)
            return _text(self._fn_ref(name, path), path, self)

        # ``${!Literal}`` stands for the text ``${Literal}``.
        return _SUB_VARIABLE.sub(substitute, template).replace("${!", "${")

    def _fn_select(self, arg: Any, path: str) -> Any:
        index, values = self.resolve(arg[0], path), self.resolve(arg[1], path)
        try:
            return values[int(index)]
        except (IndexError, ValueError, TypeError):
            raise self._fail(path, f"Fn::Select index {index!r} is not valid for {values!r}") from None

    def _fn_split(self, arg: Any, path: str) -> list[str]:
        delimiter, source = arg
        return _text(self.resolve(source, path), path, self).split(delimiter)

    def _fn_import_value(self, arg: Any, path: str) -> Any:
        name = self.resolve(arg, path)
        if name not in self._exports:
            raise self._fail(path, f"Fn::ImportValue {name!r}: no deployed stack exports that name "
                                   "(deploy the exporting stack first; exports cannot cross regions)")
        return self._exports[name]

    def _fn_if(self, arg: Any, path: str) -> Any:
        name, if_true, if_false = arg
        return self.resolve(if_true if self.condition(name, path) else if_false, path)

    def _fn_equals(self, arg: Any, path: str) -> bool:
        left, right = (self.resolve(v, path) for v in arg)
        return bool(left == right)

    def _fn_not(self, arg: Any, path: str) -> bool:
        return not self.resolve(arg[0], path)

    def _fn_and(self, arg: Any, path: str) -> bool:
        return all(self.resolve(v, path) for v in arg)

    def _fn_or(self, arg: Any, path: str) -> bool:
        return any(self.resolve(v, path) for v in arg)

    def _fn_condition(self, arg: Any, path: str) -> bool:
        return self.condition(arg, path)

    def _fn_get_azs(self, arg: Any, path: str) -> list[str]:
        region = self.resolve(arg, path) or self._pseudo["AWS::Region"]
        return [f"{region}{zone}" for zone in "abc"]

    def _fn_base64(self, arg: Any, path: str) -> str:
        return base64.b64encode(_text(self.resolve(arg, path), path, self).encode()).decode()


def _text(value: Any, path: str, resolver: Resolver) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise resolver._fail(path, f"expected a string, got {value!r}")


_FUNCTIONS: dict[str, Callable[[Resolver, Any, str], Any]] = {
    "Ref": Resolver._fn_ref,
    "Fn::GetAtt": Resolver._fn_get_att,
    "Fn::Join": Resolver._fn_join,
    "Fn::Sub": Resolver._fn_sub,
    "Fn::Select": Resolver._fn_select,
    "Fn::Split": Resolver._fn_split,
    "Fn::ImportValue": Resolver._fn_import_value,
    "Fn::If": Resolver._fn_if,
    "Fn::Equals": Resolver._fn_equals,
    "Fn::Not": Resolver._fn_not,
    "Fn::And": Resolver._fn_and,
    "Fn::Or": Resolver._fn_or,
    "Condition": Resolver._fn_condition,
    "Fn::GetAZs": Resolver._fn_get_azs,
    "Fn::Base64": Resolver._fn_base64,
}
