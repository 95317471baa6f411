"""What a patch changes, as `regaudit check` decides which seeds to check again (`regaudit.patch.impact`).

A small tree is indexed, the database copied and the copy re-indexed with one file edited, as `regaudit check`
does; the comparison must name the functions, names and memory-cell words the edit can affect, ignore pure
line shifts, and send every seed back to the check when the edit changes what every seed depends on.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fake_tree import make_tree

from regaudit.audit.check import ConsumerAccess, HelperWalk
from regaudit.audit.seeds import SourceSeed
from regaudit.facts import audit_facts
from regaudit.facts.store import FactStore
from regaudit.flow.propagate import Hop, Scope, Seed
from regaudit.index import index_overlay, index_tree
from regaudit.patch.impact import Change, SeedPlanner, compare_facts, standing_helper_lists, standing_helper_walks
from regaudit.patch.line_map import LineMap
from regaudit.ruleset.flow_rules import Source

PERF = "kernel/perf.c"
ORIGINAL = """\
#define PERF_FLAG 1

struct sample { struct pt_regs *regs; };

static void keep(struct sample *s, struct pt_regs *regs)
{
	s->regs = regs;
}

static unsigned long read_ip(struct pt_regs *regs)
{
	return regs->ip;
}

static struct pt_regs *same(struct pt_regs *regs)
{
	return regs;
}

static struct ops perf_ops = { .handler = read_ip };
"""


def edited(old: str, new: str) -> str:
    assert old in ORIGINAL
    return ORIGINAL.replace(old, new)


def change_of(tmp_path: Path, content: str | None, path: str = PERF) -> Change:
    """The change `regaudit check` sees when `path` gets `content` (None: removed)."""
    tree = make_tree(tmp_path / "linux", {PERF: ORIGINAL, "arch/x86/Kconfig": "config X86\n\tdef_bool y\n"})
    base = tmp_path / "base.db"
    index_tree(tree, base)
    scratch = tmp_path / "scratch.db"
    shutil.copyfile(base, scratch)
    new = content.encode() if content is not None else None
    index_overlay(tree, scratch, {path: new} if new is not None else {}, [] if new is not None else [path])
    old = (tree / path).read_bytes() if (tree / path).is_file() else None
    return compare_facts(base, scratch, {path: (old, new)})


def test_lines_moved_by_an_edit_elsewhere_change_no_function(tmp_path: Path) -> None:
    change = change_of(tmp_path, edited("static void keep", "/* a comment\n * above */\nstatic void keep"))
    assert (change.whole, change.functions, change.names) == ("", set(), set())


def test_an_edited_body_changes_its_function_and_the_cells_it_may_read(tmp_path: Path) -> None:
    """`regs` is read_ip's own parameter, no cell another function filled; its fields are named by struct."""
    change = change_of(tmp_path, edited("return regs->ip;", "return regs->ip + regs->sp;"))
    assert change.whole == ""
    assert change.functions == {(PERF, "read_ip")}
    assert "read_ip" in change.names
    assert change.words == {"pt_regs.ip", "pt_regs.sp"}


def test_a_changed_function_names_the_globals_it_reads_and_untyped_fields_bare(tmp_path: Path) -> None:
    change = change_of(tmp_path, edited("return regs->ip;", "return saved_regs->ip + regs->ctx.sp;"))
    # before the patch read_ip read regs->ip; after it, the global saved_regs and two fields of untold structs
    assert change.words == {"pt_regs.ip", "saved_regs", "ip", "ctx", "sp"}


def test_a_return_statement_is_read_from_the_text_so_changing_it_changes_the_function(tmp_path: Path) -> None:
    change = change_of(tmp_path, edited("\treturn regs;\n", "\treturn 0;\n"))
    assert change.functions == {(PERF, "same")}


def test_a_new_binding_names_the_field_called_through(tmp_path: Path) -> None:
    change = change_of(tmp_path, edited(".handler = read_ip", ".handler = read_ip, .other = same"))
    assert "other" in change.names and change.functions == set()


@pytest.mark.parametrize(("content", "why"), [
    (edited("#define PERF_FLAG 1", "#define PERF_FLAG 2"), "a #define in kernel/perf.c changed"),
    (edited("struct sample { struct pt_regs *regs; };", "struct sample { struct pt_regs *regs; int n; };"),
     "a struct of kernel/perf.c changed"),
    (None, "kernel/perf.c is removed"),
])
def test_what_every_seed_depends_on_sends_every_seed_back(tmp_path: Path, content: str | None, why: str) -> None:
    assert change_of(tmp_path, content).whole == why


def test_a_new_file_sends_every_seed_back(tmp_path: Path) -> None:
    assert change_of(tmp_path, "int fresh(struct pt_regs *r) { return r->ip; }\n", "kernel/fresh.c").whole == \
        "kernel/fresh.c is added"


def seed(function: str, file: str) -> SourceSeed:
    source = Source(name="partial", kind="call_result", producer="ftrace_partial_regs", context="entry",
                    context_from="rule", kernels=("7.3",), evidence=(), function="ftrace_partial_regs")
    return SourceSeed(source, Seed("frame", function, file, var="regs"), function, file, 10)


def plan(change: Change, scopes: dict[str, Scope], touched: tuple[str, ...] = ()) -> SeedPlanner:
    rows = [{"arch": "x86", "source": {"rule": "partial", "function": name, "file": "kernel/a.c", "line": 10},
             "scope": scope.to_json()} for name, scope in scopes.items()]
    planner = SeedPlanner(rows, [], change, ["x86"], list(touched))
    planner([], [seed(name, "kernel/a.c") for name in scopes] + [seed("fresh", "kernel/a.c")])
    return planner


def test_a_seed_is_checked_again_only_when_its_scope_meets_the_change() -> None:
    change = Change(functions={(PERF, "read_ip")}, names={"read_ip", "other"}, words={"regs"})
    planner = plan(change, {
        "analysed_it": Scope(functions=frozenset({(PERF, "read_ip")})),
        "calls_through_other": Scope(names=frozenset({"other"})),
        "filled_a_regs_cell": Scope(cells=frozenset({"regs"})),
        "elsewhere": Scope(functions=frozenset({("kernel/b.c", "b")}), names=frozenset({"b"}),
                           cells=frozenset({"ip"})),
    })
    run = {function for _rule, function, _file, _line in planner.selection.run["x86"]}
    kept = {function for _rule, function, _file, _line in planner.selection.kept["x86"]}
    assert run == {"analysed_it", "calls_through_other", "filled_a_regs_cell", "fresh"}  # fresh: no base scope
    assert kept == {"elsewhere"}


def test_a_whole_change_checks_every_seed() -> None:
    planner = plan(Change(whole="a #define in kernel/perf.c changed"), {"elsewhere": Scope()})
    assert planner.selection.run == {} and planner.selection.kept == {}


def test_comments_and_white_space_inside_a_function_change_nothing(tmp_path: Path) -> None:
    change = change_of(tmp_path, edited("\treturn regs->ip;\n", "\t/* the ip */\n        return  regs->ip;  \n"))
    assert (change.whole, change.functions) == ("", set())


BPF_TRACE = "kernel/trace/bpf_trace.c"
PROTOS = b"switch (id) {\n\treturn &bpf_x_proto;\n}\n"  # line 2 holds the `return &X_proto;`


def base_audit(db: Path, lists: dict[str, list[dict[str, Any]]], walks: dict[str, list[HelperWalk]]) -> None:
    """A database whose latest audit holds these helper lists and helper walks."""
    with FactStore(db) as store:
        audit = audit_facts.start_audit(store.conn, {"started": "", "tool_version": "", "rules_hash": "",
                                                     "code_hash": "", "tree_path": "", "kernel_version": "7.3.4",
                                                     "arches": ["x86"], "config": None})
        audit_facts.add_helper_lists(store.conn, audit, lists)
        audit_facts.add_helper_walks(store.conn, audit, {arch: [walk.to_json() for walk in arch_walks]
                                                         for arch, arch_walks in walks.items()})
        audit_facts.finish_audit(store.conn, audit, "")


def test_the_base_helper_lists_stand_with_their_lines_moved_unless_a_return_line_changed(tmp_path: Path) -> None:
    db = tmp_path / "facts.db"
    entry = {"helper": "bpf_x", "proto": "bpf_x_proto", "function": "bpf_x", "ctx_positions": [0],
             "via": ["prog_func_proto"], "file": BPF_TRACE, "line": 2, "condition": ""}
    base_audit(db, {"kprobe_helpers": [entry]}, {})
    below = LineMap({BPF_TRACE: (PROTOS, PROTOS + b"static void added(void) {}\n")})
    above = LineMap({BPF_TRACE: (PROTOS, b"/* one more line */\n" + PROTOS)})
    replaced = LineMap({BPF_TRACE: (PROTOS, PROTOS.replace(b"bpf_x_proto", b"bpf_y_proto"))})
    assert [(e.proto, e.line) for e in standing_helper_lists(db, Change(), below)["kprobe_helpers"]] == [
        ("bpf_x_proto", 2)]
    assert [(e.proto, e.line) for e in standing_helper_lists(db, Change(), above)["kprobe_helpers"]] == [
        ("bpf_x_proto", 3)]
    assert standing_helper_lists(db, Change(), replaced) == {}
    assert standing_helper_lists(db, Change(whole="a #define changed"), below) == {}


def helper_walk(function: str, line: int, scope: Scope) -> HelperWalk:
    """A walk of `function` in bpf_trace.c that reaches `regs->sp` at `line` of it."""
    path = (Hop(function, BPF_TRACE, line - 1), Hop(function, BPF_TRACE, line))
    access = ConsumerAccess(function, BPF_TRACE, line, "sp", "read", None, "direct", path)
    return HelperWalk(function, 0, {("regs->flags & 1", frozenset({"regs"})): None}, [access], scope)


def test_the_base_helper_walks_stand_unless_the_change_meets_their_scope_or_their_lines(tmp_path: Path) -> None:
    db = tmp_path / "facts.db"
    walks = [helper_walk("bpf_x", 3, Scope(functions=frozenset({(BPF_TRACE, "bpf_x")}))),
             helper_walk("bpf_y", 7, Scope(cells=frozenset({"perf_regs.regs"}))),
             helper_walk("bpf_z", 10, Scope())]
    base_audit(db, {}, {"x86": walks})
    old = b"".join(b"line %d\n" % n for n in range(1, 12))
    new = b"added\n" + old.replace(b"line 10\n", b"line ten\n")  # every line moves down, line 10 is replaced
    change = Change(functions={(BPF_TRACE, "bpf_x")}, words={"pt_regs.regs"})
    standing = standing_helper_walks(db, change, LineMap({BPF_TRACE: (old, new)}))
    # bpf_x: analysed a changed function; bpf_z: cites the replaced line; bpf_y stands, one line down
    assert [walk.function for walk in standing["x86"]] == ["bpf_y"]
    moved = standing["x86"][0].accesses[0]
    assert (moved.line, [hop.line for hop in moved.path]) == (8, [7, 8])
    assert standing["x86"][0].answers == walks[1].answers
    assert standing_helper_walks(db, Change(whole="a #define changed"), LineMap({})) == {}
    assert standing_helper_walks(db, Change(words={"regs"}), LineMap({}))["x86"] == walks[:1] + walks[2:]


def test_a_line_map_moves_the_lines_a_patch_left_alone_and_drops_those_it_replaced() -> None:
    old = b"a\nb\nc\nd\ne\n"
    lines = LineMap({"f.c": (old, b"a\nnew\nb\nC\nd\ne\n")})
    assert [lines.place("f.c", line) for line in range(1, 6)] == [1, 3, None, 5, 6]
    assert lines.place("other.c", 4) == 4  # a file the patch does not touch keeps its lines
    assert LineMap({"gone.c": (old, None)}).place("gone.c", 1) is None
