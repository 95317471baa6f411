"""Branch conditions of calls (`calls.branches`), specified by tests/fixtures/branches/*.c.

Each annotated line lists, innermost first, the conditions its calls run under and whether each
holds there: an `if` arm, the `else` arm, a `?:` arm, the right side of `&&` / `||`, and a guard
clause (`if (C) return;` earlier in the block, with where its arm goes). Loops are not branches.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from regaudit.parse.extract import extract_file
from regaudit.parse.prepare import Dialect

FIXTURE = Path(__file__).parent / "fixtures" / "branches" / "callchain.c"
UNDER = re.compile(r"//\s+under: (.*)$")


def expected() -> dict[int, list[list[list[object]]]]:
    """Line -> the branches of each annotated call on it, in the order they appear."""
    lines: dict[int, list[list[list[object]]]] = {}
    for number, line in enumerate(FIXTURE.read_text().splitlines(), start=1):
        match = UNDER.search(line)
        if not match:
            continue
        lines[number] = []
        for call in match[1].split(" | under: "):
            conditions = [] if call.strip() == "-" else [part.split(" => ") for part in call.split(" ; ")]
            lines[number].append([_condition(c, h) for c, h in conditions])
    return lines


def _condition(condition: str, holds: str) -> list[object]:
    """'C', 'false, exits 60' -> ['C', False, 60]."""
    value, _, exits = holds.partition(", exits ")
    return [condition.strip(), value.strip() == "true", *([int(exits)] if exits else [])]


def test_every_call_runs_under_the_annotated_conditions() -> None:
    facts = extract_file(FIXTURE.name, FIXTURE.read_bytes(), Dialect(attributes={}, definitions=()))
    actual: dict[int, list[list[list[object]]]] = {}
    for call in sorted(facts.calls, key=lambda c: (c["line"], c["col"])):
        actual.setdefault(call["line"], []).append(json.loads(call["branches"]))
    wanted = expected()
    assert set(wanted) == set(actual), "every line with a call is annotated, and only those"
    for line, branches in wanted.items():
        assert actual[line] == branches, f"{FIXTURE.name}:{line}"
