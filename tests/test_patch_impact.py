"""What a patch changes, as `regaudit check` decides which seeds to check again (`regaudit.patch.impact`).

A small tree is indexed, the database copied and the copy re-indexed with one file edited, as `regaudit check`
does; the comparison must name the functions, names and memory-cell words the edit can affect, ignore pure
line shifts, and send every seed back to the check when the edit changes what every seed depends on.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fake_tree import make_tree

from regaudit.audit.seeds import SourceSeed
from regaudit.facts import audit_facts
from regaudit.facts.store import FactStore
from regaudit.flow.propagate import Scope, Seed
from regaudit.index import index_overlay, index_tree
from regaudit.patch.impact import Change, SeedPlanner, compare_facts, standing_helper_lists
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


def test_an_edited_body_changes_its_function_and_the_words_it_names(tmp_path: Path) -> None:
    change = change_of(tmp_path, edited("return regs->ip;", "return regs->ip + regs->sp;"))
    assert change.whole == ""
    assert change.functions == {(PERF, "read_ip")}
    assert {"read_ip", "regs"} <= change.names | change.words


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


def test_the_base_helper_lists_stand_while_their_return_lines_stay_put(tmp_path: Path) -> None:
    """A helper list cites `return &X_proto;` lines: moved by the patch, the list is derived again."""
    db = tmp_path / "facts.db"
    entry = {"helper": "bpf_x", "proto": "bpf_x_proto", "function": "bpf_x", "ctx_positions": [0],
             "via": ["prog_func_proto"], "file": "kernel/trace/bpf_trace.c", "line": 2, "condition": ""}
    with FactStore(db) as store:
        audit = audit_facts.start_audit(store.conn, {"started": "", "tool_version": "", "rules_hash": "",
                                                     "tree_path": "", "kernel_version": "7.3.4", "arches": ["x86"],
                                                     "config": None})
        audit_facts.add_helper_lists(store.conn, audit, {"kprobe_helpers": [entry]})
        audit_facts.finish_audit(store.conn, audit, "")
    before = b"switch (id) {\n\treturn &bpf_x_proto;\n}\n"
    below = {entry["file"]: (before, before + b"static void added(void) {}\n")}
    above = {entry["file"]: (before, b"/* one more line */\n" + before)}
    assert [e.proto for e in standing_helper_lists(db, Change(), below)["kprobe_helpers"]] == ["bpf_x_proto"]
    assert standing_helper_lists(db, Change(), above) == {}
    assert standing_helper_lists(db, Change(whole="a #define changed"), below) == {}
