"""What one access through a frame pointer makes of a frame model: the rules of `regaudit.audit.verdict`.

The models below are shaped like the real ones (`regaudit frames` on Linux 7.3.4): the x86 partial
frame of `ftrace_partial_regs` is the live trampoline frame whose `flags` holds only X86_EFLAGS_FIXED
(arch/x86/include/asm/ftrace.h:59-62); the arm64 one is a per-CPU buffer where regs[9..28] are stale.
"""

from __future__ import annotations

from regaudit.arch.frames import TRAMPOLINE_FRAME, FrameModel, MemberValue
from regaudit.audit.verdict import judge, touched_members

REAL = MemberValue("populated")
GARBAGE = MemberValue("uninitialised")
STALE = MemberValue("stale")

X86_PARTIAL = FrameModel(
    "x86", "7.3", "ftrace_partial_regs", "entry", "ftrace_caller", "args", "pt_regs", "frame",
    members={"bx": GARBAGE, "ax": REAL, "ip": REAL, "cs": MemberValue("constant", "__KERNEL_CS"),
             "flags": MemberValue("uninitialised", mask="X86_EFLAGS_FIXED"), "sp": REAL},
    storage=f"{TRAMPOLINE_FRAME} (in place)",
)
ARM64_PARTIAL = FrameModel(
    "arm64", "7.3", "ftrace_partial_regs", "entry", "ftrace_caller", "args", "pt_regs", "frame",
    members={"regs[0]": REAL, "regs[9]": STALE, "regs[10]": STALE, "sp": REAL, "pc": REAL,
             "stackframe.record.fp": STALE},
    storage="per-cpu bpf_kprobe_multi_pt_regs (kernel/trace/bpf_trace.c:2358)",
)


def test_a_read_of_a_populated_or_constant_member_is_not_a_finding() -> None:
    assert judge(X86_PARTIAL, "ip", "read", None) == []
    assert judge(X86_PARTIAL, "cs", "read", "3") == []


def test_a_read_of_an_unwritten_member_is_a_finding_with_its_state() -> None:
    [verdict] = judge(X86_PARTIAL, "bx", "read", None)
    assert (verdict.member, verdict.reaches, verdict.access, verdict.state) == ("bx", ("bx",), "read", "uninitialised")


def test_testing_only_the_bits_the_producer_set_is_not_a_finding() -> None:
    assert judge(X86_PARTIAL, "flags", "read", "X86_EFLAGS_FIXED") == []


def test_testing_other_bits_or_the_whole_member_is_a_finding() -> None:
    assert [v.reaches for v in judge(X86_PARTIAL, "flags", "read", "X86_EFLAGS_IF")] == [("flags",)]
    assert [v.reaches for v in judge(X86_PARTIAL, "flags", "read", "X86_EFLAGS_IF | X86_EFLAGS_FIXED")] == [("flags",)]
    assert [v.reaches for v in judge(X86_PARTIAL, "flags", "read", None)] == [("flags",)]


def test_setting_bits_with_or_equals_is_a_write_not_a_read_of_the_old_value() -> None:
    [verdict] = judge(X86_PARTIAL, "flags", "readwrite", "X86_EFLAGS_FIXED")
    assert (verdict.access, verdict.state) == ("write", "uninitialised")


def test_a_write_into_the_live_frame_is_a_finding_even_on_a_populated_member() -> None:
    [verdict] = judge(X86_PARTIAL, "ip", "write", None)
    assert (verdict.access, verdict.reaches, verdict.state) == ("write", ("ip",), "populated")


def test_a_write_into_a_per_cpu_copy_changes_no_later_callback() -> None:
    assert judge(ARM64_PARTIAL, "regs[9]", "write", None) == []


# riscv's copy: only ftrace_partial_regs writes bpf_kprobe_multi_pt_regs, so status was never written.
RISCV_EXCLUSIVE = FrameModel(
    "riscv", "7.3", "ftrace_partial_regs", "entry", "ftrace_caller", "args", "pt_regs", "frame",
    members={"epc": REAL, "a0": REAL, "status": MemberValue("zero"), "gp": MemberValue("zero")},
    storage="per-cpu bpf_kprobe_multi_pt_regs (kernel/trace/bpf_trace.c:2358), written only by ftrace_partial_regs()",
    never_written=("status", "gp"),
)


def test_a_write_to_a_member_the_model_takes_as_never_written_is_a_finding() -> None:
    [verdict] = judge(RISCV_EXCLUSIVE, "*", "write", None)
    assert (verdict.access, verdict.reaches, verdict.state) == ("write", ("status", "gp"), "zero")
    assert judge(RISCV_EXCLUSIVE, "a0", "write", None) == []  # the builder writes it again on every run


def test_an_unknown_index_touches_every_element_and_reports_the_unpopulated_ones() -> None:
    assert touched_members(ARM64_PARTIAL, "regs[*]") == ["regs[0]", "regs[9]", "regs[10]"]
    [verdict] = judge(ARM64_PARTIAL, "regs[*]", "read", None)
    assert (verdict.member, verdict.reaches, verdict.state) == ("regs[*]", ("regs[9]", "regs[10]"), "stale")


def test_any_member_and_a_whole_substruct_expand_to_the_members_inside() -> None:
    assert touched_members(ARM64_PARTIAL, "*") == list(ARM64_PARTIAL.members)
    assert touched_members(ARM64_PARTIAL, "stackframe") == ["stackframe.record.fp"]
    assert touched_members(ARM64_PARTIAL, "regs[1]") == []


def test_a_derived_member_set_narrows_any_member() -> None:
    [verdict] = judge(X86_PARTIAL, "*", "read", None, within=("ax", "bx", "ip"))
    assert verdict.reaches == ("bx",)
    assert judge(X86_PARTIAL, "*", "read", None, within=("ax", "ip")) == []


def test_several_states_report_the_most_telling_one() -> None:
    mixed = FrameModel("x86", "7.3", "p", "entry", "t", "args", "pt_regs", "frame",
                       members={"a": MemberValue("zero"), "b": STALE, "c": GARBAGE})
    assert judge(mixed, "*", "read", None)[0].state == "uninitialised"
    assert judge(mixed, "*", "read", None, within=("a", "b"))[0].state == "stale"
