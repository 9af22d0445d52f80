"""Type checks of the constructs' public props, against their own type hints.

A prop of the wrong type (a dict where a jsii struct is expected, a string where an enum member is) otherwise
fails far from the mistake, e.g. ``AttributeError: 'dict' object has no attribute '_values'`` from inside
CDK. :func:`check_arguments` refuses it at construction with a ``ReplicationConfigError`` naming the prop
(with its path inside nested options, e.g. ``replicas[0].region``), the type given, the type expected and the
import that provides it. Our own option dataclasses (``TableLocation``, ``ReplicatorOptions``, ...) are
checked field by field; jsii structs and classes by ``isinstance`` only.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ReplicationConfigError

#: Parameters every construct takes that CDK itself has used (and checked) before the props are looked at.
_CONSTRUCT_PARAMETERS = frozenset({"self", "scope", "id", "return"})


def check_arguments(path: str, function: Callable[..., Any], arguments: Mapping[str, Any]) -> None:
    """Check each of ``arguments`` against ``function``'s type hint for the parameter of that name.

    Args:
        path: the construct path the error names.
        function: the construct's ``__init__`` (its annotations are the contract).
        arguments: parameter name -> value given; names without a hint (``self``, ``scope``, ...) are ignored.

    Raises:
        ReplicationConfigError: the first value (in parameter order) whose type does not fit.
    """
    hints = _hints(function)
    for name, value in arguments.items():
        if name not in _CONSTRUCT_PARAMETERS and name in hints:
            _check(path, name, value, hints[name])


@functools.cache
def _hints(owner: Any) -> dict[str, Any]:
    # model.py names MigrationOptions under TYPE_CHECKING only (an import cycle otherwise): resolve it here.
    from .migration import MigrationOptions

    return typing.get_type_hints(owner, localns={"MigrationOptions": MigrationOptions})


def _options(hint: Any) -> tuple[Any, ...]:
    """The alternatives of a union hint (``X | None``), or ``(hint,)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _is_sequence_hint(hint: Any) -> bool:
    return typing.get_origin(hint) in (collections.abc.Sequence, list, tuple)


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of ``hint``'s outer type (elements and fields are checked separately)."""
    if hint is Any or hint is object:
        return True
    if hint is type(None):
        return value is None
    if _is_sequence_hint(hint):
        return isinstance(value, (list, tuple))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if not isinstance(hint, type):
        return True  # a typing construct not used by our props: not guessed at
    try:
        return isinstance(value, hint)
    except TypeError:
        return True  # a jsii interface (a Protocol without runtime checks): CDK checks it itself


def _check(path: str, what: str, value: Any, hint: Any) -> None:
    options = _options(hint)
    matching = next((option for option in options if _fits(value, option)), None)
    if matching is None:
        _refuse(path, what, value, options)
    if _is_sequence_hint(matching):
        (element,) = typing.get_args(matching)[:1] or (Any,)
        for index, item in enumerate(value):
            _check(path, f"{what}[{index}]", item, element)
    elif _is_own_options(value):
        hints = _hints(type(value))
        for field in dataclasses.fields(value):
            if field.name in hints:
                _check(path, f"{what}.{field.name}", getattr(value, field.name), hints[field.name])


def _is_own_options(value: Any) -> bool:
    """One of this library's option dataclasses (checked field by field)."""
    return dataclasses.is_dataclass(value) and type(value).__module__.startswith("cdk_replication.")


def _refuse(path: str, what: str, value: Any, options: tuple[Any, ...]) -> typing.NoReturn:
    expected = " or ".join(_name(option) for option in options)
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    problem = f"{what} is {_a(type(value).__name__)} ({shown}), not {_a(expected)}"
    wanted = [option for option in options if option is not type(None)]
    fix = "pass " + " or ".join(_how(option, value) for option in wanted)
    imports = sorted({line for option in wanted if (line := _import_of(_element(option)))})
    if imports:
        fix += f" ({'; '.join(imports)})"
    struct = _element(wanted[0]) if len(wanted) == 1 else None
    if isinstance(value, Mapping) and isinstance(struct, type) and not issubclass(struct, enum.Enum):
        fix += f"; build it with keyword arguments: {_qualified(struct)}(**your_dict)"
    raise ReplicationConfigError(path, problem, fix)


def _a(noun: str) -> str:
    """``noun`` with its indefinite article."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _element(hint: Any) -> Any:
    """The element type of a sequence hint, else the hint."""
    if _is_sequence_hint(hint):
        args = typing.get_args(hint)
        return args[0] if args else Any
    return hint


def _name(hint: Any) -> str:
    if hint is type(None):
        return "None"
    if _is_sequence_hint(hint):
        return f"sequence of {_name(_element(hint))}"
    return getattr(hint, "__name__", str(hint))


def _qualified(hint: Any) -> str:
    """How code names the type after :func:`_import_of`'s import: ``aws_dynamodb.Attribute``, ``Duration``."""
    module = getattr(hint, "__module__", "")
    if module.startswith("aws_cdk."):
        return f"{module.rsplit('.', 1)[1]}.{hint.__name__}"
    return getattr(hint, "__name__", str(hint))


def _import_of(hint: Any) -> str | None:
    module = getattr(hint, "__module__", "")
    if module.startswith("aws_cdk."):
        return f"from aws_cdk import {module.rsplit('.', 1)[1]}"
    if module == "aws_cdk":
        return f"from aws_cdk import {hint.__name__}"
    if module.startswith("cdk_replication"):
        return f"from cdk_replication import {hint.__name__}"
    return None


def _how(hint: Any, value: Any) -> str:
    """What to pass instead: the enum member the value names, a list of the element type, or the type."""
    if _is_sequence_hint(hint):
        return f"a list of {_qualified(_element(hint))}"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        for member in hint:
            if isinstance(value, str) and value.upper() in (member.name, str(member.value).upper()):
                return f"{_qualified(hint)}.{member.name}"
        return f"one of {_qualified(hint)}." + ", .".join(member.name for member in hint)
    return _qualified(hint)
