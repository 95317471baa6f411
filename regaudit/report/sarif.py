"""SARIF 2.1.0 rendering of an audit document, for code-scanning UIs and review tools.

Owns the mapping of findings to SARIF. One rule per finding kind, named `<how>-<access>` after the
finding's `via` and `access`:

| via                   | rule ids                                              |
|-----------------------|-------------------------------------------------------|
| `direct`              | `unpopulated-read`, `unpopulated-write`               |
| `bpf-program`         | `bpf-ctx-any-member-read` (the program may read any member) |
| `bpf-helper`          | `bpf-helper-read`, `bpf-helper-write`                 |
| `perf-register-table` | `perf-register-table-read`                            |
| `dynamic`             | `dynamic-register-read`, `dynamic-register-write`     |

(a `via` added to the contract later becomes `<via>-<access>`). A result's location is the consumer's
access, its code flow the path from the source, its level follows the member state (uninitialised: error,
stale: warning, zero: note), and `partialFingerprints["regauditFingerprint/v1"]` is the audit fingerprint,
which holds no line number. Paths are relative to the `KERNEL_TREE` base, the audited tree.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from regaudit.report.model import Finding, Hop, Site, load_audit

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT_KEY = "regauditFingerprint/v1"
BASE = "KERNEL_TREE"
LEVELS = {"uninitialised": "error", "stale": "warning", "zero": "note"}
VIA = {
    "direct": ("unpopulated", "a member access in C"),
    "bpf-program": ("bpf-ctx-any-member", "the frame is the ctx of a BPF program, which may read it at any offset"),
    "bpf-helper": ("bpf-helper", "a BPF helper the program type may call, reached with the ctx"),
    "perf-register-table": ("perf-register-table", "perf copies the members its register table maps"),
    "dynamic": ("dynamic-register", "regs_get_register and friends, at an offset or index the analyzer bounds"),
}

READ_RULE = ("A consumer reads a pt_regs member that a sparse ftrace frame left unpopulated",
             "The frame's producer (ftrace_partial_regs, ftrace_fill_perf_regs, ...) never filled the member on "
             "this arch, so it holds a stale, uninitialised or zero value.")
WRITE_RULE = ("A consumer writes a pt_regs member of a frame that other code reads after it",
              "A write into the live ftrace frame changes what later callbacks on the same frame see; a write into "
              "a buffer the producer fills (a per-cpu copy), of a member the producer never writes there, is what "
              "every later frame built in that buffer holds instead of zero.")


def render_sarif(doc: dict[str, Any]) -> str:
    return json.dumps(sarif_log(doc), indent=2)


def sarif_log(doc: dict[str, Any]) -> dict[str, Any]:
    audit = load_audit(doc)
    rule_ids = sorted({rule_id(finding) for finding in audit.findings})
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "regaudit", "version": audit.tool.get("version", ""),
                            "rules": [rule(identifier) for identifier in rule_ids]}},
        "columnKind": "unicodeCodePoints",
        "results": [result(finding, rule_ids.index(rule_id(finding))) for finding in audit.findings],
        "properties": {"kernel": audit.version, "arches": list(audit.arches),
                       "rulesHash": audit.tool.get("rules_hash", "")},
    }
    if PurePosixPath(audit.tree_path).is_absolute():
        run["originalUriBaseIds"] = {BASE: {"uri": "file://" + quote(audit.tree_path.rstrip("/")) + "/"}}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def rule_id(finding: Finding) -> str:
    prefix = VIA.get(finding.via, (finding.via, ""))[0]
    return f"{prefix}-{finding.access}"


def rule(identifier: str) -> dict[str, Any]:
    prefix, access = identifier.rsplit("-", 1)
    how = next((text for name, text in VIA.values() if name == prefix), prefix)
    short, full = WRITE_RULE if access == "write" else READ_RULE
    return {
        "id": identifier,
        "shortDescription": {"text": short},
        "fullDescription": {"text": f"Established through {how}. {full}"},
        "defaultConfiguration": {"level": "warning"},
        "properties": {"tags": ["pt_regs", "ftrace", access]},
    }


def result(finding: Finding, rule_index: int) -> dict[str, Any]:
    producer = finding.producer
    return {
        "ruleId": rule_id(finding),
        "ruleIndex": rule_index,
        "level": LEVELS.get(finding.state, "warning"),
        "message": {"text": f"{finding.arch}: {finding.consumer.function} {finding.access}s pt_regs member "
                            f"{finding.member} ({finding.state}) of the frame built by {producer.api} "
                            f"({producer.context}, trampoline {producer.trampoline or '?'}), via {finding.via}"},
        "locations": [location(finding.consumer)],
        "codeFlows": [{"threadFlows": [{"locations": [{"location": location(hop, hop_message(hop))}
                                                      for hop in finding.path]}]}],
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint},
        "properties": {"arch": finding.arch, "member": finding.member, "state": finding.state,
                       "subsystem": finding.subsystem, "maintainers": finding.maintainers, "via": finding.via,
                       "producer": producer.api, "context": producer.context, "source": finding.source.rule,
                       "conditions": list(finding.conditions)},
    }


def hop_message(hop: Hop) -> str:
    return f"{hop.function} (#if {hop.condition})" if hop.condition else hop.function


def location(site: Site, message: str | None = None) -> dict[str, Any]:
    located: dict[str, Any] = {
        "physicalLocation": {"artifactLocation": {"uri": quote(site.file), "uriBaseId": BASE},
                             "region": {"startLine": max(site.line, 1)}},
        "logicalLocations": [{"name": site.function, "kind": "function"}],
    }
    if message:
        located["message"] = {"text": message}
    return located

