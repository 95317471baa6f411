"""The bridge derivations on Linux 6.1.192, 6.12.117 and 7.3.4, each result read in the tree.

Citations (kernel/trace/bpf_trace.c unless said; every line read in the tree):
- kprobe_prog_func_proto: 6.1 :1536, 6.12 :1563, 7.3 :1343. Its `return &X;` lines: perf_event_output
  6.1 :1540 / 6.12 :1567 / 7.3 :1347; get_stackid :1542 / :1569 / :1349; get_stack :1544 (6.1: no
  sleepable variant) / :1571 / :1351 (`prog->sleepable ? &bpf_get_stack_sleepable_proto : &bpf_get_stack_proto`);
  override_return :1547 / :1574 / :1354, each inside `#ifdef CONFIG_BPF_KPROBE_OVERRIDE` (:1545 / :1572 /
  :1352); get_func_ip: 6.1 a ternary at :1550 (kprobe_multi or kprobe), 6.12 :1578-1581 and 7.3 :1358-1361
  an if-chain (kprobe_multi, uprobe_multi, kprobe); get_attach_cookie the same way (6.1 :1554, 6.12
  :1584-1587, 7.3 :1364-1367).
- Their protos take the ctx as argument 1 (`.arg1_type = ARG_PTR_TO_CTX`): bpf_get_stackid_proto
  kernel/bpf/stackmap.c:329 / :406 / :666; bpf_get_stack_proto stackmap.c:495 / :609 / :863;
  bpf_perf_event_output_proto :705 / :706 / :729; bpf_override_return_proto :157 / :168 / :197;
  bpf_get_func_ip_proto_kprobe :1083 / :1074 / :1107; bpf_get_attach_cookie_proto_trace :1122 / :1137 / :1170.
- The fallback bpf_tracing_func_proto (7.3 :1274) answers BPF_FUNC_get_func_ip with
  bpf_get_func_ip_proto_tracing (7.3 :1290, ctx arg :1072): never for a kprobe program, whose own
  switch answers that case first. bpf_base_func_proto (kernel/bpf/helpers.c, 7.3 :2067, not indexed:
  read from the text) and the rest of the fallback chain return no proto taking the ctx.
- x86 arch/x86/kernel/perf_regs.c:20 `pt_regs_offset[]`: ax..ss always, ds/es/fs/gs only under
  `#ifdef CONFIG_X86_32` (:33; the x86_64 arm stores `(unsigned int) -1`, and x86_64's pt_regs has no
  such members), r8..r15 under `#ifdef CONFIG_X86_64` (:48).
- arm64 arch/arm64/kernel/perf_regs.c:30: sp (:66) and pc (:69) special-cased, `idx >= PERF_REG_ARM64_MAX`
  leaves, then `regs->regs[idx]` (:75); uapi perf_regs.h:36-39 LR=30, SP=31, PC=32, MAX=33; regs[31]
  (7.3 arch/arm64/include/asm/ptrace.h:158), so regs[0..30].
- MAX_REG_OFFSET: x86 offsetof(ss) (6.1 ptrace.h:242, 6.12/7.3 :320); arm64 offsetof(pstate) (6.1 :216,
  6.12 :193, 7.3 :185). x86 argument_offs[] di si dx cx r8 r9 with NR_REG_ARGUMENTS 6 in the `#else` of
  `#ifdef __i386__` (7.3 ptrace.h:428-441); arm64 NR_REG_ARGUMENTS 8 and pt_regs_read_reg's regs->regs[r].
"""

from __future__ import annotations

from functools import cache

import pytest
from kernel_trees import SERIES, indexed_db, kernel_tree

from regaudit.flow.bpf_helpers import HelperEntry, bpf_helpers
from regaudit.flow.register_reads import dynamic_reads, table_reads
from regaudit.ruleset.flow_rules import Bridge, load_bridges

OVERRIDE_GUARD = "defined(CONFIG_BPF_KPROBE_OVERRIDE)"
X86_64_PERF = ["r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si", "di",
               "ip", "cs", "flags", "sp", "ss"]
ARM64_REGS = [f"regs[{i}]" for i in range(31)]
KPROBE_PROTOS = {
    # proto -> (.func, return line) per series
    "6.1": {
        "bpf_perf_event_output_proto": ("bpf_perf_event_output", 1540),
        "bpf_get_stackid_proto": ("bpf_get_stackid", 1542),
        "bpf_get_stack_proto": ("bpf_get_stack", 1544),
        "bpf_override_return_proto": ("bpf_override_return", 1547),
        "bpf_get_func_ip_proto_kprobe_multi": ("bpf_get_func_ip_kprobe_multi", 1550),
        "bpf_get_func_ip_proto_kprobe": ("bpf_get_func_ip_kprobe", 1550),
        "bpf_get_attach_cookie_proto_kmulti": ("bpf_get_attach_cookie_kprobe_multi", 1554),
        "bpf_get_attach_cookie_proto_trace": ("bpf_get_attach_cookie_trace", 1554),
    },
    "6.12": {
        "bpf_perf_event_output_proto": ("bpf_perf_event_output", 1567),
        "bpf_get_stackid_proto": ("bpf_get_stackid", 1569),
        "bpf_get_stack_sleepable_proto": ("bpf_get_stack_sleepable", 1571),
        "bpf_get_stack_proto": ("bpf_get_stack", 1571),
        "bpf_override_return_proto": ("bpf_override_return", 1574),
        "bpf_get_func_ip_proto_kprobe_multi": ("bpf_get_func_ip_kprobe_multi", 1578),
        "bpf_get_func_ip_proto_uprobe_multi": ("bpf_get_func_ip_uprobe_multi", 1580),
        "bpf_get_func_ip_proto_kprobe": ("bpf_get_func_ip_kprobe", 1581),
        "bpf_get_attach_cookie_proto_kmulti": ("bpf_get_attach_cookie_kprobe_multi", 1584),
        "bpf_get_attach_cookie_proto_umulti": ("bpf_get_attach_cookie_uprobe_multi", 1586),
        "bpf_get_attach_cookie_proto_trace": ("bpf_get_attach_cookie_trace", 1587),
    },
    "7.3": {
        "bpf_perf_event_output_proto": ("bpf_perf_event_output", 1347),
        "bpf_get_stackid_proto": ("bpf_get_stackid", 1349),
        "bpf_get_stack_sleepable_proto": ("bpf_get_stack_sleepable", 1351),
        "bpf_get_stack_proto": ("bpf_get_stack", 1351),
        "bpf_override_return_proto": ("bpf_override_return", 1354),
        "bpf_get_func_ip_proto_kprobe_multi": ("bpf_get_func_ip_kprobe_multi", 1358),
        "bpf_get_func_ip_proto_uprobe_multi": ("bpf_get_func_ip_uprobe_multi", 1360),
        "bpf_get_func_ip_proto_kprobe": ("bpf_get_func_ip_kprobe", 1361),
        "bpf_get_attach_cookie_proto_kmulti": ("bpf_get_attach_cookie_kprobe_multi", 1364),
        "bpf_get_attach_cookie_proto_umulti": ("bpf_get_attach_cookie_uprobe_multi", 1366),
        "bpf_get_attach_cookie_proto_trace": ("bpf_get_attach_cookie_trace", 1367),
    },
}
# bridge name -> expected members, the same in the three trees
READS = {
    "perf_reg_value_x86": X86_64_PERF,
    "perf_reg_value_arm64": [*ARM64_REGS, "sp", "pc"],
    "regs_get_register_x86": [*X86_64_PERF[:15], "orig_ax", "ip", "cs", "flags", "sp", "ss"],
    "regs_get_register_arm64": [*ARM64_REGS, "sp", "pc", "pstate"],
    "regs_get_kernel_argument_x86": ["r9", "r8", "cx", "dx", "si", "di"],  # pt_regs order of di si dx cx r8 r9
    "regs_get_kernel_argument_arm64": ARM64_REGS[:8],
    "regs_get_kernel_stack_nth_x86": ["sp"],
    "regs_get_kernel_stack_nth_arm64": ["sp"],
}


def bridge(series: str, name: str) -> Bridge:
    return next(b for b in load_bridges(series) if b.name == name)


@cache
def kprobe_helpers(series: str) -> tuple[HelperEntry, ...]:
    return tuple(bpf_helpers(indexed_db(series), kernel_tree(series), bridge(series, "kprobe_prog_helpers")))


@pytest.mark.parametrize("series", SERIES)
def test_kprobe_helpers_taking_the_ctx_are_exactly_the_cited_ones(series: str) -> None:
    entries = kprobe_helpers(series)
    found = {e.proto: (e.function, e.line) for e in entries}
    assert found == KPROBE_PROTOS[series]
    assert all(e.file == "kernel/trace/bpf_trace.c" and e.ctx_positions == (0,) for e in entries)
    assert all(e.via == ("kprobe_prog_func_proto",) for e in entries)


@pytest.mark.parametrize("series", SERIES)
def test_override_return_carries_its_guard_and_helper_names_drop_proto(series: str) -> None:
    entries = {e.proto: e for e in kprobe_helpers(series)}
    assert entries["bpf_override_return_proto"].condition == OVERRIDE_GUARD
    assert {e.condition for p, e in entries.items() if p != "bpf_override_return_proto"} == {""}
    assert entries["bpf_get_stackid_proto"].helper == "bpf_get_stackid"
    assert entries["bpf_get_func_ip_proto_kprobe"].helper == "bpf_get_func_ip_kprobe"


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("name", sorted(READS))
def test_register_bridges_derive_the_cited_members(series: str, name: str) -> None:
    rule = bridge(series, name)
    assert rule.arch is not None
    derive = table_reads if rule.kind == "reads_by_table" else dynamic_reads
    reads = derive(indexed_db(series), kernel_tree(series), rule.arch, rule)
    assert [r.member for r in reads] == READS[name]
    assert all(r.file.startswith(f"arch/{rule.arch}/") for r in reads)


def test_x86_perf_table_cites_its_entries_and_skips_the_32_bit_arm() -> None:
    reads = table_reads(indexed_db("7.3"), kernel_tree("7.3"), "x86", bridge("7.3", "perf_reg_value_x86"))
    lines = {r.member: r.line for r in reads}
    assert (lines["ax"], lines["ss"], lines["r8"], lines["r15"]) == (21, 32, 49, 56)
    assert {r.how for r in reads} == {"perf-register-table"}
    assert not {"ds", "es", "fs", "gs"} & set(lines)
