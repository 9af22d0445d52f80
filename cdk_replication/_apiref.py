"""Generates the API reference (docs/api.md) from the public classes' signatures and docstrings.

``python -m cdk_replication._apiref`` rewrites docs/api.md; ``--check`` only compares and exits 1 when it is
out of date or a public parameter is undocumented. The public API is ``cdk_replication.__all__``.

Standard library only (``inspect``, ``dataclasses``, ``ast``), so it adds no dependency to the package. It
reads Google-style docstrings: an ``Args:`` section (construct and method parameters) or an ``Attributes:``
section (dataclass fields), one ``name: text`` entry per parameter, continuation lines indented deeper. A
parameter's stated default is the phrase ``Default: ...`` in its entry, or ``Required`` when it has none;
enum members are described by the ``#:`` comment above them.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import inspect
import re
import sys
import textwrap
from pathlib import Path

import cdk_replication

#: The generated file, relative to the repository root.
API_DOC = Path("docs") / "api.md"
#: The command that regenerates it (named in the check's messages).
REGENERATE = "python -m cdk_replication._apiref"
#: Construct parameters every construct has; their meaning is CDK's, not ours, and they are always required.
_CONSTRUCT_BASICS = ("scope", "id")
_SECTION_RE = re.compile(r"^(\s*)(Args|Attributes|Returns|Raises|Example|Examples|Note):\s*$")
_ENTRY_RE = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?:\s*\([^)]*\))?:\s?(?P<text>.*)$")


@dataclasses.dataclass(frozen=True)
class Param:
    """One documented parameter or field.

    Attributes:
        name: its Python name.
        annotation: its type as written in the source. Required.
        default: its default as shown in the reference, ``None`` when it has none (required). Required.
        description: its docstring entry, ``""`` when it has none. Required.
    """

    name: str
    annotation: str
    default: str | None
    description: str


def docstring_entries(doc: str | None, section: str) -> dict[str, str]:
    """The entries of one section (``Args`` or ``Attributes``) of a Google-style docstring, by name."""
    lines = inspect.cleandoc(doc or "").splitlines()
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    indent: int | None = None
    in_section = False
    for line in lines:
        header = _SECTION_RE.match(line)
        if header:
            in_section, indent, current = header.group(2) == section, None, None
            continue
        if not in_section or not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            in_section = False  # back at the docstring's own text: the section is over
        elif depth == indent and (entry := _ENTRY_RE.match(line.strip())):
            current = entries.setdefault(entry.group("name"), [])
            current.append(entry.group("text"))
        elif current is not None:
            current.append(line.strip())
    return {name: " ".join(part for part in parts if part) for name, parts in entries.items()}


def format_default(value: object) -> str:
    """A default value as the reference shows it: deterministic, and in the terms a user writes."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (tuple, list)) and not value:
        return "()"
    if callable(getattr(value, "to_human_string", None)):  # aws_cdk.Duration
        return f"Duration ({value.to_human_string()})"  # type: ignore[attr-defined]
    if type(value).__name__ == "Runtime":  # aws_lambda.Runtime: a class with named instances, not an enum
        return f"Runtime {value.name}"  # type: ignore[attr-defined]
    return repr(value)


def _dataclass_params(cls: type) -> list[Param]:
    """A dataclass's init fields, documented by its ``Attributes:`` section."""
    docs = docstring_entries(cls.__doc__, "Attributes")
    params = []
    for item in dataclasses.fields(cls):
        if not item.init:
            continue
        if item.default is not dataclasses.MISSING:
            default: str | None = format_default(item.default)
        elif item.default_factory is not dataclasses.MISSING:
            default = format_default(item.default_factory())
        else:
            default = None
        params.append(Param(item.name, str(item.type), default, docs.get(item.name, "")))
    return params


def _signature_params(function: object, doc: str | None) -> list[Param]:
    """A function's parameters (``self`` and ``cls`` left out), documented by the ``Args:`` section of ``doc``."""
    docs = docstring_entries(doc, "Args")
    params = []
    for parameter in inspect.signature(function).parameters.values():  # type: ignore[arg-type]
        if parameter.name in ("self", "cls"):
            continue
        empty = parameter.default is inspect.Parameter.empty
        default = None if empty else format_default(parameter.default)
        annotation = "" if parameter.annotation is inspect.Parameter.empty else str(parameter.annotation)
        params.append(Param(parameter.name, annotation, default, docs.get(parameter.name, "")))
    return params


def init_params(cls: type) -> list[Param]:
    """What a user passes to create ``cls``: dataclass fields, or ``__init__``'s parameters."""
    if dataclasses.is_dataclass(cls):
        return _dataclass_params(cls)
    return _signature_params(cls.__init__, cls.__doc__)


def factories(cls: type) -> dict[str, list[Param]]:
    """The public class methods of ``cls`` (alternative constructors) with their parameters."""
    found = {}
    for name, member in vars(cls).items():
        if isinstance(member, classmethod) and not name.startswith("_"):
            found[name] = _signature_params(member.__func__, member.__func__.__doc__)
    return found


def enum_members(cls: type[enum.Enum]) -> list[tuple[str, str, str]]:
    """(name, value, ``#:`` comment) of every member of ``cls``, in source order."""
    source = textwrap.dedent(inspect.getsource(cls)).splitlines()
    comments: dict[str, str] = {}
    tree = ast.parse("\n".join(source))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            above = []
            line = node.lineno - 2
            while line >= 0 and source[line].strip().startswith("#:"):
                above.insert(0, source[line].strip()[2:].strip())
                line -= 1
            comments[node.targets[0].id] = " ".join(above)
    return [(member.name, str(member.value), comments.get(member.name, "")) for member in cls]


def public_objects() -> list[tuple[str, type]]:
    """Every name of ``cdk_replication.__all__`` with the object it names."""
    return [(name, getattr(cdk_replication, name)) for name in cdk_replication.__all__]


def _kind(cls: type) -> str:
    """The reference's section for ``cls``."""
    from constructs import Construct

    if issubclass(cls, Construct):
        return "Constructs"
    if issubclass(cls, enum.Enum):
        return "Enumerations"
    if issubclass(cls, BaseException):
        return "Errors"
    return "Options and values"


_KINDS = ("Constructs", "Options and values", "Enumerations", "Errors")


def _cell(text: str) -> str:
    """``text`` fit for one Markdown table cell: reST literals as code spans, pipes escaped."""
    return re.sub(r"``([^`]+)``", r"`\1`", text).replace("|", "\\|") or " "


def _code(text: str) -> str:
    return f"`{text}`".replace("|", "\\|")


def _intro(doc: str | None) -> str:
    """The docstring's text before its first section, reST literals as Markdown code spans."""
    lines = []
    for line in inspect.cleandoc(doc or "").splitlines():
        if _SECTION_RE.match(line):
            break
        lines.append(line)
    return re.sub(r"``([^`]+)``", r"`\1`", "\n".join(lines).strip())


def params_table(params: list[Param], heading: str = "Parameter") -> list[str]:
    """A Markdown table of ``params``: name, type, default in the code, and the docstring's entry."""
    rows = [f"| {heading} | Type | In the signature | Description (with its default) |", "|---|---|---|---|"]
    for param in params:
        default = _code(param.default) if param.default is not None else "required"
        described = param.description.replace("Default:", "**Default:**").replace("Required", "**Required**")
        rows.append(f"| `{param.name}` | {_code(param.annotation)} | {default} | {_cell(described)} |")
    return rows


def _arguments(function: object) -> str:
    """A method's parameters as a user writes them: no ``self``, defaults as the reference shows them."""
    shown = []
    for param in _signature_params(function, None):
        shown.append(param.name if param.default is None else f"{param.name}={param.default}")
    return ", ".join(shown)


def _surface(cls: type) -> list[str]:
    """Public properties and methods a construct defines itself, one bullet each with its summary line."""
    bullets = []
    for name, member in vars(cls).items():
        if name.startswith("_") or not isinstance(member, (property, staticmethod)) and not inspect.isfunction(member):
            continue
        summary = _intro(inspect.getdoc(member)).split("\n\n")[0].replace("\n", " ")
        shown = name if isinstance(member, property) else f"{name}({_arguments(member)})"
        bullets.append(f"- `{shown}`: {summary}")
    return ["**Members**", "", *bullets, ""] if bullets else []


def render_class(name: str, cls: type) -> list[str]:
    """The reference's section for one public class."""
    out = [f"### {name}", "", f"`from cdk_replication import {name}`", "", _intro(cls.__doc__), ""]
    if issubclass(cls, enum.Enum):
        out += ["| Member | Value | Description |", "|---|---|---|"]
        out += [f"| `{m}` | `{v}` | {_cell(text)} |" for m, v, text in enum_members(cls)]
        return out + [""]
    out += params_table(init_params(cls), "Field" if dataclasses.is_dataclass(cls) else "Parameter") + [""]
    if not dataclasses.is_dataclass(cls) and (attributes := docstring_entries(cls.__doc__, "Attributes")):
        out += ["| Attribute | Description |", "|---|---|"]
        out += [f"| `{attr}` | {_cell(text)} |" for attr, text in attributes.items()] + [""]
    for method, params in factories(cls).items():
        out += [f"**`{name}.{method}()`**: {_intro(getattr(cls, method).__doc__).replace(chr(10), ' ')}", ""]
        if params:
            out += params_table(params) + [""]
    from constructs import Construct

    return out + (_surface(cls) if issubclass(cls, Construct) else [])


def render() -> str:
    """The whole of docs/api.md."""
    grouped: dict[str, list[tuple[str, type]]] = {kind: [] for kind in _KINDS}
    for name, obj in public_objects():
        grouped[_kind(obj)].append((name, obj))
    out = [
        "# API reference",
        "",
        f"Generated from the docstrings by `{REGENERATE}`; do not edit by hand (tests/test_api_reference.py",
        "fails when this file is out of date). Every name below is importable from `cdk_replication`. A",
        "parameter without a default is required. **Default:** is the default as the docstring states it, the one",
        "in effect; *In the signature* is the Python default, often `None` for \"derived\" (see the description).",
        "",
    ]
    for kind, members in grouped.items():
        out += [f"- {kind}: " + ", ".join(f"[{n}](#{n.lower()})" for n, _ in members)]
    for kind, members in grouped.items():
        out += ["", f"## {kind}", ""]
        for name, cls in members:
            out += render_class(name, cls)
    return "\n".join(out).rstrip() + "\n"


def _param_problems(where: str, params: list[Param]) -> list[str]:
    """What is missing from the docstring entries of ``params``."""
    problems = []
    for param in params:
        if not param.description:
            problems.append(f"{where}: parameter {param.name!r} has no docstring entry")
        elif param.name in _CONSTRUCT_BASICS:
            continue
        elif param.default is None and "Required" not in param.description:
            problems.append(f"{where}: required parameter {param.name!r} does not say 'Required'")
        elif param.default is not None and "Default:" not in param.description:
            problems.append(f"{where}: parameter {param.name!r} does not state its default ('Default: ...')")
    return problems


def problems() -> list[str]:
    """Every public parameter, field or enum member whose documentation is missing or states no default."""
    found = []
    for name, cls in public_objects():
        if issubclass(cls, enum.Enum):
            found += [f"{name}.{m}: enum member has no '#:' comment" for m, _, text in enum_members(cls) if not text]
            continue
        found += _param_problems(name, init_params(cls))
        for method, params in factories(cls).items():
            found += _param_problems(f"{name}.{method}", params)
    return found


def main(argv: list[str]) -> int:
    """Write docs/api.md (or with ``--check`` only compare it) under the current directory."""
    if "-h" in argv or "--help" in argv or not API_DOC.parent.is_dir():
        print(f"usage: {REGENERATE} [--check]  (from the root of a cdk-replication checkout: writes or checks "
              f"{API_DOC})", file=sys.stderr)
        return 0 if ("-h" in argv or "--help" in argv) else 2
    missing = problems()
    for problem in missing:
        print(problem, file=sys.stderr)
    text = render()
    if "--check" in argv:
        current = API_DOC.read_text() if API_DOC.exists() else ""
        if current != text:
            print(f"{API_DOC} is out of date; regenerate it with `{REGENERATE}`", file=sys.stderr)
            return 1
    else:
        API_DOC.write_text(text)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
