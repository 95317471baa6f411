"""Branch conditions of calls (`calls.branches`), specified by tests/fixtures/branches/*.c.

Each annotated line lists, innermost first, the conditions its calls run under and whether each
holds there: an `if` arm, the `else` arm, a `?:` arm, the right side of `&&` / `||`, and a guard
clause (`if (C) return;` earlier in the block, with where its arm goes). Loops are not branches. The last
test reads the same facts from the index of the real 7.3 tree.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from kernel_trees import indexed_db

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


def test_a_goto_names_the_label_a_backward_search_meets_first() -> None:
    """Of two statements with one label, a goto's destination is the later one, and the outer of nested ones."""
    source = b"""void f(int x)
{
\tif (x)
\t\tgoto out;
\t{ out: x = 1; }
out: x = 2;
\tg(x);
\tif (x)
\t\tgoto in;
in:
in: x = 3;
\th(x);
}
"""
    facts = extract_file("t.c", source, Dialect(attributes={}, definitions=()))
    assert [(call["callee"], json.loads(call["branches"])) for call in facts.calls] == [
        ("g", [["x", False, 6]]), ("h", [["x", False, 10], ["x", False, 6]])]


def test_the_real_perf_callchain_branches_are_in_the_index() -> None:
    """Linux 7.3.4 arch/x86/events/core.c:2885-2896: `if (perf_guest_state()) return;`, then
    `if (perf_hw_regs(regs)) { if (perf_callchain_store(entry, regs->ip)) return; unwind_start(.., regs, NULL); }
    else unwind_start(.., NULL, (void *)regs->sp);`. kernel/events/callchain.c:248-251 `if (!user_mode(regs)) {
    if (!is_user_task(current)) goto exit_put; regs = task_pt_regs(current); }` inside `if (user && !crosstask)`,
    with the label `exit_put:` at :274."""
    conn = sqlite3.connect(indexed_db("7.3"))
    try:
        calls = dict(conn.execute("SELECT line, branches FROM calls WHERE file = 'arch/x86/events/core.c' "
                                  "AND callee = 'unwind_start'").fetchall())
        (store,) = conn.execute("SELECT branches FROM assignments WHERE file = 'kernel/events/callchain.c' "
                                "AND line = 251 AND lhs_var = 'regs'").fetchone()
    finally:
        conn.close()
    assert json.loads(calls[2893]) == [["perf_callchain_store(entry, regs->ip)", False, -1],
                                       ["perf_hw_regs(regs)", True], ["perf_guest_state()", False, -1]]
    assert json.loads(calls[2895]) == [["perf_hw_regs(regs)", False], ["perf_guest_state()", False, -1]]
    assert json.loads(store)[:3] == [["!is_user_task(current)", False, 274], ["!user_mode(regs)", True],
                                     ["user && !crosstask", True]]


def test_conditions_stop_at_their_function_and_hold_at_file_scope() -> None:
    """A guard clause covers the rest of its block only: the next function's calls run under nothing. A `?:` arm
    in a file-scope initializer is a condition of the calls in it."""
    source = b"""int f(int x)
{
\tif (x)
\t\treturn 0;
\treturn g(x);
}
int h(int y) { return k(y); }
int table = ready ? setup(1) : fallback(2);
"""
    facts = extract_file("t.c", source, Dialect(attributes={}, definitions=()))
    assert [(call["callee"], json.loads(call["branches"])) for call in facts.calls] == [
        ("g", [["x", False, -1]]), ("k", []), ("setup", [["ready", True]]), ("fallback", [["ready", False]])]
