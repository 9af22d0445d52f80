"""The per-replica transform: which items a replica holds, which attributes, and how masked values look.

Standard library only: this module runs in the replicator (``replicator.transform``) and in the command line
(``cdk_replication._lambda.replicator.transform``), so every path that writes a replica applies the same
transform to the same source image.

The spec (JSON, written by the construct into ``REPLICATION_TARGETS[i]["transform"]`` and into the published
``replicator`` parameter; docs/architecture.md "Replica transforms")::

    {"version": 1,
     "filter": null | <condition>,
     "keep": null | ["attr", ...], "drop": null | ["attr", ...],
     "masks": {"email": {"kind": "hmac"}, "name": {"kind": "redact", "value": {"S": "REDACTED"}},
               "address": {"kind": "remove"}},
     "secretArn": null | "arn:aws:secretsmanager:...",
     "digest": "<sha256 hex of the spec without digest and secretArn (DIGEST_EXCLUDES)>"}

A ``<condition>`` is ``{"op": "eq"|"ne"|"lt"|"le"|"gt"|"ge"|"begins_with", "attr": name, "value": value}``,
``{"op": "in", "attr": name, "values": [value, ...]}``, ``{"op": "exists"|"not_exists", "attr": name}``,
``{"op": "and"|"or", "args": [condition, ...]}`` or ``{"op": "not", "arg": condition}``. ``attr`` is a
top-level attribute name (no document paths); values are attribute values in the JSON notation of a stream
record (binary as base64 text). Comparisons follow DynamoDB's condition expressions: numbers compare as
exact decimals (all 38 digits), strings and binary bytewise (UTF-8 / unsigned bytes); sets compare equal
regardless of order. A missing attribute or a value of another type makes ``eq``, ``lt``, ``le``, ``gt``,
``ge``, ``begins_with`` and ``in`` false and ``ne`` true (as ``<>`` in DynamoDB); nothing is ever an error
at run time.

Order of the steps: the filter sees the whole source image; then the projection (``keep`` or ``drop``; key
attributes are always kept); then the masks. A mask:

* ``remove``: the attribute is left out;
* ``redact``: the attribute becomes the constant ``value``;
* ``hmac``: HMAC-SHA256, keyed by the secret's bytes, over a canonical, type-tagged encoding of the value
  (numbers normalised, sets sorted; ``_canonical`` in attributes.py, pinned by tests). The type is kept where
  DynamoDB needs it: ``S`` -> ``S`` (64 hex digits), ``N`` -> ``N`` (the digest as an integer modulo 10**38:
  at most 38 digits, DynamoDB's precision), ``B`` -> ``B`` (the 32 digest bytes); ``SS``/``NS``/``BS`` ->
  the same set type, element by element (so ``contains`` still works and the set keeps its size); ``BOOL``,
  ``NULL``, ``M`` and ``L`` -> ``S``, the hex HMAC of the whole value (nothing of its structure survives).
  The attribute's name is not part of the input: equal values hash equal in every attribute (and in every
  table hashed with the same secret), so they still join.
  Sizes change: an ``S`` becomes 64 bytes, a ``B`` 32, an ``N`` up to 21 bytes (38 digits), and sets grow
  element by element, so a set of short values grows several-fold (an ``NS`` of 5-digit numbers about five-fold)
  and an item under DynamoDB's 400 KB at the source can exceed it in the replica: the replicator then fails
  only that replica's write (``ItemTooLarge``), the other targets are written.

Images and keys are low-level attribute-value dicts (``{"S": ...}``, binary as ``bytes``) as boto3's client
and the replicator's parsed stream records hold them.
"""

from __future__ import annotations

import base64
import binascii
import copy
import decimal
import hashlib
import hmac
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .attributes import _canonical  # the canonical form digests use; pinned for HMAC by test vectors

#: The spec version this engine reads.
SPEC_VERSION = 1
#: Spec fields.
SPEC_FIELDS = frozenset({"version", "filter", "keep", "drop", "masks", "secretArn", "digest"})
#: Comparison operators with one value, operators with a list, presence tests, and the logical ones.
VALUE_OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "begins_with"})
LIST_OPS = frozenset({"in"})
PRESENCE_OPS = frozenset({"exists", "not_exists"})
LOGICAL_OPS = frozenset({"and", "or", "not"})
ALL_OPS = VALUE_OPS | LIST_OPS | PRESENCE_OPS | LOGICAL_OPS
#: The types each ordered operator accepts as its value (DynamoDB refuses others in an expression).
ORDERED_TYPES: Mapping[str, frozenset[str]] = {
    "lt": frozenset({"N", "S", "B"}),
    "le": frozenset({"N", "S", "B"}),
    "gt": frozenset({"N", "S", "B"}),
    "ge": frozenset({"N", "S", "B"}),
    "begins_with": frozenset({"S", "B"}),
}
#: Mask kinds.
MASK_KINDS = frozenset({"remove", "redact", "hmac"})
#: Attribute-value type keys.
VALUE_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "M", "L"})
#: ``N`` outputs of ``hmac`` are the digest modulo this: 38 digits, DynamoDB's number precision.
_N_MODULUS = 10**38
#: DynamoDB allows at most 100 operands in ``IN``; the same bound keeps a spec reviewable.
MAX_IN_VALUES = 100


class TransformError(ValueError):
    """A transform spec that this engine cannot apply (the message names the field)."""


#: Fields the digest leaves out: itself, and the secret's ARN, which is only known once the secret is
#: deployed (a generated secret's ARN ends in a random suffix, a token at synth time, where the construct
#: computes the digest for the replica's tag). The key's identity is not part of the digest either way: a
#: rotation changes the key under the same ARN.
DIGEST_EXCLUDES = frozenset({"digest", "secretArn"})


def spec_digest(spec: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``spec`` without ``digest`` and ``secretArn`` (keys sorted,
    compact, UTF-8): the value of the replica table's ``cdk-replication:transform`` tag."""
    body = {k: v for k, v in spec.items() if k not in DIGEST_EXCLUDES}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def with_digest(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` with its ``digest`` set."""
    return {**{k: v for k, v in spec.items() if k != "digest"}, "digest": spec_digest(spec)}


# --- attribute values -----------------------------------------------------------------------------------------


def _b64(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise TransformError(f"{where}: binary values are base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise TransformError(f"{where}: {text!r:.40} is not base64") from None


def _number(text: Any, where: str) -> str:
    try:
        value = decimal.Decimal(text)
    except (decimal.InvalidOperation, TypeError, ValueError):
        raise TransformError(f"{where}: {text!r:.40} is not a number") from None
    if not value.is_finite():
        raise TransformError(f"{where}: {text!r:.40} is not a finite number")
    return str(text)


def spec_value(value: Any, where: str) -> dict[str, Any]:
    """An attribute value of the spec (JSON notation, binary as base64) in wire form (binary as bytes).

    Raises:
        TransformError: ``value`` is not one attribute value.
    """
    if not isinstance(value, Mapping) or len(value) != 1:
        raise TransformError(f"{where}: an attribute value has exactly one type key, such as {{\"S\": \"x\"}}")
    ((kind, inner),) = value.items()
    if kind not in VALUE_TYPES:
        raise TransformError(f"{where}: unknown attribute type {kind!r}")
    if kind == "B":
        return {"B": _b64(inner, where)}
    if kind == "N":
        return {"N": _number(inner, where)}
    if kind in ("S", "BOOL", "NULL") or kind in ("SS", "NS", "BS"):
        return _plain_or_set(kind, inner, where)
    if kind == "M":
        if not isinstance(inner, Mapping):
            raise TransformError(f"{where}: M holds an object")
        return {"M": {str(k): spec_value(v, f"{where}.{k}") for k, v in inner.items()}}
    if not isinstance(inner, list):
        raise TransformError(f"{where}: L holds a list")
    return {"L": [spec_value(v, f"{where}[{i}]") for i, v in enumerate(inner)]}


def _plain_or_set(kind: str, inner: Any, where: str) -> dict[str, Any]:
    expected = {"S": str, "BOOL": bool, "NULL": bool}
    if kind in expected:
        if not isinstance(inner, expected[kind]):
            raise TransformError(f"{where}: {kind} holds a {expected[kind].__name__}")
        return {kind: inner}
    if not isinstance(inner, list) or not inner:
        raise TransformError(f"{where}: {kind} holds a non-empty list")
    if kind == "BS":
        return {"BS": [_b64(b, where) for b in inner]}
    if kind == "NS":
        return {"NS": [_number(n, where) for n in inner]}
    if not all(isinstance(s, str) for s in inner):
        raise TransformError(f"{where}: SS holds strings")
    return {"SS": list(inner)}


def canonical_bytes(value: Mapping[str, Any]) -> bytes:
    """The type-tagged canonical encoding of one attribute value that ``hmac`` hashes (and equality uses)."""
    return json.dumps(_canonical(dict(value)), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _kind(value: Mapping[str, Any]) -> tuple[str, Any]:
    ((kind, inner),) = value.items()
    return kind, inner


def _ordered(kind: str, inner: Any) -> Any:
    """A value that Python orders as DynamoDB orders ``kind`` (exact decimals; UTF-8 and binary bytewise)."""
    if kind == "N":
        return decimal.Decimal(inner)
    if kind == "S":
        return inner.encode("utf-8", "surrogatepass")
    return bytes(inner)


def equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """DynamoDB's ``=``: same type and same value (numbers by value, sets regardless of order)."""
    return _kind(a)[0] == _kind(b)[0] and canonical_bytes(a) == canonical_bytes(b)


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> int | None:
    """-1, 0 or 1 as ``a`` orders before, with or after ``b``; ``None`` when they are not of one ordered type
    (``N``, ``S`` or ``B``)."""
    (ka, va), (kb, vb) = _kind(a), _kind(b)
    if ka != kb or ka not in ("N", "S", "B"):
        return None
    x, y = _ordered(ka, va), _ordered(kb, vb)
    return (x > y) - (x < y)


def begins_with(a: Mapping[str, Any], prefix: Mapping[str, Any]) -> bool:
    """DynamoDB's ``begins_with``: both ``S`` or both ``B``, bytewise."""
    (ka, va), (kb, vb) = _kind(a), _kind(prefix)
    if ka != kb or ka not in ("S", "B"):
        return False
    return _ordered(ka, va).startswith(_ordered(kb, vb))


# --- filter ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One compiled filter node: ``op`` and its operands (``attr``/``values`` or ``args``)."""

    op: str
    attr: str | None = None
    values: tuple[dict[str, Any], ...] = ()
    args: tuple[Condition, ...] = ()

    def holds(self, image: Mapping[str, Mapping[str, Any]]) -> bool:
        """Whether ``image`` satisfies this condition (never raises for any image)."""
        if self.op == "and":
            return all(arg.holds(image) for arg in self.args)
        if self.op == "or":
            return any(arg.holds(image) for arg in self.args)
        if self.op == "not":
            return not self.args[0].holds(image)
        assert self.attr is not None
        current = image.get(self.attr)
        if self.op in PRESENCE_OPS:
            return (current is not None) == (self.op == "exists")
        if current is None:
            return self.op == "ne"  # a missing attribute equals nothing, so it differs from everything
        if self.op in ("eq", "ne"):
            return equal(current, self.values[0]) == (self.op == "eq")
        if self.op == "in":
            return any(equal(current, v) for v in self.values)
        if self.op == "begins_with":
            return begins_with(current, self.values[0])
        order = compare(current, self.values[0])
        if order is None:
            return False
        return {"lt": order < 0, "le": order <= 0, "gt": order > 0, "ge": order >= 0}[self.op]

    def attributes(self) -> set[str]:
        """Every attribute name the condition reads."""
        names = {self.attr} if self.attr is not None else set()
        for arg in self.args:
            names |= arg.attributes()
        return names


def _fields(node: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(node) - allowed
    if unknown:
        raise TransformError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} for op {node.get('op')!r}")


def _attr(node: Mapping[str, Any], where: str) -> str:
    attr = node.get("attr")
    if not isinstance(attr, str) or not attr:
        raise TransformError(f"{where}.attr must be a top-level attribute name")
    return attr


def compile_condition(node: Any, where: str = "filter") -> Condition:
    """A filter ``node`` of the spec, checked and compiled.

    Raises:
        TransformError: an unknown operator or field, a missing operand, or a value of a type the operator
            cannot compare (``lt``/``le``/``gt``/``ge``: N, S or B; ``begins_with``: S or B).
    """
    if not isinstance(node, Mapping):
        raise TransformError(f"{where} must be an object with an 'op'")
    op = node.get("op")
    if op not in ALL_OPS:
        raise TransformError(f"{where}.op={op!r} is not one of {', '.join(sorted(ALL_OPS))}")
    if op in ("and", "or"):
        _fields(node, {"op", "args"}, where)
        args = node.get("args")
        if not isinstance(args, list) or not args:
            raise TransformError(f"{where}.args must be a non-empty list of conditions")
        return Condition(op, args=tuple(compile_condition(a, f"{where}.args[{i}]") for i, a in enumerate(args)))
    if op == "not":
        _fields(node, {"op", "arg"}, where)
        return Condition(op, args=(compile_condition(node.get("arg"), f"{where}.arg"),))
    if op in PRESENCE_OPS:
        _fields(node, {"op", "attr"}, where)
        return Condition(op, attr=_attr(node, where))
    if op in LIST_OPS:
        _fields(node, {"op", "attr", "values"}, where)
        raw = node.get("values")
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_IN_VALUES:
            raise TransformError(f"{where}.values must be a list of 1 to {MAX_IN_VALUES} attribute values")
        values = tuple(spec_value(v, f"{where}.values[{i}]") for i, v in enumerate(raw))
        return Condition(op, attr=_attr(node, where), values=values)
    _fields(node, {"op", "attr", "value"}, where)
    value = spec_value(node.get("value"), f"{where}.value")
    allowed = ORDERED_TYPES.get(op)
    if allowed is not None and _kind(value)[0] not in allowed:
        raise TransformError(
            f"{where}: {op} compares {'/'.join(sorted(allowed))} values, not {_kind(value)[0]}"
        )
    return Condition(op, attr=_attr(node, where), values=(value,))


# --- masks ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mask:
    """How one attribute is masked: ``kind`` is ``remove``, ``redact`` (to ``value``) or ``hmac``."""

    kind: str
    value: dict[str, Any] | None = None


def _mask(name: str, raw: Any) -> Mask:
    where = f"masks.{name}"
    if not isinstance(raw, Mapping) or raw.get("kind") not in MASK_KINDS:
        raise TransformError(f"{where}.kind must be one of {', '.join(sorted(MASK_KINDS))}")
    kind = raw["kind"]
    if kind == "redact":
        _fields(raw, {"kind", "value"}, where)
        return Mask(kind, spec_value(raw.get("value"), f"{where}.value"))
    _fields(raw, {"kind"}, where)
    return Mask(kind)


def hmac_value(key: bytes, value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` hashed with HMAC-SHA256 under ``key`` (the type mapping is in the module docstring)."""
    kind, inner = _kind(value)
    if kind in ("S", "N", "B"):
        return _hmac_scalar(key, kind, {kind: inner})
    if kind in ("SS", "NS", "BS"):
        element = kind[0]
        hashed = [_hmac_scalar(key, element, {element: e})[element] for e in inner]
        return {kind: hashed}
    return {"S": hmac.new(key, canonical_bytes(value), hashlib.sha256).hexdigest()}


def _hmac_scalar(key: bytes, kind: str, value: Mapping[str, Any]) -> dict[str, Any]:
    digest = hmac.new(key, canonical_bytes(value), hashlib.sha256).digest()
    if kind == "S":
        return {"S": digest.hex()}
    if kind == "N":
        return {"N": str(int.from_bytes(digest, "big") % _N_MODULUS)}
    return {"B": digest}


# --- the transform --------------------------------------------------------------------------------------------


def _names(spec: Mapping[str, Any], name: str) -> frozenset[str] | None:
    raw = spec.get(name)
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(n, str) and n for n in raw):
        raise TransformError(f"{name} must be null or a list of attribute names")
    return frozenset(raw)


def _check_keys(masks: Mapping[str, Mask], drop: frozenset[str] | None, key_names: Collection[str]) -> None:
    """Refuse what would change the replica's keys other than by hashing them."""
    for name in key_names:
        mask = masks.get(name)
        if mask is not None and mask.kind != "hmac":
            raise TransformError(
                f"masks.{name}: {name!r} is a key attribute; a key can only be hashed (kind 'hmac'), since "
                f"'{mask.kind}' would leave items without a key or merge distinct items into one"
            )
        if drop is not None and name in drop:
            raise TransformError(f"drop: {name!r} is a key attribute; keys are always kept")


@dataclass(frozen=True)
class Transform:
    """A compiled transform spec (build it with :meth:`from_spec`).

    Attributes:
        spec: the spec as given (with its ``digest``).
        filter: the compiled filter, or ``None`` (every item matches).
        keep / drop: the projection (at most one is set; ``None``: every attribute).
        masks: per attribute name.
        key_names: the table's key attributes: always kept, never removed or redacted. Empty when the caller
            did not say; then the spec alone decides (the construct writes ``keep`` with the keys in it).
    """

    spec: Mapping[str, Any] = field(repr=False)
    filter: Condition | None
    keep: frozenset[str] | None
    drop: frozenset[str] | None
    masks: Mapping[str, Mask]
    key_names: tuple[str, ...] = ()
    _hmac_key: bytes | None = field(default=None, repr=False)

    @staticmethod
    def needs_secret(spec: Mapping[str, Any] | None) -> bool:
        """Whether ``spec`` masks any attribute with ``hmac`` (so it needs the secret's bytes)."""
        masks = spec.get("masks") if isinstance(spec, Mapping) else None
        return isinstance(masks, Mapping) and any(
            isinstance(m, Mapping) and m.get("kind") == "hmac" for m in masks.values()
        )

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], hmac_key: bytes | None, key_names: Sequence[str] = ()
    ) -> Transform:
        """Check and compile ``spec``; ``hmac_key`` is the secret's bytes (required when
        :meth:`needs_secret`); ``key_names`` (default: none) the table's key attributes.

        Raises:
            TransformError: naming the first field that is wrong, a missing key, or a digest that does not
                match the spec (the spec was edited after the construct wrote it).
        """
        if not isinstance(spec, Mapping):
            raise TransformError("a transform spec is a JSON object")
        unknown = set(spec) - SPEC_FIELDS
        if unknown:
            raise TransformError(f"unknown field(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(SPEC_FIELDS))})")
        if spec.get("version") != SPEC_VERSION:
            raise TransformError(f"version={spec.get('version')!r}: this replicator reads version {SPEC_VERSION}")
        if "digest" in spec and spec["digest"] != spec_digest(spec):
            raise TransformError("digest does not match the spec: it was changed after the construct wrote it")
        keep, drop = _names(spec, "keep"), _names(spec, "drop")
        if keep is not None and drop is not None:
            raise TransformError("keep and drop are exclusive: give the attributes to keep or those to drop")
        raw_masks = spec.get("masks") or {}
        if not isinstance(raw_masks, Mapping):
            raise TransformError("masks must be an object of attribute name -> mask")
        masks = {str(name): _mask(str(name), raw) for name, raw in raw_masks.items()}
        _check_keys(masks, drop, key_names)
        if cls.needs_secret(spec) and not hmac_key:
            raise TransformError("masks use 'hmac' but no HMAC key was given (the secret's value, as bytes)")
        raw_filter = spec.get("filter")
        condition = None if raw_filter is None else compile_condition(raw_filter)
        return cls(dict(spec), condition, keep, drop, masks, tuple(key_names), hmac_key or None)

    @property
    def digest(self) -> str:
        """The spec's digest (the replica table's ``cdk-replication:transform`` tag)."""
        return spec_digest(self.spec)

    @property
    def secret_arn(self) -> str | None:
        """The ARN of the secret holding the HMAC key, if the spec names one."""
        arn = self.spec.get("secretArn")
        return arn if isinstance(arn, str) and arn else None

    def matches(self, image: Mapping[str, Mapping[str, Any]] | None) -> bool:
        """Whether the replica holds an item with this source ``image`` (``None``: no item, never held)."""
        if image is None:
            return False
        return self.filter is None or self.filter.holds(image)

    def apply(self, image: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any] | None:
        """The replica's item for the source ``image``, or ``None`` when the replica does not hold it.

        The result is a new dict; unmasked values are deep copies, so a caller may change it freely.
        """
        if not self.matches(image):
            return None
        assert image is not None
        out: dict[str, Any] = {}
        for name, value in image.items():
            if not self._kept(name):
                continue
            masked = self._masked(name, value)
            if masked is not None:
                out[name] = masked
        return out

    def key(self, key: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """The replica's key for a source ``key`` (every attribute of it): hashed where a key attribute is
        masked with ``hmac``, otherwise unchanged.

        Raises:
            TransformError: ``key`` names an attribute masked with ``remove`` or ``redact`` (a spec compiled
                without ``key_names`` that the construct would have refused).
        """
        out: dict[str, Any] = {}
        for name, value in key.items():
            mask = self.masks.get(name)
            if mask is not None and mask.kind != "hmac":
                raise TransformError(f"masks.{name}: a key attribute can only be hashed (kind 'hmac')")
            out[name] = self._masked(name, value)
        return out

    def _kept(self, name: str) -> bool:
        if name in self.key_names:
            return True
        if self.keep is not None:
            return name in self.keep
        return self.drop is None or name not in self.drop

    def _masked(self, name: str, value: Mapping[str, Any]) -> dict[str, Any] | None:
        """``value`` as the replica holds it (``None``: left out)."""
        mask = self.masks.get(name)
        if mask is None:
            return copy.deepcopy(dict(value))
        if mask.kind == "remove":
            return None
        if mask.kind == "redact":
            return copy.deepcopy(mask.value)
        assert self._hmac_key is not None  # from_spec refuses hmac masks without a key
        return hmac_value(self._hmac_key, value)
