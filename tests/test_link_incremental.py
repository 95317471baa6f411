"""Incremental link on Linux 7.3.4: after `index_overlay` re-indexes a few edited files of a linked database,
`link_database` given the overlay's `IndexChanges` resolves again only what those files can reach, and the
edges it leaves are exactly those a full relink of the same database gives.

Edges are compared by what a reader checks them by (`EdgeView`: caller, call file and line, callee name, file
and line, kind, condition), as a multiset, since the overlay renumbers the rows of the files it re-parses.
Edits that can change the whole resolution (a Kconfig file, an include/asm-generic/ header, a macro some `#if`
guard tests) relink the arch anew, as does an arch not linked just before the overlay.

Citations (7.3.4, each line read in the tree):
- arch/x86/include/asm/ftrace.h:50 `static __always_inline struct pt_regs *arch_ftrace_get_regs(...)`, :82
  `#define ftrace_graph_func ftrace_graph_func`, tested by include/linux/ftrace.h:1104 `#ifndef ftrace_graph_func`.
- kernel/trace/bpf_trace.c:2638 `kprobe_multi_link_handler`, :2648 its return, :2652
  `kprobe_multi_link_exit_handler`, :2414 `kprobe_multi_put_modules`.
- arch/x86/events/core.c:2879-2903 x86's `perf_callchain_kernel`, replacing kernel/events/callchain.c:40's __weak
  one for the call at kernel/events/callchain.c:244.
- kernel/trace/fprobe.c:243 `return fp->entry_handler(fp, ip, parent_ip, fregs, data);`.
- kernel/trace/trace_fprobe.c:589 `.entry_handler = fentry_dispatcher` (in a `struct fprobe` initialiser).
"""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from kernel_trees import kernel_tree, private_db

from regaudit.facts.link_facts import EdgeView, current_links, edges_of
from regaudit.flow.link import ArchLink, link_database
from regaudit.index import index_overlay

BPF_TRACE = "kernel/trace/bpf_trace.c"
HANDLER_END = "\treturn is_kprobe_session(link->link.prog) ? err : 0;\n}\n\nstatic void"  # kprobe_multi_link_handler's
HANDLER_LOCAL = "int err;\n\n\tlink = container_of(fp"  # and its local `err`


def initialised_err(tree: Path) -> dict[str, bytes]:
    """bpf_trace.c with `err` initialised in kprobe_multi_link_handler: its calls are re-parsed, none changes."""
    return edited(tree, BPF_TRACE, HANDLER_LOCAL, HANDLER_LOCAL.replace("err;", "err = 0;"))


@pytest.fixture(scope="module")
def tree() -> Path:
    return kernel_tree("7.3")


@pytest.fixture(scope="module")
def linked(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 7.3 database with x86 linked."""
    db = private_db("7.3", tmp_path_factory)
    link_database(db, tree, ["x86"])
    return db


@dataclass(frozen=True)
class Relinked:
    """One edit linked both ways: incrementally from the linked edges, and anew."""

    incremental: ArchLink
    full: ArchLink
    edges: Counter[EdgeView]  # after the incremental link
    full_edges: Counter[EdgeView]


def relink(tree: Path, linked: Path, work: Path, files: dict[str, bytes], removed: tuple[str, ...] = (),
           arch: str = "x86") -> Relinked:
    """Overlay `files` and `removed` on a copy of `linked`, then link `arch` with and without the overlay's changes."""
    incremental_db, full_db = work / "incremental.db", work / "full.db"
    shutil.copyfile(linked, incremental_db)
    overlay = index_overlay(tree, incremental_db, files, list(removed))
    shutil.copyfile(incremental_db, full_db)
    incremental = link_database(incremental_db, tree, [arch], overlay.changes).arches[0]
    full = link_database(full_db, tree, [arch]).arches[0]
    return Relinked(incremental, full, edge_views(incremental_db, arch), edge_views(full_db, arch))


def edge_views(db: Path, arch: str) -> Counter[EdgeView]:
    with sqlite3.connect(db) as conn:
        return Counter(edges_of(conn, arch))


def edited(tree: Path, path: str, old: str, new: str) -> dict[str, bytes]:
    """`path` with its only `old` text replaced by `new`."""
    data = (tree / path).read_bytes()
    assert data.count(old.encode()) == 1, f"{path}: {old!r} is not there once"
    return {path: data.replace(old.encode(), new.encode())}


def assert_same_edges(result: Relinked, *, incremental: bool = True) -> None:
    assert result.incremental.incremental is incremental
    assert not result.full.incremental
    assert result.edges == result.full_edges
    counts = (result.incremental.calls, result.incremental.resolved_calls, result.incremental.edges)
    assert counts == (result.full.calls, result.full.resolved_calls, result.full.edges)


def callees(edges: Counter[EdgeView], file: str, line: int) -> set[tuple[str, str, str]]:
    return {(e.callee, e.callee_file, e.kind) for e in edges if (e.call_file, e.call_line) == (file, line)}


def test_an_overlay_keeps_the_edges_but_no_longer_counts_them_current(tree: Path, linked: Path,
                                                                      tmp_path: Path) -> None:
    """The overlay's run makes the edges stale, so an audit relinks; they stay for that relink to start from."""
    db = tmp_path / "copy.db"
    shutil.copyfile(linked, db)
    index_overlay(tree, db, initialised_err(tree), [])
    with sqlite3.connect(db) as conn:
        assert current_links(conn) == []
        assert conn.execute("SELECT count(*) FROM edges WHERE arch = 'x86'").fetchone()[0] > 10_000


def test_a_call_added_to_an_existing_function_gets_its_edge_and_nothing_else_moves(tree: Path, linked: Path,
                                                                                   tmp_path: Path) -> None:
    """The new call's id is new: it is resolved; every other call keeps its edges."""
    result = relink(tree, linked, tmp_path, edited(tree, BPF_TRACE, HANDLER_END,
                                                   f"\tkprobe_multi_put_modules(NULL, 0);\n{HANDLER_END}"))
    assert_same_edges(result)
    assert ("kprobe_multi_put_modules", "kernel/trace/bpf_trace.c", "direct") in callees(result.edges, BPF_TRACE, 2648)


def test_a_static_inline_changed_in_an_x86_asm_header_relinks_to_the_same_edges(tree: Path, linked: Path,
                                                                                tmp_path: Path) -> None:
    """arch/x86/include/asm/ftrace.h overrides no include/asm-generic/ header that defines anything: its calls
    and the calls of what it defines are resolved again, the rest is kept."""
    result = relink(tree, linked, tmp_path, edited(
        tree, "arch/x86/include/asm/ftrace.h", "\tif (!arch_ftrace_regs(fregs)->regs.cs)\n",
        "\tif (!arch_ftrace_regs(fregs)->regs.cs && !user_mode(&arch_ftrace_regs(fregs)->regs))\n",
    ))
    assert_same_edges(result)
    assert ("user_mode", "arch/x86/include/asm/ptrace.h", "direct") in callees(
        result.edges, "arch/x86/include/asm/ftrace.h", 54)


def test_removing_the_x86_override_sends_its_callers_to_the_weak_definition(tree: Path, linked: Path,
                                                                          tmp_path: Path) -> None:
    """A definition that disappears changes the tier its name resolves to, for calls in files left unchanged."""
    source = (tree / "arch/x86/events/core.c").read_text()
    start = source.index("void\nperf_callchain_kernel(struct perf_callchain_entry_ctx *entry, struct pt_regs *regs)\n{")
    end = source.index("\n}\n", start) + 3
    result = relink(tree, linked, tmp_path, {"arch/x86/events/core.c": (source[:start] + source[end:]).encode()})
    assert_same_edges(result)
    assert callees(result.edges, "kernel/events/callchain.c", 244) == {
        ("perf_callchain_kernel", "kernel/events/callchain.c", "weak")}


def test_a_new_entry_handler_binding_reaches_the_fprobe_call(tree: Path, linked: Path, tmp_path: Path) -> None:
    """Every call through a field is resolved again, so a binding added in one file reaches calls in others."""
    binding = "static struct fprobe regaudit_probe = { .entry_handler = kprobe_multi_link_exit_handler };\n\n"
    result = relink(tree, linked, tmp_path, edited(tree, BPF_TRACE, HANDLER_END,
                                                   HANDLER_END.replace("static void", binding + "static void")))
    assert_same_edges(result)
    assert ("kprobe_multi_link_exit_handler", "kernel/trace/bpf_trace.c", "pointer") in callees(
        result.edges, "kernel/trace/fprobe.c", 243)


def test_a_removed_file_takes_its_calls_definitions_and_bindings_along(tree: Path, linked: Path,
                                                                       tmp_path: Path) -> None:
    result = relink(tree, linked, tmp_path, {}, removed=("kernel/trace/trace_fprobe.c",))
    assert_same_edges(result)
    assert not any(e.call_file == "kernel/trace/trace_fprobe.c" or e.callee == "fentry_dispatcher"
                   for e in result.edges)


@pytest.mark.parametrize(
    ("reason", "path", "old", "new"),
    [
        ("a Kconfig decides the build", "kernel/trace/Kconfig", "config FPROBE\n", "# patched\nconfig FPROBE\n"),
        ("an include/asm-generic/ header decides what arches override", "include/asm-generic/irq_regs.h",
         "#include <linux/percpu.h>\n", "#include <linux/percpu.h>\n/* patched */\n"),
        ("include/linux/ftrace.h:1104 tests whether ftrace_graph_func is defined",
         "arch/x86/include/asm/ftrace.h", "#define ftrace_graph_func ftrace_graph_func\n", ""),
    ],
)
def test_an_edit_that_can_change_the_whole_resolution_relinks_anew(tree: Path, linked: Path, tmp_path: Path,
                                                                  reason: str, path: str, old: str, new: str) -> None:
    result = relink(tree, linked, tmp_path, edited(tree, path, old, new))
    assert_same_edges(result, incremental=False)


def test_a_patch_of_many_files_relinks_anew(tree: Path, linked: Path, tmp_path: Path) -> None:
    """Past 16 touched files the reached calls are most of them: a full link is as cheap and simpler."""
    with sqlite3.connect(linked) as conn:
        paths = [path for (path,) in conn.execute("SELECT path FROM files WHERE path LIKE 'kernel/trace/%.c' "
                                                  "ORDER BY path LIMIT 17")]
    assert len(paths) == 17
    assert_same_edges(relink(tree, linked, tmp_path, {path: (tree / path).read_bytes() for path in paths}),
                      incremental=False)


def test_documentation_and_assembly_beside_a_c_edit_keep_the_link_incremental(tree: Path, linked: Path,
                                                                             tmp_path: Path) -> None:
    """Linking reads no .rst and no .S file: only C facts, Kconfig files, the top Makefile and arch headers."""
    extra = {"Documentation/trace/fprobe.rst": b"patched\n", "arch/x86/kernel/ftrace_64.S": b"/* patched */\n"}
    assert_same_edges(relink(tree, linked, tmp_path, {**initialised_err(tree), **extra}))


def test_an_arch_not_linked_before_the_overlay_is_linked_anew(tree: Path, linked: Path, tmp_path: Path) -> None:
    result = relink(tree, linked, tmp_path, initialised_err(tree), arch="arm64")
    assert_same_edges(result, incremental=False)
