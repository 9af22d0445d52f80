"""README's Operations section is the runbook: it must name every alarm the constructs create."""

from __future__ import annotations

import re
from pathlib import Path

from cdk_replication import alarms

README = Path(__file__).resolve().parents[1] / "README.md"


def _alarm_kinds() -> set[str]:
    """Every alarm kind the constructs create: the module's ``ALARM_KINDS`` if it lists them, else every
    upper-case string constant listed under its "Alarm kinds" comment."""
    listed = getattr(alarms, "ALARM_KINDS", None)
    if listed is not None:
        return set(listed)
    source = Path(alarms.__file__).read_text()
    block = source.split("#: Alarm kinds", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r'^[A-Z_]+ = "([A-Za-z0-9]+)"', block, flags=re.M))


def test_the_runbook_names_every_alarm_with_what_to_do() -> None:
    operations = README.read_text().split("## Operations", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([A-Za-z0-9]+)` \|(.+)$", operations, flags=re.M)}
    kinds = _alarm_kinds()
    assert len(kinds) >= 8, kinds
    missing = sorted(kinds - rows.keys())
    assert not missing, f"README's Operations runbook does not name the alarms {missing}"
    for kind in kinds:
        meaning, action = [cell.strip() for cell in rows[kind].split("|")[:2]]
        assert meaning and action, f"runbook row of {kind} lacks its meaning or its first step"


def test_the_runbook_does_not_promise_what_is_missing() -> None:
    text = README.read_text()
    assert "no redrive command" not in text
    assert "cdk-replication redrive" in text
