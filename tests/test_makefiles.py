"""Which Kconfig symbols kbuild compiles a file under (`regaudit.arch.makefiles`), and what the audit makes of it.

Linux 6.12.117: kernel/Makefile:105-110 list `trace/` under FUNCTION_TRACER, TRACING, TRACE_CLOCK,
RING_BUFFER, TRACEPOINTS and RETHOOK (built when any is set); kernel/trace/Makefile:109
`obj-$(CONFIG_FPROBE_EVENTS) += trace_fprobe.o`; kernel/Makefile:113 `obj-$(CONFIG_BPF) += bpf/` and
kernel/bpf/Makefile `obj-$(CONFIG_BPF_SYSCALL) += ... stackmap.o`. riscv 6.12 selects
HAVE_DYNAMIC_FTRACE_WITH_ARGS but not WITH_REGS, and FPROBE depends on DYNAMIC_FTRACE_WITH_REGS
(kernel/trace/Kconfig): trace_fprobe.c is not built there, x86 builds it.
"""

from __future__ import annotations

from pathlib import Path

from kernel_trees import indexed_db, kernel_tree

from regaudit.arch.catalogue import load_catalogue
from regaudit.arch.config import BuildConfig, ConfigRules
from regaudit.arch.makefiles import build_symbols
from regaudit.facts.arch_facts import ArchFacts


def test_levels_are_the_directories_then_the_file_with_their_alternatives() -> None:
    gates = build_symbols(kernel_tree("6.12"))
    assert gates["kernel/bpf/stackmap.c"][0] == frozenset({"BPF"})
    assert "BPF_SYSCALL" in gates["kernel/bpf/stackmap.c"][1]
    trace_dir, own = gates["kernel/trace/trace_fprobe.c"]
    assert {"FUNCTION_TRACER", "TRACING", "RETHOOK"} <= trace_dir and own == frozenset({"FPROBE_EVENTS"})
    assert gates["include/linux/ftrace.h"] == ()  # headers are not kbuild objects


def test_a_file_built_only_under_an_option_the_arch_cannot_set_is_not_built() -> None:
    tree = kernel_tree("6.12")
    for arch, built in (("riscv", False), ("x86", True)):
        rules = ConfigRules.for_arch(load_catalogue("6.12").config, arch)
        with ArchFacts(Path(indexed_db("6.12"))) as facts:
            assert BuildConfig.load(tree, arch, facts, rules).builds("kernel/trace/trace_fprobe.c") is built
