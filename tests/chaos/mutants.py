"""Mutation check of the chaos suite: it must fail when any one replication rule is switched off.

Usage (from the checkout, with the project's virtualenv)::

    python -m tests.chaos.mutants                  # baseline + every mutant, fast profile, no shrinking
    python -m tests.chaos.mutants tiebreak order   # only these mutants
    python -m tests.chaos.mutants --shrink         # let hypothesis shrink each falsifying program (slower)

The app is synthesized once; then the property test runs once without a mutant (it must pass) and once per
mutant with ``CHAOS_MUTANT=<name>``, which makes every replicator container load the mutant through
``tests/chaos/worker/chaos_shim.py`` (lambda_src/ is never edited). For each run it prints whether the suite
caught the mutant (it must) and the falsifying program with the first problems the checks reported. The exit
status is non-zero if the baseline failed or any mutant survived.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .worker.chaos_shim import MUTANTS

ROOT = Path(__file__).resolve().parents[2]
TEST = "tests/chaos/test_convergence.py"

#: What each mutant switches off (the rule of docs/../DESIGN.md it breaks).
DESCRIPTIONS = {
    "loop": "loop prevention (rule 3): no write is recognised as the replicator's own",
    "tiebreak": "tie-break (rule 4): equal conflict values are not ordered by origin region",
    "tombstones": "tombstones (rule 5): deletes are replicated as plain DeleteItem, nothing versioned",
    "order": "per-item ordering (rule 2): an item's records are planned in reverse stream order",
    "ttl": "TTL expiry (rules 1, 5): deletes made by DynamoDB's TTL process are not replicated",
}


@dataclass
class Outcome:
    name: str
    passed: bool
    seconds: float
    falsifying: str
    problems: str
    output: str


def _run(name: str, assembly: Path, shrink: bool) -> Outcome:
    env = dict(os.environ)
    env.update({"CHAOS_ASSEMBLY": str(assembly), "CHAOS_MUTANT": "" if name == "baseline" else name,
                "CHAOS_SHRINK": "1" if shrink else "0"})
    env.setdefault("JSII_NODE", str(ROOT / "node_modules" / ".bin" / "node"))
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", TEST, "-x", "-q", "-p", "no:cacheprovider", "--tb=short"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    output = proc.stdout + proc.stderr
    return Outcome(name, proc.returncode == 0, time.monotonic() - started, _falsifying(output), _problems(output), output)


def _falsifying(output: str) -> str:
    """The failing program hypothesis printed (the fixture's repr left out) and its reproduce blob."""
    text = "\n".join(line[1:] if line.startswith("E ") else line for line in output.splitlines())
    program = re.search(r"program=(Program\(\n\s*skews=[^\n]*\n\s*ops=[^\n]*\n\s*\))", text)
    blob = re.search(r"@reproduce_failure\([^)]*\)", text)
    found = [re.sub(r"\n\s*", " ", program.group(1)) if program else "", blob.group(0) if blob else ""]
    return "\n".join(part for part in found if part)


def _problems(output: str) -> str:
    """The first lines of the failure the checks raised (ChaosFailure or another error)."""
    keep = []
    for line in output.splitlines():
        if not line.startswith("E "):
            continue
        text = line[1:].strip()
        if text.startswith(("Failing test case", "Falsifying example")):
            break
        if text and not text.startswith(("+", "|")):
            keep.append(text)
    return "\n".join(keep[:6])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mutants", nargs="*", metavar="MUTANT", help=f"default: all of {sorted(MUTANTS)}")
    parser.add_argument("--shrink", action="store_true", help="shrink falsifying programs (slower)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without a mutant")
    args = parser.parse_args(argv)
    chosen = args.mutants or list(MUTANTS)
    unknown = set(chosen) - set(MUTANTS)
    if unknown:
        parser.error(f"unknown mutant(s) {sorted(unknown)}; choose from {sorted(MUTANTS)}")

    from cdk_replication.local import synthesize

    with tempfile.TemporaryDirectory(prefix="chaos-mutants-") as work:
        print("synthesizing tests/chaos/chaos_app.py once ...", flush=True)
        assembly = synthesize(Path(__file__).resolve().parent / "chaos_app.py", Path(work) / "cdk.out")
        runs = ([] if args.no_baseline else ["baseline"]) + chosen
        failed = False
        for name in runs:
            outcome = _run(name, assembly, args.shrink)
            if name == "baseline":
                verdict = "passes (as it must)" if outcome.passed else "FAILS without a mutant"
                failed |= not outcome.passed
            else:
                verdict = "CAUGHT" if not outcome.passed else "SURVIVED (the suite missed it)"
                failed |= outcome.passed
            print(f"\n=== {name}: {DESCRIPTIONS.get(name, 'no mutant')}\n    {verdict} in {outcome.seconds:.0f} s")
            if not outcome.passed:
                if outcome.falsifying:
                    print("    falsifying example:\n" + _indent(outcome.falsifying, 8))
                print("    first problems reported:\n" + _indent(outcome.problems or outcome.output[-2000:], 8))
            sys.stdout.flush()
    return 1 if failed else 0


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


if __name__ == "__main__":
    raise SystemExit(main())
