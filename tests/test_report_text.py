"""The audit document model and its terminal rendering (`regaudit report --format text|json`).

Fixture: tests/fixtures/report/audit-7.3.json — hand-written findings on real Linux 7.3.4 chains (file:line
read in the tree: e.g. kernel/trace/trace_fprobe.c:471 `regs = ftrace_fill_perf_regs(fregs, regs);`,
arch/x86/kernel/unwind_orc.c:735 `state->bp = regs->bp;`) and the real x86/arm64 frame models of
`regaudit frames --format json` on that tree.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from regaudit.errors import BadInput
from regaudit.report import model
from regaudit.report.commands import render, report
from regaudit.report.model import entries, load_audit, matrix, read_document
from regaudit.report.text import render_text

FIXTURES = Path(__file__).parent / "fixtures" / "report"
ANSI = re.compile(r"\x1b\[")
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def test_a_document_without_schema_is_bad_input_in_one_line() -> None:
    with pytest.raises(BadInput, match='no "schema" key') as raised:
        load_audit({"findings": []})
    assert "\n" not in str(raised.value)


def test_an_unknown_schema_version_is_bad_input_naming_both_versions() -> None:
    with pytest.raises(BadInput, match=r"'regaudit-audit/2'.*'regaudit-audit/1'"):
        load_audit(fixture("audit-7.3.json") | {"schema": "regaudit-audit/2"})


def test_a_finding_missing_a_contract_key_is_bad_input() -> None:
    doc = fixture("audit-7.3.json")
    del doc["findings"][3]["member"]
    with pytest.raises(BadInput, match="malformed regaudit-audit/1 document: KeyError: 'member'"):
        load_audit(doc)


def test_matrix_counts_findings_per_arch_and_subsystem_with_the_worst_state() -> None:
    cells = matrix(load_audit(fixture("audit-7.3.json")))
    assert {arch: {s: (c.count, c.worst) for s, c in row.items()} for arch, row in cells.items()} == {
        "arm64": {"perf": (3, "stale"), "BPF": (1, "stale")},
        "x86": {"perf": (15, "stale"), "arch-unwind": (2, "stale"), "BPF": (2, "uninitialised"),
                "kprobes/fprobe": (5, "uninitialised")},
    }


def test_findings_differing_only_in_member_form_one_row() -> None:
    grouped = entries(load_audit(fixture("audit-7.3.json")).findings)
    [(consumer, [entry])] = grouped["kprobes/fprobe"].items()
    assert (consumer.function, consumer.where) == ("regs_get_register", "arch/x86/include/asm/ptrace.h:348")
    [row] = entry.rows
    assert row.members == ["cx", "si", "di", "r8", "r9"] and row.worst == "uninitialised"
    assert [hop.function for hop in entry.first.path] == [
        "fexit_trace_func", "store_trace_entry_data", "regs_get_kernel_argument", "regs_get_register"]


def test_one_access_along_one_path_on_several_arches_is_one_entry_with_a_row_per_arch() -> None:
    grouped = entries(load_audit(fixture("audit-7.3.json")).findings)
    [entry] = next(found for consumer, found in grouped["BPF"].items()
                   if consumer.function == "kprobe_multi_link_prog_run")
    assert entry.arches == ["arm64", "x86"] and entry.worst == "uninitialised"
    assert [(row.first.arch, row.members, row.worst) for row in entry.rows] == [
        ("arm64", ["*"], "stale"), ("x86", ["*"], "uninitialised")]
    text = render_text(fixture("audit-7.3.json"), color=False)
    assert ("    arm64 read * [stale]  ← ftrace_partial_regs (entry)\n"
            "    x86 read * [uninitialised]  ← ftrace_partial_regs (entry)\n"
            "    via bpf-program\n"
            "    └── kprobe_multi_link_prog_run (kernel/trace/bpf_trace.c:2625, 2627)\n") in text


def test_a_row_names_the_members_an_access_of_any_member_reaches() -> None:
    """`*` says little on its own: the row adds the frame members that make the finding (`reaches`), array runs
    folded; a finding whose member is all it reaches shows just the member."""
    doc = fixture("audit-7.3.json")
    for finding in doc["findings"]:
        if finding["member"] == "*" and finding["arch"] == "arm64":
            finding["reaches"] = [f"regs[{n}]" for n in range(9, 29)] + ["orig_x0"]
        else:
            finding["reaches"] = [finding["member"]]
    text = render_text(doc, color=False)
    assert "    arm64 read * → regs[9..28] orig_x0 [stale]  ← ftrace_partial_regs (entry)\n" in text
    assert "    x86 read * [uninitialised]  ← ftrace_partial_regs (entry)\n" in text


def test_plain_text_has_header_matrix_and_call_paths_and_no_escape_codes() -> None:
    text = render_text(fixture("audit-7.3.json"), color=False)
    assert not ANSI.search(text)
    assert "regaudit audit of Linux 7.3.4  /root/.cache/regaudit/kernels/linux-7.3" in text
    assert "arches: arm64, x86" in text and "rules: 3f2a9c41d07be815" in text and "findings: 28" in text
    assert re.search(r"arch\s+BPF\s+arch-unwind\s+kprobes/fprobe\s+perf", text)
    assert re.search(r"x86\s+2\s+2\s+5\s+15", text) and re.search(r"arm64\s+1\s+·\s+·\s+3", text)
    assert "    x86 read cx si di r8 r9 [uninitialised]  ← ftrace_partial_regs (exit)\n    via dynamic\n" in text
    assert "├── store_trace_entry_data (kernel/trace/trace_probe.c:1244)" in text
    assert "└── regs_get_register (arch/x86/include/asm/ptrace.h:348)" in text
    assert "└── kprobe_multi_link_prog_run (kernel/trace/bpf_trace.c:2625, 2627)" in text, "one function: one line"


def test_tree_strings_print_verbatim_with_their_open_guards() -> None:
    doc = fixture("audit-7.3.json")
    finding = doc["findings"][-1]
    finding["path"][1] |= {"function": "store_[bold]entry[/bold]", "condition": "defined(CONFIG_[red]X)"}
    text = render_text(doc, color=True)
    assert "store_[bold]entry[/bold] (kernel/trace/trace_probe.c:1244)" in ANSI_CODE.sub("", text)
    assert "#if defined(CONFIG_[red]X)" in ANSI_CODE.sub("", text)


def test_findings_are_listed_by_subsystem_then_consumer() -> None:
    text = render_text(fixture("audit-7.3.json"), color=False)
    headings = re.findall(r"^(\S+) — (\d+) finding\(s\)$", text, re.MULTILINE)
    assert headings == [("BPF", "3"), ("arch-unwind", "2"), ("kprobes/fprobe", "5"), ("perf", "18")]
    perf = text.split("perf — 18 finding(s)")[1]
    assert perf.index("perf_reg_value  arch/arm64/kernel/perf_regs.c:75") < perf.index(
        "regs_get_register  arch/x86/include/asm/ptrace.h:348")
    assert "arm64 read regs[9] regs[19] regs[28] [stale]" in perf


def test_colour_output_colours_matrix_cells_by_worst_state() -> None:
    text = render_text(fixture("audit-7.3.json"), color=True)
    assert re.search(r"\x1b\[1;31m\s+5\x1b\[0m", text), "kprobes/fprobe on x86 is uninitialised: bold red"
    assert re.search(r"\x1b\[33m\s+15\x1b\[0m", text), "perf on x86 is stale: yellow"


def test_report_command_prints_plain_text_when_stdout_is_not_a_terminal() -> None:
    result = CliRunner().invoke(report, [str(FIXTURES / "audit-7.3.json")])
    assert result.exit_code == 0, result.output
    assert not ANSI.search(result.output)
    assert "x86 read bp [stale]  ← ftrace_fill_perf_regs (entry)" in result.output


def test_report_json_writes_the_document_itself(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = CliRunner().invoke(report, [str(FIXTURES / "audit-7.3.json"), "--format", "json", "-o", str(out)])
    assert result.exit_code == 0 and result.output == ""
    assert json.loads(out.read_text()) == fixture("audit-7.3.json")


def test_report_reads_an_audit_database_through_load_document(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "linux-7.3.regaudit.db"
    db.write_bytes(b"")
    loaded: list[Path] = []
    monkeypatch.setattr(model, "load_document", lambda path: loaded.append(path) or fixture("audit-7.3.json"))
    result = CliRunner().invoke(report, [str(db), "--no-color"])
    assert result.exit_code == 0, result.output
    assert loaded == [db] and "findings: 28" in result.output


def test_a_broken_json_document_is_bad_input(tmp_path: Path) -> None:
    broken = tmp_path / "audit.json"
    broken.write_text('{"schema": ')
    with pytest.raises(BadInput, match=r"audit\.json: not a readable audit JSON document"):
        read_document(broken)


def test_every_format_validates_the_schema_first() -> None:
    for fmt in ("text", "html", "json", "sarif"):
        with pytest.raises(BadInput):
            render({"schema": "something-else/1"}, fmt)
