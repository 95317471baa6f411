"""Every report format of the real 7.3 and 6.1 audits, and the 6.1 → 7.3 diff (Linux 7.3.4 and 6.1.192).

The known chain asserted everywhere: kernel/trace/bpf_trace.c:2625 `regs = ftrace_partial_regs(fregs,
bpf_kprobe_multi_pt_regs_ptr());` in kprobe_multi_link_prog_run, then :2627 `err = bpf_prog_run(
link->link.prog, regs);` — a BPF program reads the sparse frame at any offset, on x86 and arm64 alike.
On 6.1 the same program ran on the full frame fprobe handed kprobe_multi_link_handler
(kernel/trace/fprobe.c:55 `fp->entry_handler(fp, ip, ftrace_get_regs(fregs), entry_data);` with
FTRACE_OPS_FL_SAVE_REGS), so the diff shows the 7.3 chain as appeared on both arches.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from audits import audited
from click.testing import CliRunner

from regaudit.cli import main
from regaudit.report.commands import render, render_diff
from regaudit.report.sarif import FINGERPRINT_KEY

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text())
PROG_RUN = "kprobe_multi_link_prog_run (kernel/trace/bpf_trace.c:2625, 2627)"


def program_runs(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in document["findings"] if f["via"] == "bpf-program" and f["consumer"]["function"] == "bpf_prog_run"
            and f["source"]["function"] == "kprobe_multi_link_prog_run"]


@pytest.mark.parametrize("series", ["6.1", "7.3"])
def test_every_format_reports_the_same_findings(series: str) -> None:
    db, document = audited(series)
    text = render(document, "text")
    sarif = json.loads(render(document, "sarif"))
    html = render(document, "html")
    jsonschema.validate(sarif, SCHEMA)
    fingerprints = {f["fingerprint"] for f in document["findings"]}
    assert {r["partialFingerprints"][FINGERPRINT_KEY] for r in sarif["runs"][0]["results"]} == fingerprints
    assert len(sarif["runs"][0]["results"]) == len(document["findings"])
    assert f"findings: {len(document['findings'])}" in text
    assert all(fingerprint in html for fingerprint in fingerprints)
    assert len(html.encode()) < 10 * 1024 * 1024
    stored = CliRunner().invoke(main, ["report", str(db), "--format", "json"])
    assert stored.exit_code == 0 and json.loads(stored.output) == document


def test_the_7_3_reports_show_the_bpf_program_run_on_the_partial_frame() -> None:
    _, document = audited("7.3")
    runs = program_runs(document)
    assert {f["arch"] for f in runs} >= {"x86", "arm64", "riscv"}
    text = render(document, "text")
    assert "bpf_prog_run  kernel/trace/bpf_trace.c:2627" in text and PROG_RUN in text
    # arm64's copy (kernel/trace/bpf_trace.c:2358) is written by ftrace_partial_regs only, which never writes x9-x28
    assert "arm64 read * → regs[9..28] orig_x0 " in text
    sarif = json.loads(render(document, "sarif"))
    rules = {rule["id"]: rule["shortDescription"]["text"] for rule in sarif["runs"][0]["tool"]["driver"]["rules"]}
    writes = {text for identifier, text in rules.items() if identifier.endswith("-write")}
    assert writes == {"A consumer writes a pt_regs member of a frame that other code reads after it"}
    flows = [r["codeFlows"][0]["threadFlows"][0]["locations"] for r in sarif["runs"][0]["results"]
             if r["partialFingerprints"][FINGERPRINT_KEY] == runs[0]["fingerprint"]]
    assert [step["location"]["physicalLocation"]["region"]["startLine"] for step in flows[0]] == [2625, 2627]


def test_6_1_has_no_bpf_program_run_on_a_sparse_frame() -> None:
    assert program_runs(audited("6.1")[1]) == []


def test_the_6_1_to_7_3_diff_shows_kprobe_multi_moving_to_partial_frames() -> None:
    diff = json.loads(render_diff(audited("6.1")[1], audited("7.3")[1], "json"))
    appeared = [f for f in diff["appeared"] if f["consumer"]["function"] == "bpf_prog_run"
                and f["producer"]["api"] == "ftrace_partial_regs"]
    assert {f["arch"] for f in appeared} >= {"x86", "arm64"}
    text = render_diff(audited("6.1")[1], audited("7.3")[1], "text")
    assert "bpf_prog_run" in text and "ftrace_partial_regs" in text
    writes = [line for line in text.splitlines() if line.startswith("  + ") and " writes " in line]
    assert writes and all(" in the frame of " in line and " from " not in line for line in writes)


def test_the_7_3_html_renders_in_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.fail("chromium is not installed (Debian: apt-get install -y chromium)", pytrace=False)
    _, document = audited("7.3")
    page = tmp_path / "audit.html"
    page.write_text(render(document, "html"), encoding="utf-8")
    result = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000",
                             "--host-resolver-rules=MAP * ~NOTFOUND", "--dump-dom", page.as_uri()],
                            capture_output=True, text=True, timeout=120, check=False)
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-1000:]
    for arch in document["arches"]:
        assert f">{arch}<" in dom  # a matrix row per arch
    assert "kprobe_multi_link_prog_run" in dom and "bpf_trace.c:2627" in dom
