"""The link stage on Linux 7.3.4: per-arch resolutions read in the source, and the speed of a full link.

Citations (7.3.4, each line read in the tree):
- kernel/events/callchain.c:241 `if (kernel && !user_mode(regs))`, :244 `perf_callchain_kernel(&ctx, regs)`.
- kernel/events/callchain.c:40 `__weak void perf_callchain_kernel(...)`, replaced by
  arch/x86/events/core.c:2880 and arch/arm64/kernel/perf_callchain.c:31.
- user_mode: arm64 macro arch/arm64/include/asm/ptrace.h:196, x86 `static __always_inline`
  arch/x86/include/asm/ptrace.h:209.
- kernel/trace/fprobe.c:243 `return fp->entry_handler(fp, ip, parent_ip, fregs, data);`, with
  kernel/trace/bpf_trace.c:2889 `link->fp.entry_handler = kprobe_multi_link_handler;` (defined :2638).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from kernel_trees import kernel_tree, private_db

from regaudit.facts.link_facts import EdgeView, edges_of
from regaudit.flow.link import LinkResult, link_database

ARCHES = ["x86", "arm64", "riscv", "loongarch", "powerpc", "s390"]


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LinkResult]:
    db = private_db("7.3", tmp_path_factory)
    return db, link_database(db, kernel_tree("7.3"), ARCHES)


@pytest.fixture(scope="module")
def edges(linked: tuple[Path, LinkResult]) -> dict[str, list[EdgeView]]:
    with sqlite3.connect(linked[0]) as conn:
        return {arch: edges_of(conn, arch) for arch in ARCHES}


def callees(edges: list[EdgeView], file: str, line: int) -> set[tuple[str, str, int, str]]:
    at = (file, line)
    return {(e.callee, e.callee_file, e.callee_line, e.kind) for e in edges if (e.call_file, e.call_line) == at}


def test_linking_six_arches_takes_seconds(linked: tuple[Path, LinkResult]) -> None:
    result = linked[1]
    assert [arch.arch for arch in result.arches] == sorted(ARCHES)
    assert all(arch.edges > 10_000 for arch in result.arches)
    assert result.seconds < 30, f"link took {result.seconds:.1f} s"


@pytest.mark.parametrize(
    ("arch", "definition"),
    [("x86", ("arch/x86/events/core.c", 2880)), ("arm64", ("arch/arm64/kernel/perf_callchain.c", 31))],
)
def test_perf_callchain_kernel_resolves_to_the_arch_override(
    edges: dict[str, list[EdgeView]], arch: str, definition: tuple[str, int]
) -> None:
    assert callees(edges[arch], "kernel/events/callchain.c", 244) == {("perf_callchain_kernel", *definition, "direct")}


@pytest.mark.parametrize(
    ("arch", "definition"),
    [("x86", ("arch/x86/include/asm/ptrace.h", 209, "direct")),
     ("arm64", ("arch/arm64/include/asm/ptrace.h", 196, "macro"))],
)
def test_user_mode_is_the_x86_inline_and_the_arm64_macro(
    edges: dict[str, list[EdgeView]], arch: str, definition: tuple[str, int, str]
) -> None:
    assert callees(edges[arch], "kernel/events/callchain.c", 241) == {("user_mode", *definition)}


@pytest.mark.parametrize("arch", ["x86", "arm64"])
def test_fprobe_entry_handler_reaches_kprobe_multi_link_handler(edges: dict[str, list[EdgeView]], arch: str) -> None:
    reached = callees(edges[arch], "kernel/trace/fprobe.c", 243)
    assert ("kprobe_multi_link_handler", "kernel/trace/bpf_trace.c", 2638, "pointer") in reached
    assert ("fentry_dispatcher", "kernel/trace/trace_fprobe.c", 517, "pointer") in reached
    assert {kind for *_, kind in reached} == {"pointer"}


def test_the_binding_behind_the_pointer_edge_is_the_cited_one(linked: tuple[Path, LinkResult]) -> None:
    with sqlite3.connect(linked[0]) as conn:
        lines = conn.execute(
            "SELECT file, line FROM bindings WHERE target = 'kprobe_multi_link_handler' AND field = 'fp.entry_handler'"
        ).fetchall()
    assert lines == [("kernel/trace/bpf_trace.c", 2889)]


@pytest.mark.parametrize("arch", ARCHES)
def test_no_arch_reaches_another_arch_files(edges: dict[str, list[EdgeView]], arch: str) -> None:
    foreign = {
        e.callee_file
        for e in edges[arch]
        if e.callee_file.startswith("arch/") and not e.callee_file.startswith(f"arch/{arch}/")
    }
    assert not foreign
    assert not any(e.callee_file.startswith("arch/x86/um/") for e in edges[arch])
