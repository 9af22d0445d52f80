"""Issue 13 item 3: every prop of every public construct is documented with its type and default, in a
generated API reference (docs/api.md) that is kept up to date."""

from __future__ import annotations

from pathlib import Path

from cdk_replication import _apiref

ROOT = Path(__file__).resolve().parent.parent


def test_every_public_parameter_states_its_default() -> None:
    problems = _apiref.problems()
    assert not problems, (
        "public parameters/fields without a docstring entry or a stated default ('Default: ...', or 'Required' "
        "for a required one):\n" + "\n".join(problems)
    )


def test_api_reference_is_up_to_date() -> None:
    current = (ROOT / _apiref.API_DOC).read_text()
    assert current == _apiref.render(), f"{_apiref.API_DOC} is out of date: regenerate it with `{_apiref.REGENERATE}`"


def test_every_public_name_is_in_the_reference() -> None:
    text = (ROOT / _apiref.API_DOC).read_text()
    for name, _ in _apiref.public_objects():
        assert f"### {name}\n" in text


def test_docstring_entries_are_read_per_section() -> None:
    doc = """Summary.

    Args:
        first: one line. Default: 1.
        second: two
            lines. Required.

    Attributes:
        first: not an argument.

    Trailing text.
    """
    assert _apiref.docstring_entries(doc, "Args") == {"first": "one line. Default: 1.", "second": "two lines. Required."}
    assert _apiref.docstring_entries(doc, "Attributes") == {"first": "not an argument."}


def test_reference_is_linked_from_the_readme() -> None:
    assert "(docs/api.md)" in (ROOT / "README.md").read_text()
