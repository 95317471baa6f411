"""Compares two audit documents: which findings appeared, disappeared, or now hold on other arches.

Owns `regaudit diff`. Findings are grouped by `Finding.group_key` (the fingerprint without the arch:
producer API and context, member, access, consumer and path functions), so line shifts never count as a
change. Each group lands in exactly one bucket: `changed_arches` when it exists in both documents with a
different arch set, `appeared` / `disappeared` when it exists in only one; a group with the same arches
on both sides is unchanged.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from regaudit.report.model import Audit, Finding, load_audit, worst_state

DIFF_SCHEMA = "regaudit-diff/1"


def diff_documents(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON diff: run summaries, then `appeared`, `disappeared` and `changed_arches`."""
    before, after = load_audit(old), load_audit(new)
    old_groups, new_groups = _groups(before.findings), _groups(after.findings)
    changed = [key for key in old_groups.keys() & new_groups.keys()
               if _arches(old_groups[key]) != _arches(new_groups[key])]
    return {
        "schema": DIFF_SCHEMA,
        "old": _run(before),
        "new": _run(after),
        "appeared": _only_in(new_groups, old_groups),
        "disappeared": _only_in(old_groups, new_groups),
        "changed_arches": sorted((_arch_change(old_groups[key], new_groups[key]) for key in changed),
                                 key=lambda change: (change["consumer"]["file"], change["group"])),
    }


def _only_in(groups: dict[str, list[Finding]], other: dict[str, list[Finding]]) -> list[dict[str, Any]]:
    found = [finding for key in groups.keys() - other.keys() for finding in groups[key]]
    return [_finding(f) for f in sorted(found, key=lambda f: (f.consumer.file, f.consumer.line, f.arch, f.member))]


def _groups(findings: Iterable[Finding]) -> dict[str, list[Finding]]:
    groups: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        groups[finding.group_key].append(finding)
    return groups


def _arches(findings: list[Finding]) -> list[str]:
    return sorted({finding.arch for finding in findings})


def _run(audit: Audit) -> dict[str, Any]:
    return {"tree": audit.tree_path, "version": audit.version, "rules_hash": audit.tool.get("rules_hash", ""),
            "findings": len(audit.findings)}


def _finding(finding: Finding) -> dict[str, Any]:
    return {"fingerprint": finding.fingerprint, "arch": finding.arch, **_described(finding)}


def _arch_change(old: list[Finding], new: list[Finding]) -> dict[str, Any]:
    """The group as NEW has it: the state is the worst its arches report (one arch may read a zero where another
    reads an uninitialised slot)."""
    return {"group": new[0].group_key, **_described(new[0]), "state": worst_state(f.state for f in new),
            "before": _arches(old), "after": _arches(new)}


def _described(finding: Finding) -> dict[str, Any]:
    """What names a finding for a reader, arch aside."""
    return {
        "subsystem": finding.subsystem,
        "member": finding.member,
        "access": finding.access,
        "state": finding.state,
        "producer": {"api": finding.producer.api, "context": finding.producer.context},
        "consumer": {"function": finding.consumer.function, "file": finding.consumer.file,
                     "line": finding.consumer.line},
        "path": [hop.function for hop in finding.path],
    }


def render_diff_json(diff: dict[str, Any]) -> str:
    return json.dumps(diff, indent=2)


def render_diff_text(diff: dict[str, Any]) -> str:
    """Plain lines: a summary, then one line per appeared, disappeared and re-arched finding."""
    old, new = diff["old"], diff["new"]
    lines = [
        f"old: Linux {old['version']} ({old['findings']} findings, rules {old['rules_hash']})  {old['tree']}",
        f"new: Linux {new['version']} ({new['findings']} findings, rules {new['rules_hash']})  {new['tree']}",
        f"{len(diff['appeared'])} appeared, {len(diff['disappeared'])} disappeared, "
        f"{len(diff['changed_arches'])} with a changed arch set",
    ]
    for title, sign, findings in (("appeared", "+", diff["appeared"]), ("disappeared", "-", diff["disappeared"])):
        if findings:
            lines += ["", f"{title}:"]
            lines += [line for f in findings for line in (f"  {sign} {f['arch']}: {_summary(f)}  [{f['fingerprint']}]",
                                                          _path_line(f))]
    if diff["changed_arches"]:
        lines += ["", "changed arch set:"]
        lines += [line for change in diff["changed_arches"] for line in (
            f"  ~ {_summary(change)}: {', '.join(change['before'])} -> {', '.join(change['after'])}",
            _path_line(change))]
    return "\n".join(lines) + "\n"


def _summary(described: dict[str, Any]) -> str:
    consumer, producer = described["consumer"], described["producer"]
    whose = "from" if described["access"] == "read" else "in the frame of"
    return (f"{consumer['function']} {described['access']}s {described['member']} ({described['state']}) "
            f"{whose} {producer['api']} ({producer['context']}) at {consumer['file']}:{consumer['line']}")


def _path_line(described: dict[str, Any]) -> str:
    """The path's functions, a function that moves the pointer on within itself shown once."""
    path = described["path"]
    functions = [name for index, name in enumerate(path) if index == 0 or path[index - 1] != name]
    return "      path: " + " > ".join(functions)
