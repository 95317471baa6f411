"""New, fixed and unchanged findings are matched by fingerprint (line numbers never count), and printed in
checkpatch.pl's grammar: FILE:LINE of the consumer, the arch, what it reads or writes, the path."""

from __future__ import annotations

import json
from typing import Any

from regaudit.patch.checkpatch import finding_line, render
from regaudit.patch.compare import Comparison, compare
from regaudit.patch.run import CheckResult

PER_CPU_COPY = "per-cpu copy (kernel/trace/bpf_trace.c:2358), written only by ftrace_partial_regs()"


def finding(fingerprint: str, line: int, member: str = "cs", access: str = "read") -> dict[str, Any]:
    return {"fingerprint": fingerprint, "arch": "x86", "member": member, "access": access,
            "producer": {"api": "ftrace_partial_regs", "context": "entry", "trampoline": "ftrace_caller"},
            "consumer": {"function": "user_mode", "file": "arch/x86/include/asm/ptrace.h", "line": line},
            "path": [{"function": "kprobe_multi_link_prog_run"}, {"function": "kprobe_multi_link_prog_run"},
                     {"function": "bpf_get_stack"}, {"function": "user_mode"}]}


def test_findings_are_matched_by_fingerprint_not_by_line() -> None:
    base = [finding("a", 10), finding("b", 20), finding("b", 21)]
    patched = [finding("a", 13), finding("c", 30)]
    assert compare(base, patched) == Comparison(new=[finding("c", 30)], fixed=[finding("b", 20)], unchanged=1)


def storage_of(where: str) -> dict[tuple[str, str, str, str], str]:
    return {("x86", "ftrace_partial_regs", "entry", "ftrace_caller"): where}


def test_a_read_names_the_producer_and_its_context() -> None:
    assert finding_line(finding("a", 214), "WARNING", {}) == (
        "arch/x86/include/asm/ptrace.h:214: WARNING: x86: user_mode() reads cs that ftrace_partial_regs (entry) "
        "leaves unpopulated (via kprobe_multi_link_prog_run → bpf_get_stack → user_mode)")
    assert "reads any member that" in finding_line(finding("a", 1, "*"), "WARNING", {})


def test_a_write_says_where_it_lands_as_the_frame_model_keeps_its_members() -> None:
    write = finding("a", 214, "flags", "write")
    assert finding_line(write, "FIXED", storage_of("the trampoline's stack frame (in place)")).startswith(
        "arch/x86/include/asm/ptrace.h:214: FIXED: x86: user_mode() writes flags in the live frame of "
        "ftrace_partial_regs (entry) (via ")
    assert f"writes flags of {PER_CPU_COPY}: the next frame ftrace_partial_regs (entry) builds there holds it, " \
           "not zero (via " in finding_line(write, "WARNING", storage_of(PER_CPU_COPY))
    assert "writes flags in the frame of ftrace_partial_regs (entry) (via " in finding_line(write, "WARNING", {})


def test_text_ends_with_the_total_and_json_carries_the_counts() -> None:
    frames = [{"arch": "x86", "producer": "ftrace_partial_regs", "context": "entry", "trampoline": "ftrace_caller",
               "storage": PER_CPU_COPY}]
    new, fixed = finding("c", 30, "ip", "write"), finding("b", 20)
    result = CheckResult(Comparison([new], [fixed], 4), ["x86"], ["x86"], {"frames": frames}, None)
    assert render(result, "text").splitlines() == [finding_line(new, "WARNING", storage_of(PER_CPU_COPY)),
                                                   finding_line(fixed, "FIXED", {}),
                                                   "total: 1 new, 1 fixed, 4 unchanged findings"]
    report = json.loads(render(result, "json"))
    assert report["schema"] == "regaudit-check/1"
    assert report["counts"] == {"new": 1, "fixed": 1, "unchanged": 4}
    assert report["new"] == [new] and report["arches"] == report["audited"] == ["x86"]
