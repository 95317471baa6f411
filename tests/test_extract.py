"""Extraction facts, specified by annotated C fixtures (tests/fixtures/extract/*.c).

Every member access in a fixture must be annotated and every annotation must be produced (exact
set); functions, calls, assignments, bindings and guards are checked for presence. On failure the
fixture is printed with the actual accesses interleaved, so the diff reads like the source.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from regaudit.parse.extract import FileFacts, extract_file, register_attribute_flags
from regaudit.parse.prepare import AttributeMacro, Dialect, load_dialect

FIXTURES = Path(__file__).parent / "fixtures" / "extract"
ANNOTATION = re.compile(r"//\s((?:access|function|call|assign|binding|condition):.*)$")


def fixture_dialect() -> Dialect:
    """The real rule data with attribute macros as the kernel headers define them."""
    dialect = load_dialect(Path("/nonexistent"))  # no headers: attributes given below
    attributes = {
        "__always_inline": AttributeMacro("__always_inline", False, True, False),
        "__weak": AttributeMacro("__weak", False, False, True),
    }
    dialect = Dialect(attributes=attributes, definitions=dialect.definitions)
    register_attribute_flags(dialect)
    return dialect


def annotations(path: Path) -> list[tuple[int, str, list[str]]]:
    found = []
    last_code_line = 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = ANNOTATION.search(line)
        code = line.split("//")[0].strip()
        if match:
            for part in match.group(1).split(" | "):
                kind, _, rest = part.partition(":")
                target = last_code_line if kind == "condition" and not code else number
                found.append((target, kind.strip(), rest.split() if kind != "condition" else [rest.strip()]))
        if code:
            last_code_line = number
    return found


@pytest.fixture(scope="module", params=sorted(p.name for p in FIXTURES.glob("*.c")))
def fixture(request: pytest.FixtureRequest) -> tuple[Path, FileFacts]:
    path = FIXTURES / request.param
    return path, extract_file(path.name, path.read_bytes(), fixture_dialect())


def access_key(row: dict[str, object]) -> tuple[object, ...]:
    return (row["line"], row["base_var"], row["member"], row["access"], row["mask"])


def test_member_accesses_are_exactly_the_annotated_ones(fixture: tuple[Path, FileFacts]) -> None:
    path, facts = fixture
    expected = set()
    for line, kind, words in annotations(path):
        if kind == "access":
            var, member, access, *rest = words
            mask = rest[0].removeprefix("mask=") if rest else None
            expected.add((line, var, member, access, mask))
    actual = {access_key(row) for row in facts.accesses}
    if actual != expected:
        lines = path.read_text().splitlines()
        report = []
        for number, text in enumerate(lines, start=1):
            report.append(f"{number:4} {text}")
            report += [f"     ^ actual: {key[1:]}" for key in sorted(actual - expected, key=str) if key[0] == number]
            report += [f"     ^ MISSING: {key[1:]}" for key in sorted(expected - actual, key=str) if key[0] == number]
        pytest.fail("member accesses differ from the annotations:\n" + "\n".join(report))


def test_functions_calls_assignments_bindings_and_guards(fixture: tuple[Path, FileFacts]) -> None:
    path, facts = fixture
    for line, kind, words in annotations(path):
        if kind == "function":
            name, *pairs = words
            rows = [f for f in facts.functions if f["name"] == name and f["line"] == line]
            assert rows, f"line {line}: no function {name}"
            for key, value in (pair.split("=") for pair in pairs):
                assert str(rows[0][key]) == value, f"line {line}: {name}.{key} = {rows[0][key]!r}, expected {value}"
        elif kind == "call":
            assert any(c["line"] == line and (c["callee"] or c["callee_member"]) in (words[0], words[0].split(".")[-1])
                       for c in facts.calls), f"line {line}: no call {words[0]}"
        elif kind == "assign":
            lhs, rhs_kind, *callee = words
            assert any(a["line"] == line and a["lhs_var"] == lhs and a["rhs_kind"] == rhs_kind
                       and (not callee or a["rhs_callee"] == callee[0]) for a in facts.assignments), \
                f"line {line}: no assignment {words}"
        elif kind == "binding":
            assert any(b["line"] == line and b["field"] == words[0] and b["target"] == words[1]
                       for b in facts.bindings), f"line {line}: no binding {words}"
        elif kind == "condition":
            guards = {a["condition"] for a in facts.accesses if a["line"] == line}
            assert guards == {words[0]}, f"line {line}: guard {guards}, expected {words[0]!r}"


def test_definition_macros_keep_parameters_typed(fixture: tuple[Path, FileFacts]) -> None:
    _, facts = fixture
    helper = next(f for f in facts.functions if f["name"] == "fixture_helper")
    params = [(p["name"], p["type"]) for p in facts.params if p["function_id"] == helper["id"]]
    assert params == [("regs", "struct pt_regs *"), ("map", "void *"), ("flags", "u64")]


def test_per_cpu_buffers_are_marked(fixture: tuple[Path, FileFacts]) -> None:
    _, facts = fixture
    percpu = [v for v in facts.variables if v["storage"] == "percpu"]
    assert [(v["name"], v["type"]) for v in percpu] == [("fixture_regs", "struct pt_regs [4]")]


def test_struct_members_in_order_with_array_lengths(fixture: tuple[Path, FileFacts]) -> None:
    _, facts = fixture
    struct = next(s for s in facts.structs if s["name"] == "pt_regs")
    members = [(m["name"], m["array_len"]) for m in facts.struct_members if m["struct_id"] == struct["id"]]
    assert members == [("flags", None), ("cs", None), ("regs", "31")]
    assert struct["condition"] == "", "the include guard is not a configuration condition"


def test_calls_starting_together_are_recorded_outer_first() -> None:
    """`CLASS(fd, arg)(x)` holds two calls at one byte: row order (and so call ids) must not vary per run."""
    source = b"void f(int x)\n{\n\tCLASS(fd, arg)(x);\n}\n"
    calls = extract_file("t.c", source, fixture_dialect()).calls
    assert [(row["callee_expr"], row["n_args"]) for row in calls] == [("CLASS(fd, arg)", 1), ("CLASS", 2)]


def test_attribute_macros_are_blanked_only_as_whole_identifiers() -> None:
    """The rewriter blanks an attribute name where an identifier scan of the text meets it, and nowhere else."""
    attributes = {name: AttributeMacro(name, False, False, False) for name in ("__weak", "__weak_alias", "notrace")}
    dialect = Dialect(attributes=attributes, definitions=())
    source = b"__weak int a; 9__weak b; x__weak c; __weak_aliasx d; notrace __weak_alias\n#if notrace\n"
    prepared = dialect.prepare(source)
    assert [(start, name) for start, _end, name in prepared.attributes] == [(0, "__weak"), (15, "__weak"),
                                                                             (53, "notrace"), (61, "__weak_alias")]
    assert prepared.text.count(b"notrace") == 1, "a conditional directive keeps its text"
