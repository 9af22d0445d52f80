"""Type checks of the constructs' public props, against their own type hints.

A prop of the wrong type (a dict where a jsii struct is expected, a string where an enum member is) otherwise
fails far from the mistake, e.g. ``AttributeError: 'dict' object has no attribute '_values'`` from inside
CDK. :func:`check_arguments` refuses it at construction with a ``ReplicationConfigError`` naming the prop
(with its path inside nested options, e.g. ``replicas[0].region``), the type given, the type expected and the
import that provides it. Our own option dataclasses (``TableLocation``, ``ReplicatorOptions``, ...) are
checked field by field; jsii structs and classes by ``isinstance`` only.

What worked before these checks keeps working: any iterable (a generator too) is taken for a sequence and
read once, and a ``GlobalSecondaryIndexPropsV2`` without capacities is taken for the
``GlobalSecondaryIndexProps`` it equals. A number token (``Token.as_number``, ``CfnParameter.value_as_number``)
is refused as a token rather than as a float: the constructs check numbers against ranges at synth time.
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

from aws_cdk import Token
from aws_cdk import aws_dynamodb as dynamodb

from .errors import ReplicationConfigError

#: Parameters every construct takes that CDK itself has used (and checked) before the props are looked at.
_CONSTRUCT_PARAMETERS = frozenset({"self", "scope", "id", "return"})

#: Fields of ``GlobalSecondaryIndexPropsV2`` that ``GlobalSecondaryIndexProps`` has with another type
#: (``Capacity`` objects there, numbers here); every other field has the same name and type in both.
_V2_ONLY_GSI_FIELDS = ("read_capacity", "write_capacity")


def implements(value: Any, interface: type) -> bool:
    """Whether ``value`` implements the jsii interface ``interface`` (``s3.IBucket``, ``cloudwatch.IAlarmAction``):
    ``isinstance`` cannot tell (jsii interfaces are protocols without runtime checks), the ``@jsii.implements``
    record of its class can."""
    for cls in type(value).__mro__:
        for declared in cls.__dict__.get("__jsii_ifaces__", ()):
            # A declared interface may extend the one asked for (protocols refuse issubclass; their MRO tells).
            if interface in getattr(declared, "__mro__", (declared,)):
                return True
    return False


def check_arguments(path: str, function: Callable[..., Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Check each of ``arguments`` against ``function``'s type hint for the parameter of that name.

    Args:
        path: the construct path the error names.
        function: the construct's ``__init__`` (its annotations are the contract).
        arguments: parameter name -> value given; names without a hint (``self``, ``scope``, ...) are ignored.

    Returns:
        The checked arguments to use instead of the given ones: each value as given, except that an iterable
        given for a sequence becomes a tuple (so a generator is read once, here), a
        ``GlobalSecondaryIndexPropsV2`` given for a ``GlobalSecondaryIndexProps`` becomes one, and an option
        dataclass holding either is a copy holding the converted values.

    Raises:
        ReplicationConfigError: the first value (in parameter order) whose type does not fit.
    """
    hints = _hints(function)
    return {
        name: _check(path, name, value, hints[name])
        for name, value in arguments.items()
        if name not in _CONSTRUCT_PARAMETERS and name in hints
    }


@functools.cache
def _hints(owner: Any) -> dict[str, Any]:
    return typing.get_type_hints(owner)


def _options(hint: Any) -> tuple[Any, ...]:
    """The alternatives of a union hint (``X | None``), or ``(hint,)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _is_sequence_hint(hint: Any) -> bool:
    return typing.get_origin(hint) in (collections.abc.Sequence, list, tuple)


def _is_iterable_for_sequence(value: Any) -> bool:
    """Any iterable except a string or a mapping, whose elements are characters and keys, never props."""
    return isinstance(value, collections.abc.Iterable) and not isinstance(value, (str, bytes, Mapping))


def _is_number_token(value: Any, options: tuple[Any, ...]) -> bool:
    """A number standing for an unresolved value (``Token.as_number``), given where a number is expected."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return numeric and any(option in (int, float) for option in options) and Token.is_unresolved(value)


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of ``hint``'s outer type (elements and fields are checked separately)."""
    if hint is Any or hint is object:
        return True
    if hint is type(None):
        return value is None
    if _is_sequence_hint(hint):
        return _is_iterable_for_sequence(value)
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


def _check(path: str, what: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against ``hint``; return it, or what to use instead (see :func:`check_arguments`)."""
    options = _options(hint)
    if _is_number_token(value, options):
        raise ReplicationConfigError(
            path,
            f"{what} is a token (an unresolved value such as Token.as_number(...) or "
            "CfnParameter.value_as_number), which cannot be used there: the construct checks it at synth time",
            "pass a literal " + " or ".join(_name(o) for o in options if o is not type(None)),
        )
    if isinstance(value, dynamodb.GlobalSecondaryIndexPropsV2) and dynamodb.GlobalSecondaryIndexProps in options:
        return _gsi_of_v2(path, what, value)
    matching = next((option for option in options if _fits(value, option)), None)
    if matching is None:
        _refuse(path, what, value, options)
    if _is_sequence_hint(matching):
        (element,) = typing.get_args(matching)[:1] or (Any,)
        items = tuple(value)  # once: a generator has nothing left for a second reading
        checked = tuple(_check(path, f"{what}[{index}]", item, element) for index, item in enumerate(items))
        unchanged = isinstance(value, (list, tuple)) and all(a is b for a, b in zip(checked, value, strict=True))
        return value if unchanged else checked
    if _is_own_options(value):
        hints = _hints(type(value))
        changed = {}
        for field in dataclasses.fields(value):
            if field.name in hints:
                given = getattr(value, field.name)
                checked = _check(path, f"{what}.{field.name}", given, hints[field.name])
                if checked is not given:
                    changed[field.name] = checked
        return dataclasses.replace(value, **changed) if changed else value
    return value


def _gsi_of_v2(path: str, what: str, value: dynamodb.GlobalSecondaryIndexPropsV2) -> dynamodb.GlobalSecondaryIndexProps:
    """The ``GlobalSecondaryIndexProps`` equal to a ``GlobalSecondaryIndexPropsV2`` without capacities (passed
    through unchanged before props were type-checked, so code written that way keeps working)."""
    values = _struct_values(value)
    v2_only = [name for name in _V2_ONLY_GSI_FIELDS if values.get(name) is not None]
    if v2_only:
        raise ReplicationConfigError(
            path,
            f"{what} is a GlobalSecondaryIndexPropsV2 with {' and '.join(v2_only)}: GlobalSecondaryIndexPropsV2 is "
            "for TableV2",
            "use aws_dynamodb.GlobalSecondaryIndexProps(...), with read_capacity and write_capacity as numbers "
            "(from aws_cdk import aws_dynamodb)",
        )
    return dynamodb.GlobalSecondaryIndexProps(**values)


def _struct_values(struct: object) -> dict[str, Any]:
    """The fields set on a jsii struct, by Python name (jsii's generated structs keep them in ``_values``)."""
    return dict(getattr(struct, "_values"))


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
