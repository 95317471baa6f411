"""Frame models of the real 6.1, 6.12 and 7.3 trees, checked against the kernel sources.

The path:line beside each assertion is where the fact sits in the Debian tree the fetch script
unpacks (7.3 unless the test says otherwise); they were read in the source. Lines are cited, not
asserted, except where a model's evidence must point at them.
"""

from __future__ import annotations

from functools import cache

import pytest
from kernel_trees import SERIES, indexed_db, kernel_tree

from regaudit.arch.frames import FrameModel
from regaudit.arch.frames_report import frames_text
from regaudit.arch.producers import build_frame_models

X86_REGS = {
    "r15",
    "r14",
    "r13",
    "r12",
    "bp",
    "bx",
    "r11",
    "r10",
    "r9",
    "r8",
    "ax",
    "cx",
    "dx",
    "si",
    "di",
    "orig_ax",
    "ip",
    "cs",
    "flags",
    "sp",
    "ss",
}
ARM64_X = [f"regs[{i}]" for i in range(31)]


@cache
def models(series: str) -> tuple[FrameModel, ...]:
    return tuple(build_frame_models(kernel_tree(series), indexed_db(series)))


def model(series: str, arch: str, producer: str, context: str = "entry", trampoline: str | None = None) -> FrameModel:
    found = [
        m
        for m in models(series)
        if (m.arch, m.producer, m.context) == (arch, producer, context) and trampoline in (None, m.trampoline)
    ]
    assert len(found) == 1, [m.key for m in found]
    return found[0]


def producers(series: str, arch: str) -> set[tuple[str, str]]:
    return {(m.producer, m.context) for m in models(series) if m.arch == arch}


# --- x86_64 7.3 ----------------------------------------------------------------------------------


def test_x86_entry_partial_regs_is_the_trampoline_frame_patched_in_place() -> None:
    frame = model("7.3", "x86", "ftrace_partial_regs")
    # ftrace_caller/save_mcount_regs store ax cx dx si di r8 r9 (arch/x86/kernel/ftrace_64.S:83-89),
    # bp (:100), ip (:107), sp (:164), orig_ax = 0 (:90) and cs = 0 (:175).
    assert set(frame.populated) == {"di", "si", "dx", "cx", "r8", "r9", "ax", "bp", "ip", "sp"}
    # The generic ftrace_partial_regs() hands out &arch_ftrace_regs(fregs)->regs (include/linux/ftrace.h:212)
    # after the x86 hook: flags |= X86_EFLAGS_FIXED (arch/x86/include/asm/ftrace.h:60), cs = __KERNEL_CS (:61).
    assert frame.storage == "the trampoline's stack frame (in place)"
    assert frame.constants == {"orig_ax": "0", "cs": "__KERNEL_CS"}
    assert frame.members["cs"].evidence == ("include/linux/ftrace.h:215", "arch/x86/include/asm/ftrace.h:61")
    assert (frame.states["flags"], frame.masks) == ("uninitialised", {"flags": "X86_EFLAGS_FIXED"})
    never_written = {"bx", "r10", "r11", "r12", "r13", "r14", "r15", "ss"}
    assert {name for name in never_written if frame.states[name] == "uninitialised"} == never_written
    assert set(frame.members) == X86_REGS
    # the text output cites that evidence one file at a time, runs of lines folded
    evidence = next(line for line in frames_text([frame]).splitlines() if line.startswith("  evidence: "))
    assert evidence.startswith("  evidence: arch/x86/kernel/ftrace_64.S:83-90,100,107,")
    assert "; include/linux/ftrace.h:204,212,215; arch/x86/include/asm/ftrace.h:59-61" in evidence


def test_x86_fill_perf_regs_fills_only_ip_sp_cs_flags_of_perfs_per_cpu_regs() -> None:
    frame = model("7.3", "x86", "ftrace_fill_perf_regs")
    # arch_ftrace_fill_perf_regs: ip (arch/x86/include/asm/ftrace.h:65), sp (:66), cs = __KERNEL_CS (:67),
    # flags = 0 (:68).
    assert frame.written == ["ip", "cs", "flags", "sp"]
    assert frame.constants == {"cs": "__KERNEL_CS", "flags": "0"}
    # Its caller fentry_perf_func (kernel/trace/trace_fprobe.c:471) gets regs from perf_trace_buf_alloc,
    # which stores this_cpu_ptr(&__perf_regs[rctx]) (kernel/trace/trace_event_perf.c:415), a per-cpu
    # array (kernel/events/core.c:11081): everything else is whatever the last user left there.
    assert frame.storage == "per-cpu __perf_regs (kernel/events/core.c:11081)"
    assert {frame.states[name] for name in X86_REGS - set(frame.written)} == {"stale"}
    assert "kernel/trace/trace_fprobe.c:471" in frame.evidence


def test_x86_get_regs_is_null_for_the_args_trampoline_and_full_for_save_regs() -> None:
    # arch_ftrace_get_regs() returns NULL when regs.cs is 0 (arch/x86/include/asm/ftrace.h:54);
    # ftrace_caller stores cs = 0 (arch/x86/kernel/ftrace_64.S:175).
    assert model("7.3", "x86", "ftrace_get_regs", trampoline="ftrace_caller").result == "null"
    full = model("7.3", "x86", "ftrace_get_regs", trampoline="ftrace_regs_caller")
    assert full.result == "frame" and full.unpopulated == []


def test_x86_exit_frames() -> None:
    # return_to_handler stores ax, dx, bp, sp (arch/x86/kernel/ftrace_64.S:377-380); fgraph then sets the
    # IP before any handler runs: ftrace_regs_set_instruction_pointer(fregs, ret) (kernel/trace/fgraph.c:829).
    frame = model("7.3", "x86", "ftrace_partial_regs", "exit")
    assert set(frame.populated) == {"ax", "dx", "bp", "sp", "ip"}
    assert frame.members["ip"].evidence == (
        "kernel/trace/fgraph.c:884",
        "kernel/trace/fgraph.c:829",
        "arch/x86/include/asm/ftrace.h:72",
    )
    assert {frame.states[name] for name in ("di", "si", "cx", "r8", "r9", "orig_ax")} == {"uninitialised"}
    # cs is never stored on exit, so arch_ftrace_get_regs() tests an old stack slot.
    assert model("7.3", "x86", "ftrace_get_regs", "exit").result == "undetermined"
    # 6.12's fgraph does not set the IP (no ftrace_regs_set_instruction_pointer in kernel/trace/fgraph.c).
    assert model("6.12", "x86", "ftrace_regs", "exit").states["ip"] == "uninitialised"


def test_x86_rethook_and_kprobe_frames_are_full() -> None:
    rethook = model("7.3", "x86", "rethook", "exit")
    # The rules say ip = arch_rethook_trampoline; rethook_trampoline_handler() then stores the real
    # return address through instruction_pointer_set() (kernel/trace/rethook.c:293,
    # arch/x86/include/asm/ptrace.h:293) before calling the handler (kernel/trace/rethook.c:312).
    assert rethook.states["ip"] == "populated"
    assert rethook.unpopulated == []
    assert model("7.3", "x86", "kprobe").unpopulated == []


# --- arm64 and riscv ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("series", "arch", "cited"),
    [
        ("7.3", "arm64", "arch/arm64/include/asm/ftrace.h:65"),
        ("7.3", "riscv", "arch/riscv/include/asm/ftrace.h:121"),
        ("6.12", "arm64", "arch/arm64/include/asm/ftrace.h:63"),
        ("6.12", "riscv", "arch/riscv/include/asm/ftrace.h:127"),
    ],
)
def test_arm64_and_riscv_get_regs_is_null(series: str, arch: str, cited: str) -> None:
    # `#define arch_ftrace_get_regs(regs) NULL` at `cited`.
    for context in ("entry", "exit"):
        frame = model(series, arch, "ftrace_get_regs", context)
        assert (frame.result, frame.members) == ("null", {})
        assert cited in frame.evidence


def test_arm64_partial_regs_copies_args_sp_pc_fp_lr_into_bpfs_per_cpu_regs() -> None:
    frame = model("7.3", "arm64", "ftrace_partial_regs")
    # arch/arm64/include/asm/ftrace.h:151 memcpy(regs->regs, afregs->regs, sizeof(afregs->regs)) with
    # `unsigned long regs[9]` (:73); sp :152, pc :153, regs[29] = fp :154, regs[30] = lr :155,
    # pstate = PSR_MODE_EL1h :156.
    assert frame.populated == [*ARM64_X[:9], "regs[29]", "regs[30]", "sp", "pc"]
    assert frame.constants == {"pstate": "PSR_MODE_EL1h"}
    assert "arch/arm64/include/asm/ftrace.h:154" in frame.members["regs[29]"].evidence
    # The buffer is bpf_kprobe_multi_pt_regs_ptr() (kernel/trace/bpf_trace.c:2625), a per-cpu pt_regs
    # (:2358) that only this builder writes: x9-x28 and the rest were never written, so they are zero.
    assert frame.storage == ("per-cpu bpf_kprobe_multi_pt_regs (kernel/trace/bpf_trace.c:2358), "
                             "written only by ftrace_partial_regs()")
    never_written = [*ARM64_X[9:29], "orig_x0", "syscallno", "pmr"]
    assert {frame.states[name] for name in never_written} == {"zero"}
    assert set(never_written) <= set(frame.never_written) and "regs[29]" not in frame.never_written


def test_arm64_exit_copies_slots_return_to_handler_never_stored() -> None:
    # return_to_handler stores x0-x7 and fp only (arch/arm64/kernel/entry-ftrace.S:336-342); fgraph sets
    # pc (kernel/trace/fgraph.c:829). ftrace_partial_regs() still copies x8, lr and sp.
    frame = model("7.3", "arm64", "ftrace_partial_regs", "exit")
    assert frame.populated == [*ARM64_X[:8], "regs[29]", "pc"]
    assert {frame.states[name] for name in ("regs[8]", "regs[30]", "sp")} == {"uninitialised"}


def test_arm64_fill_perf_regs() -> None:
    # arch/arm64/include/asm/ftrace.h:160-165: pc, regs[29] = fp, sp, pstate = PSR_MODE_EL1h.
    frame = model("7.3", "arm64", "ftrace_fill_perf_regs")
    assert frame.written == ["regs[29]", "sp", "pc", "pstate"]


def test_riscv_partial_regs_copies_the_argument_group() -> None:
    # arch/riscv/include/asm/ftrace.h:214 memcpy(&regs->a_regs, afregs->args, sizeof(afregs->args)); a_regs
    # is struct_group(a_regs, a0..a7) (arch/riscv/include/asm/ptrace.h:26), placed from rules/producers.toml.
    frame = model("7.3", "riscv", "ftrace_partial_regs")
    assert set(frame.populated) == {"epc", "ra", "sp", "s0", "t1", "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"}
    assert frame.unresolved == ()


def test_a_per_cpu_buffer_only_its_builder_writes_holds_zero_where_the_builder_does_not_write() -> None:
    # bpf_kprobe_multi_pt_regs (kernel/trace/bpf_trace.c:2358) is named only in bpf_kprobe_multi_pt_regs_ptr()
    # (:2359), whose calls hand it to ftrace_partial_regs (:2625) and to ftrace_partial_regs_update (:2629),
    # which only reads ip and the return value back (include/linux/ftrace_regs.h:55-59). riscv's builder never
    # writes status (arch/riscv/include/asm/ftrace.h:210-219): it stays 0, so user_mode() is true.
    for context in ("entry", "exit"):
        frame = model("7.3", "riscv", "ftrace_partial_regs", context)
        assert frame.states["status"] == "zero" and "status" in frame.never_written
        assert "epc" not in frame.never_written
        assert {"kernel/trace/bpf_trace.c:2359", "kernel/trace/bpf_trace.c:2629"} <= set(frame.evidence)
    # perf's __perf_regs (kernel/events/core.c:11081) is handed out to many writers: stale.
    perf = model("7.3", "riscv", "ftrace_fill_perf_regs")
    assert perf.states["status"] == "stale" and perf.never_written == ()


# --- the other arches ----------------------------------------------------------------------------


def test_powerpc_s390_and_loongarch_get_regs_tests() -> None:
    # powerpc: `regs.msr ? &...->regs : NULL` (arch/powerpc/include/asm/ftrace.h:43); ftrace_caller
    # stores msr = 0 (rules/frames/powerpc.toml).
    assert model("7.3", "powerpc", "ftrace_get_regs", trampoline="ftrace_caller").result == "null"
    assert model("7.3", "powerpc", "ftrace_get_regs", trampoline="ftrace_regs_caller").result == "frame"
    # s390: test_pt_regs_flag(regs, PIF_FTRACE_FULL_REGS) (arch/s390/include/asm/ftrace.h:62) reads
    # regs->flags & (1UL << flag) (arch/s390/include/asm/ptrace.h:199).
    null = model("7.3", "s390", "ftrace_get_regs", trampoline="ftrace_caller")
    assert null.result == "null"
    assert any("flags & (1UL << PIF_FTRACE_FULL_REGS)" in note for note in null.notes)
    assert model("7.3", "s390", "ftrace_get_regs", trampoline="ftrace_regs_caller").result == "frame"
    # loongarch returns the frame unconditionally (arch/loongarch/include/asm/ftrace.h:51), sparse or not.
    sparse = model("7.3", "loongarch", "ftrace_get_regs", trampoline="ftrace_caller")
    assert sparse.result == "frame" and sparse.states["csr_prmd"] == "uninitialised"


def test_fill_perf_regs_of_powerpc_and_s390() -> None:
    # powerpc arch_ftrace_fill_perf_regs (arch/powerpc/include/asm/ftrace.h:46-51): result = 0, nip, gpr[1],
    # and msr from an `mfmsr` asm output (:50), which the index records as a read (rules/producers.toml).
    powerpc = model("7.3", "powerpc", "ftrace_fill_perf_regs")
    assert (powerpc.populated, powerpc.constants) == (["gpr[1]", "nip", "msr"], {"result": "0"})
    # s390 (arch/s390/include/asm/ftrace.h:87-91): psw.mask = 0, psw.addr, gprs[15].
    s390 = model("7.3", "s390", "ftrace_fill_perf_regs")
    assert (s390.populated, s390.constants) == (["psw.addr", "gprs[15]"], {"psw.mask": "0"})


# --- 6.1 against 7.3 ------------------------------------------------------------------------------


def test_arm64_61_has_a_full_regs_trampoline_whose_frame_lacks_pstate() -> None:
    # 6.1 arm64 selects only WITH_REGS (arch/arm64/Kconfig:240,245); ftrace_regs_entry stores x0-x29, lr,
    # sp, pc but never pstate (arch/arm64/kernel/entry-ftrace.S:37-78).
    assert producers("6.1", "arm64") == {
        ("ftrace_regs", "entry"),
        ("save_regs", "entry"),
        ("ftrace_get_regs", "entry"),
        ("kprobe", "entry"),
        ("kretprobe", "exit"),
    }
    assert model("6.1", "arm64", "save_regs").states["pstate"] == "uninitialised"
    # Without WITH_ARGS, ftrace_get_regs() returns the frame unconditionally
    # (`#define arch_ftrace_get_regs(fregs) (&(fregs)->regs)`, include/linux/ftrace.h:112): even the
    # sparse ftrace_caller frame, where 7.3 returns NULL.
    sparse = model("6.1", "arm64", "ftrace_get_regs", trampoline="ftrace_caller")
    assert sparse.result == "frame" and "pstate" in sparse.unpopulated
    assert model("7.3", "arm64", "ftrace_get_regs").result == "null"
    # ftrace_partial_regs and ftrace_fill_perf_regs do not exist in 6.1.
    assert not {producer for producer, _ in producers("6.1", "x86")} & {"ftrace_partial_regs", "ftrace_fill_perf_regs"}


def test_x86_612_has_no_partial_regs() -> None:
    # The generic one needs HAVE_FTRACE_REGS_HAVING_PT_REGS (include/linux/ftrace.h:196-197 of 7.3), which
    # 6.12's Kconfig does not have; 7.3 x86 selects it (arch/x86/Kconfig:233).
    assert ("ftrace_partial_regs", "entry") not in producers("6.12", "x86")
    assert ("ftrace_partial_regs", "entry") in producers("7.3", "x86")


# --- every tree ----------------------------------------------------------------------------------


@pytest.mark.parametrize("series", SERIES)
def test_every_rules_member_and_c_store_lands_in_the_layout_without_drift(series: str) -> None:
    for frame in models(series):
        assert frame.unresolved == (), frame.key
        assert frame.drift == (), frame.key


def test_arches_covered_follow_kconfig() -> None:
    arches = {series: {m.arch for m in models(series)} for series in SERIES}
    # loongarch 6.1 selects no ftrace, kprobes or rethook option (arch/loongarch/Kconfig of 6.1).
    assert arches["6.1"] == {"arm64", "powerpc", "riscv", "s390", "x86"}
    assert arches["6.12"] == arches["7.3"] == {"arm64", "loongarch", "powerpc", "riscv", "s390", "x86"}


def test_json_has_the_issue_keys() -> None:
    data = model("7.3", "x86", "ftrace_partial_regs").to_json()
    assert {"arch", "producer", "context", "populated", "unpopulated", "states", "evidence"} <= set(data)
    assert all(":" in item for item in data["evidence"])
    assert data["states"]["flags"] == "uninitialised" and data["masks"] == {"flags": "X86_EFLAGS_FIXED"}

