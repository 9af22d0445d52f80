"""Issue 13 item 3: the README's examples of "Using the construct in your app" synthesize as written, and the
GSI and TTL example gives every copy that index and that TTL attribute."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aws_cdk
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _examples() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Using the construct in your app", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def _synth(code: str, outdir: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Run one README block as a user's app would, and return its tables (one per synthesized template)."""
    app_class = aws_cdk.App
    # CDK_OUTDIR would not reach the jsii process, which is already running: give the app its outdir instead.
    monkeypatch.setattr(aws_cdk, "App", lambda **props: app_class(outdir=str(outdir), **props))
    exec(compile(code, "README.md", "exec"), {"__name__": "__main__"})
    tables = []
    for template in sorted(outdir.glob("*.template.json")):
        resources = json.loads(template.read_text())["Resources"].values()
        tables += [r["Properties"] for r in resources if r["Type"] == "AWS::DynamoDB::Table"]
    return tables


def test_readme_has_the_examples() -> None:
    assert len(_examples()) >= 2
    assert any("global_secondary_indexes" in code and "time_to_live_attribute" in code for code in _examples())


@pytest.mark.parametrize("index", range(len(_examples())))
def test_readme_example_synthesizes(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = _examples()[index]
    tables = _synth(code, tmp_path, monkeypatch)
    assert tables, "the example synthesized no table"
    if "global_secondary_indexes" in code:
        for table in tables:
            assert [gsi["IndexName"] for gsi in table["GlobalSecondaryIndexes"]] == ["ByCustomer"]
            assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
