"""`regaudit diff`: findings matched by fingerprint, grouped across arches, line shifts ignored.

audit-7.3-next.json is audit-7.3.json after a hypothetical change: the x86 fexit argument read of `r9`
is gone and one of `dx` is new, the kprobe-multi BPF finding no longer holds on arm64, the ORC unwinder
finding now also holds on arm64, and every kernel/events/core.c line moved by 3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from regaudit.report.commands import diff
from regaudit.report.diff import diff_documents, render_diff_text

FIXTURES = Path(__file__).parent / "fixtures" / "report"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def test_findings_that_appeared_and_disappeared_are_matched_by_fingerprint() -> None:
    changes = diff_documents(fixture("audit-7.3.json"), fixture("audit-7.3-next.json"))
    assert [(f["arch"], f["member"], f["fingerprint"]) for f in changes["appeared"]] == [
        ("x86", "dx", "ec4067866c9bdf86")]
    assert [(f["arch"], f["member"], f["fingerprint"]) for f in changes["disappeared"]] == [
        ("x86", "r9", "fe82017198be552a")]


def test_a_finding_on_other_arches_is_a_changed_arch_set_not_an_appearance() -> None:
    changes = diff_documents(fixture("audit-7.3.json"), fixture("audit-7.3-next.json"))
    assert [(c["consumer"]["function"], c["member"], c["before"], c["after"]) for c in changes["changed_arches"]] == [
        ("__unwind_start", "bp", ["x86"], ["arm64", "x86"]),
        ("kprobe_multi_link_prog_run", "*", ["arm64", "x86"], ["x86"]),
    ]


def test_a_changed_arch_set_reports_the_worst_state_of_its_arches() -> None:
    """The ORC unwinder's `bp` read now also holds on arm64; were it uninitialised there and a zero on x86 (the
    first arch of the group), the group is uninitialised."""
    new = fixture("audit-7.3-next.json")
    unwind = [f for f in new["findings"] if f["consumer"]["function"] == "__unwind_start"]
    assert {f["arch"] for f in unwind} == {"arm64", "x86"}
    for finding in unwind:
        finding["state"] = "uninitialised" if finding["arch"] == "arm64" else "zero"
    [change] = [c for c in diff_documents(fixture("audit-7.3.json"), new)["changed_arches"]
                if c["consumer"]["function"] == "__unwind_start"]
    assert change["state"] == "uninitialised"


def test_text_says_a_write_lands_in_the_frame_and_a_read_comes_from_it() -> None:
    new = fixture("audit-7.3.json")
    old = {**new, "findings": [f for f in new["findings"] if f["access"] != "write"]}
    text = render_diff_text(diff_documents(old, new))
    assert "  + x86: regs_set_return_value writes ax (uninitialised) in the frame of ftrace_partial_regs (entry) at " \
           "arch/x86/include/asm/ptrace.h:197  [" in text


def test_line_shifts_alone_change_nothing() -> None:
    old = fixture("audit-7.3.json")
    new = fixture("audit-7.3.json")
    for finding in new["findings"]:
        for hop in finding["path"]:
            hop["line"] += 7
        finding["consumer"]["line"] += 7
    changes = diff_documents(old, new)
    assert (changes["appeared"], changes["disappeared"], changes["changed_arches"]) == ([], [], [])


def test_text_lists_each_change_with_its_path() -> None:
    text = render_diff_text(diff_documents(fixture("audit-7.3.json"), fixture("audit-7.3-next.json")))
    lines = text.splitlines()
    assert lines[2] == "1 appeared, 1 disappeared, 2 with a changed arch set"
    assert ("  + x86: regs_get_register reads dx (uninitialised) from ftrace_partial_regs (exit) at "
            "arch/x86/include/asm/ptrace.h:348  [ec4067866c9bdf86]") in lines
    assert "  - x86: regs_get_register reads r9" in text
    assert ("  ~ kprobe_multi_link_prog_run reads * (uninitialised) from ftrace_partial_regs (entry) at "
            "kernel/trace/bpf_trace.c:2627: arm64, x86 -> x86") in lines
    assert "      path: fexit_trace_func > store_trace_entry_data > regs_get_kernel_argument > regs_get_register" \
        in lines


def test_diff_command_prints_json_that_equals_the_library_diff(tmp_path: Path) -> None:
    out = tmp_path / "diff.json"
    result = CliRunner().invoke(diff, [str(FIXTURES / "audit-7.3.json"), str(FIXTURES / "audit-7.3-next.json"),
                                       "--format", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written == diff_documents(fixture("audit-7.3.json"), fixture("audit-7.3-next.json"))
    assert written["schema"] == "regaudit-diff/1"
    assert (written["old"]["rules_hash"], written["new"]["rules_hash"]) == ("3f2a9c41d07be815", "8c1d5e0a7b3f2946")


def test_diff_command_text_goes_to_stdout() -> None:
    result = CliRunner().invoke(diff, [str(FIXTURES / "audit-7.3.json"), str(FIXTURES / "audit-7.3.json")])
    assert result.exit_code == 0
    assert result.output.splitlines()[2] == "0 appeared, 0 disappeared, 0 with a changed arch set"
