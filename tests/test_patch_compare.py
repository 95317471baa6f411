"""New, fixed and unchanged findings are matched by fingerprint (line numbers never count), and printed in
checkpatch.pl's grammar: FILE:LINE of the consumer, the arch, what it reads or writes, the path."""

from __future__ import annotations

import json
from typing import Any

from regaudit.patch.checkpatch import finding_line, render
from regaudit.patch.compare import Comparison, compare
from regaudit.patch.run import CheckResult


def finding(fingerprint: str, line: int, member: str = "cs", access: str = "read") -> dict[str, Any]:
    return {"fingerprint": fingerprint, "arch": "x86", "member": member, "access": access,
            "producer": {"api": "ftrace_partial_regs"},
            "consumer": {"function": "user_mode", "file": "arch/x86/include/asm/ptrace.h", "line": line},
            "path": [{"function": "kprobe_multi_link_prog_run"}, {"function": "kprobe_multi_link_prog_run"},
                     {"function": "bpf_get_stack"}, {"function": "user_mode"}]}


def test_findings_are_matched_by_fingerprint_not_by_line() -> None:
    base = [finding("a", 10), finding("b", 20), finding("b", 21)]
    patched = [finding("a", 13), finding("c", 30)]
    assert compare(base, patched) == Comparison(new=[finding("c", 30)], fixed=[finding("b", 20)], unchanged=1)


def test_a_read_names_the_producer_and_a_write_the_live_frame() -> None:
    assert finding_line(finding("a", 214), "WARNING") == (
        "arch/x86/include/asm/ptrace.h:214: WARNING: x86: user_mode() reads cs that ftrace_partial_regs leaves "
        "unpopulated (via kprobe_multi_link_prog_run → bpf_get_stack → user_mode)")
    assert finding_line(finding("a", 214, "flags", "write"), "FIXED").startswith(
        "arch/x86/include/asm/ptrace.h:214: FIXED: x86: user_mode() writes flags in the live frame (via ")
    assert "reads any member that" in finding_line(finding("a", 1, "*"), "WARNING")


def test_text_ends_with_the_total_and_json_carries_the_counts() -> None:
    result = CheckResult(Comparison([finding("c", 30)], [finding("b", 20)], 4), ["x86"], ["x86"], {}, None)
    assert render(result, "text").splitlines() == [finding_line(finding("c", 30), "WARNING"),
                                                   finding_line(finding("b", 20), "FIXED"),
                                                   "total: 1 new, 1 fixed, 4 unchanged findings"]
    report = json.loads(render(result, "json"))
    assert report["schema"] == "regaudit-check/1"
    assert report["counts"] == {"new": 1, "fixed": 1, "unchanged": 4}
    assert report["new"] == [finding("c", 30)] and report["arches"] == report["audited"] == ["x86"]
