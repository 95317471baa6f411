"""Propagation on Linux 7.3.4 (x86), on a linked copy of the cached index: the primer's chains (a) and (b).

Citations (7.3.4, each line read in the tree):
- kernel/trace/bpf_trace.c:2625 `regs = ftrace_partial_regs(fregs, bpf_kprobe_multi_pt_regs_ptr());`,
  :2627 `err = bpf_prog_run(link->link.prog, regs);` — bpf_prog_run has no x86 edge: the frame escapes
  into the BPF program there.
- kernel/trace/trace_fprobe.c:471 `regs = ftrace_fill_perf_regs(fregs, regs);`, :475
  `perf_trace_buf_submit(entry, size, rctx, call->event.type, 1, regs,` → include/linux/trace_events.h:963
  `perf_tp_event(type, count, raw_data, size, regs, head, rctx, task);` → kernel/events/core.c:11474
  `if (perf_tp_event_match(event, &raw, regs)) {` → :11383 `if (event->attr.exclude_kernel && !user_mode(regs))`
  → arch/x86/include/asm/ptrace.h:214 `return !!(regs->cs & 3);` (:212, the `#ifdef CONFIG_X86_32` arm that
  also reads `flags`, is compiled out on x86_64).
- include/linux/ftrace.h:238 `arch_ftrace_fill_perf_regs(fregs, regs);` → arch/x86/include/asm/ftrace.h:65-68
  write ip, sp, cs and flags (`(_regs)->flags = 0;`): the producer's own writes are reached too.
- kernel/events/callchain.c:244 `perf_callchain_kernel(&ctx, regs);` → arch/x86/events/core.c:2891
  `if (perf_callchain_store(entry, regs->ip))`.
"""

from __future__ import annotations

import pytest
from hops import around, moves_on
from kernel_trees import kernel_tree, private_db

from regaudit.flow.link import link_database
from regaudit.flow.propagate import Escape, Hop, Reach, Seed, propagate

KPROBE_MULTI = Seed("x86:ftrace_partial_regs:entry", "kprobe_multi_link_prog_run", "kernel/trace/bpf_trace.c",
                    var="regs", line=2625)
FPROBE_PERF = Seed("x86:ftrace_fill_perf_regs", "fentry_perf_func", "kernel/trace/trace_fprobe.c", var="regs",
                   line=471)


@pytest.fixture(scope="module")
def propagated(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Reach], list[Escape]]:
    db = private_db("7.3", tmp_path_factory)
    link_database(db, kernel_tree("7.3"), ["x86"])
    return propagate(db, "x86", [KPROBE_MULTI, FPROBE_PERF])


def reach_at(reaches: list[Reach], frame: str, file: str, line: int, member: str) -> Reach:
    found = [r for r in reaches if (r.frame, r.file, r.line, r.member) == (frame, file, line, member)]
    assert found, f"no reach of {member} at {file}:{line} from {frame}"
    return found[0]


def test_kprobe_multi_frame_escapes_into_the_bpf_program(propagated: tuple[list[Reach], list[Escape]]) -> None:
    escapes = [e for e in propagated[1] if e.frame == KPROBE_MULTI.frame]
    assert [(e.file, e.line, e.callee_expr, e.position) for e in escapes] == [
        ("kernel/trace/bpf_trace.c", 2627, "bpf_prog_run", 1)]
    assert escapes[0].path == (Hop("kprobe_multi_link_prog_run", "kernel/trace/bpf_trace.c", 2625),
                               Hop("kprobe_multi_link_prog_run", "kernel/trace/bpf_trace.c", 2627))


def test_fprobe_perf_frame_reaches_user_mode_cs_through_perf_tp_event(
    propagated: tuple[list[Reach], list[Escape]],
) -> None:
    reach = reach_at(propagated[0], FPROBE_PERF.frame, "arch/x86/include/asm/ptrace.h", 214, "cs")
    assert (reach.function, reach.access, reach.mask) == ("user_mode", "read", "3")
    assert reach.path == (
        Hop("fentry_perf_func", "kernel/trace/trace_fprobe.c", 471),
        Hop("fentry_perf_func", "kernel/trace/trace_fprobe.c", 475),
        Hop("perf_trace_buf_submit", "include/linux/trace_events.h", 963),
        Hop("perf_tp_event", "kernel/events/core.c", 11474),
        Hop("perf_tp_event_match", "kernel/events/core.c", 11383),
    )
    assert not [r for r in propagated[0] if (r.file, r.line) == ("arch/x86/include/asm/ptrace.h", 212)]


def test_fprobe_perf_frame_reaches_the_producer_writes_and_the_callchain(
    propagated: tuple[list[Reach], list[Escape]],
) -> None:
    reaches = propagated[0]
    writes = {(r.line, r.member) for r in reaches
              if r.frame == FPROBE_PERF.frame and r.file == "arch/x86/include/asm/ftrace.h" and r.access == "write"}
    assert writes == {(65, "ip"), (66, "sp"), (67, "cs"), (68, "flags")}
    callchain = reach_at(reaches, FPROBE_PERF.frame, "arch/x86/events/core.c", 2891, "ip")
    assert callchain.function == "perf_callchain_kernel"
    assert callchain.path[-1] == Hop("get_perf_callchain", "kernel/events/callchain.c", 244)


def test_every_hop_is_a_call_of_the_next_function_or_a_store(
    propagated: tuple[list[Reach], list[Escape]],
) -> None:
    tree = kernel_tree("7.3")
    for reach in propagated[0]:
        following = [hop.function for hop in reach.path[1:]] + [reach.function]
        for hop, callee in zip(reach.path, following, strict=True):
            text = around(tree, hop.file, hop.line)
            assert moves_on(text, hop.function, callee), f"{hop} does not call {callee} nor store: {text!r}"


def test_only_the_x86_program_is_reached(propagated: tuple[list[Reach], list[Escape]]) -> None:
    assert all(not r.file.startswith("arch/") or r.file.startswith("arch/x86/") for r in propagated[0])
