"""The bridge derivations on a fixture tree whose C carries the expected results as comments.

tests/fixtures/bridges/tree is the specification. In kernel/: `// helper: PROTO FUNC CTX VIA [if GUARD]`
above a `return` line is one HelperEntry that line yields (`// helper: none`: it yields nothing). In
arch/: `// yields BRIDGE: MEMBER...` above a line lists the reads BRIDGE cites that line for (`none`:
it is cited for nothing). The tests compare the exact sets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from regaudit.errors import BadInput
from regaudit.facts.bridge_facts import BridgeFacts
from regaudit.flow.bpf_helpers import HelperEntry, bpf_helpers
from regaudit.flow.c_text import line_guards
from regaudit.flow.register_reads import DerivedRead, dynamic_reads, table_reads
from regaudit.index import index_tree
from regaudit.parse import parser
from regaudit.parse.conditions import Conditions, include_guard
from regaudit.ruleset.flow_rules import Bridge

TREE = Path(__file__).parent / "fixtures" / "bridges" / "tree"
_HELPER = re.compile(r"//\s*helper: (?:none\b.*|(?P<spec>\S+ \S+ \S+ \S+(?: if .+)?))$")
_YIELDS = re.compile(r"//\s*yields (?P<bridge>\w+): (?P<members>.*)$")

Helper = tuple[str, str, tuple[int, ...], tuple[str, ...], str, int, str]
Read = tuple[str, str, int, str]


def _bridge(name: str, kind: str, function: str, **keys: str) -> Bridge:
    return Bridge(name=name, kind=kind, function=function, position=0, kernels=("7.3",), evidence=(), **keys)


KPROBE = _bridge("kprobe_prog_helpers", "calls_helpers", "bpf_prog_run", program_type="BPF_PROG_TYPE_KPROBE",
                 proto_function="prog_func_proto")
READ_BRIDGES = {
    "perf_reg_value_x86": _bridge("perf_reg_value_x86", "reads_by_table", "perf_reg_value", arch="x86",
                                  table_function="perf_reg_value", table="pt_regs_offset"),
    "perf_reg_value_arm64": _bridge("perf_reg_value_arm64", "reads_by_table", "perf_reg_value", arch="arm64",
                                    table_function="perf_reg_value"),
    **{
        f"{function}_{arch}": _bridge(f"{function}_{arch}", "dynamic_read", function, arch=arch, bound=bound)
        for function, bound in (
            ("regs_get_register", "MAX_REG_OFFSET"),
            ("regs_get_kernel_argument", "NR_REG_ARGUMENTS"),
            ("regs_get_kernel_stack_nth", "kernel_stack_pointer"),
        )
        for arch in ("x86", "arm64")
    },
}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bridges") / "facts.db"
    index_tree(TREE, path)  # the sound prefilter: kernel/bpf/helpers.c names no pt_regs and is skipped
    return path


def _annotated(pattern: re.Pattern[str]) -> list[tuple[re.Match[str], str, int]]:
    """Each annotation with the file and 1-based line of the code line below it (annotations stack)."""
    found = []
    for path in sorted(TREE.rglob("*.[ch]")):
        relative = str(path.relative_to(TREE))
        pending: list[re.Match[str]] = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = pattern.search(line.strip())
            if match:
                pending.append(match)
            elif pending and line.strip() and not line.strip().startswith("//"):
                found += [(spec, relative, number) for spec in pending]
                pending = []
    return found


def expected_helpers() -> set[Helper]:
    expected = set()
    for match, file, line in _annotated(_HELPER):
        if match["spec"]:
            spec, _, guard = match["spec"].partition(" if ")
            proto, function, ctx, via = spec.split()
            positions = tuple(int(p) for p in ctx.split(","))
            expected.add((proto, function, positions, tuple(via.split(">")), file, line, guard))
    return expected


def expected_reads(bridge: str, how: str) -> set[Read]:
    return {
        (member, file, line, how)
        for match, file, line in _annotated(_YIELDS)
        if match["bridge"] == bridge and not match["members"].startswith("none")
        for member in match["members"].split()
    }


def as_helpers(entries: list[HelperEntry]) -> set[Helper]:
    return {(e.proto, e.function, e.ctx_positions, e.via, e.file, e.line, e.condition) for e in entries}


def as_reads(reads: list[DerivedRead]) -> set[Read]:
    return {(r.member, r.file, r.line, r.how) for r in reads}


def test_helpers_match_the_spec_exactly(db: Path) -> None:
    entries = bpf_helpers(db, TREE, KPROBE)
    assert as_helpers(entries) == expected_helpers()
    assert len(entries) == len(expected_helpers()), "each return line yields each proto once"
    assert {e.helper for e in entries} >= {"fake_get_stackid", "fake_ip_kprobe", "fake_base_ctx"}


def test_the_base_func_proto_is_read_from_the_source_text(db: Path) -> None:
    """kernel/bpf/helpers.c is not in the database, yet its switch and protos are walked (see the spec)."""
    with BridgeFacts(db) as facts:
        assert facts.proto_function_definitions("base_func_proto") == ()
        assert facts.proto_fields("fake_base_ctx_proto") == ()
        assert facts.proto_function_definitions("prog_func_proto")


@pytest.mark.parametrize("name", sorted(READ_BRIDGES))
def test_reads_match_the_spec_exactly(db: Path, name: str) -> None:
    bridge = READ_BRIDGES[name]
    derive, how = (table_reads, "perf-register-table") if bridge.kind == "reads_by_table" else (dynamic_reads,
                                                                                                 "dynamic")
    assert bridge.arch is not None
    expected = expected_reads(name, how)
    assert expected, f"the fixture specifies no reads for {name}"
    reads = derive(db, TREE, bridge.arch, bridge)
    assert as_reads(reads) == expected
    assert len(reads) == len({r.member for r in reads}), "each member once"


def test_reads_come_in_pt_regs_layout_order(db: Path) -> None:
    reads = dynamic_reads(db, TREE, "x86", READ_BRIDGES["regs_get_register_x86"])
    assert [r.member for r in reads] == ["r8", "bx", "ax", "orig_ax", "ip", "sp"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda db: bpf_helpers(db, TREE, _bridge("b", "calls_helpers", "f", proto_function="no_such_proto")),
         "no function no_such_proto"),
        (lambda db: table_reads(db, TREE, "x86", _bridge("b", "reads_by_table", "perf_reg_value",
                                                         table_function="perf_reg_value", table="no_table")),
         "no initialized table no_table"),
        (lambda db: table_reads(db, TREE, "x86", _bridge("b", "reads_by_table", "f", table_function="missing_fn")),
         "no definition of missing_fn"),
        (lambda db: dynamic_reads(db, TREE, "x86", _bridge("b", "dynamic_read", "regs_get_register",
                                                           bound="NO_SUCH_BOUND")),
         "no definition of NO_SUCH_BOUND"),
        (lambda db: dynamic_reads(db, TREE, "x86", KPROBE), "expected a dynamic_read entry"),
    ],
)
def test_missing_c_is_one_line_bad_input(db: Path, call: Callable[[Path], object], message: str) -> None:
    with pytest.raises(BadInput, match=message) as raised:
        call(db)
    assert "\n" not in str(raised.value)


GUARDED = """#ifndef _GUARD_H
#define _GUARD_H
#ifdef CONFIG_A
int a;
#elif defined(CONFIG_B) || X > 1
int b;
#else /* neither */
int c;
#ifndef CONFIG_D
int d;
#endif
#endif
#if IS_ENABLED(CONFIG_E)
int e;
#endif
#endif
"""


def test_line_guards_are_written_as_the_index_writes_conditions() -> None:
    """Where tree-sitter sees the directives, the line-based guards equal regaudit.parse.conditions'."""
    root = parser.parse(GUARDED.encode()).root_node
    conditions = Conditions(parser.captures("definitions", root).get("branch", []), include_guard(root))
    lines = GUARDED.splitlines()
    offsets = [sum(len(line) + 1 for line in lines[:number]) for number in range(len(lines))]
    guards = line_guards(lines)
    declarations = [number for number, line in enumerate(lines) if line.startswith("int ")]
    assert [guards[n] for n in declarations] == [conditions.at(offsets[n]) for n in declarations]
    assert guards[declarations[3]] == "!(defined(CONFIG_A)) && !((defined(CONFIG_B) || X > 1)) && !defined(CONFIG_D)"
