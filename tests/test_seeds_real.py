"""Where rules/sources.toml puts frame pointers in the real trees (each place read in the tree).

Linux 7.3.4:
- kernel/trace/bpf_trace.c:2625 `regs = ftrace_partial_regs(fregs, bpf_kprobe_multi_pt_regs_ptr());` in
  kprobe_multi_link_prog_run: the caller-specific entry kprobe_multi_prog_run_regs seeds it, so the generic
  ftrace_partial_regs_result entry does not seed it again; the buffer argument is a call, not a variable.
- kernel/trace/trace_fprobe.c:471 `regs = ftrace_fill_perf_regs(fregs, regs);` in fentry_perf_func: the
  result (fentry_perf_func_regs); the buffer variable `regs` is that same variable, so the buffer entry
  (ftrace_fill_perf_regs_buffer) adds no seed.
- kernel/trace/trace_kprobe.c:305 `tk->rp.handler = kretprobe_dispatcher;` (tk is declared with
  `__free(free_trace_kprobe)` at :284) binds kretprobe_dispatcher (:1853), whose `regs` is parameter 1.
Linux 6.1.192:
- kernel/trace/bpf_trace.c:2814/2816 bind kprobe_multi_link_handler (:2664, `struct pt_regs *regs` is
  parameter 2) to fp.exit_handler and fp.entry_handler.
"""

from __future__ import annotations

import sqlite3

from kernel_trees import indexed_db

from regaudit.audit.seeds import SourceSeed, source_seeds
from regaudit.ruleset.flow_rules import load_sources


def seeds_of(series: str) -> list[SourceSeed]:
    conn = sqlite3.connect(indexed_db(series))
    try:
        return source_seeds(conn, load_sources(series))
    finally:
        conn.close()


def places(seeds: list[SourceSeed], rule: str) -> list[tuple[str, str, int]]:
    return [(s.function, s.file, s.line) for s in seeds if s.source.name == rule]


def test_the_caller_specific_entry_wins_at_kprobe_multi_link_prog_run() -> None:
    seeds = seeds_of("7.3")
    assert places(seeds, "kprobe_multi_prog_run_regs") == [
        ("kprobe_multi_link_prog_run", "kernel/trace/bpf_trace.c", 2625)]
    assert places(seeds, "ftrace_partial_regs_result") == []
    assert places(seeds, "ftrace_partial_regs_buffer") == []


def test_a_buffer_assigned_back_from_the_builder_is_the_result_seed() -> None:
    seeds = seeds_of("7.3")
    assert ("fentry_perf_func", "kernel/trace/trace_fprobe.c", 471) in places(seeds, "fentry_perf_func_regs")
    assert places(seeds, "ftrace_fill_perf_regs_buffer") == []


def test_a_handler_bound_under_a_cleanup_attribute_is_found() -> None:
    [seed] = [s for s in seeds_of("7.3")
              if s.source.name == "kretprobe_handler_regs_rethook" and s.function == "kretprobe_dispatcher"]
    assert (seed.file, seed.line, seed.seed.param) == ("kernel/trace/trace_kprobe.c", 1853, 1)
    assert seed.contexts == ("exit",)


def test_6_1_fprobe_handlers_are_seeded_at_their_pt_regs_parameter() -> None:
    seeds = seeds_of("6.1")
    for rule in ("fprobe_entry_handler_regs_6_1", "fprobe_exit_handler_regs_6_1"):
        [seed] = [s for s in seeds if s.source.name == rule and s.function == "kprobe_multi_link_handler"]
        assert (seed.file, seed.line, seed.seed.param) == ("kernel/trace/bpf_trace.c", 2664, 2)
