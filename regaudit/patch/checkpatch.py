"""The output of `regaudit check`: checkpatch.pl's grammar, a small JSON object, SARIF.

Owns the wording. Text, one line per finding, then the total:

    FILE:LINE: WARNING: <arch>: <consumer>() reads <member> that <producer> leaves unpopulated (via a → b → c)
    FILE:LINE: FIXED: <arch>: <consumer>() writes <member> in the live frame (via a → b)
    total: N new, M fixed, K unchanged findings

FILE:LINE is the consumer's access: in the patched tree for a new finding, in the unpatched tree for a fixed
one. The path lists the functions from the source to the consumer, each once.

JSON (`"schema": "regaudit-check/1"`): `arches` (compared), `audited` (audited again on the patched tree),
`new` and `fixed` (findings in the audit JSON shape), `counts` (`new`, `fixed`, `unchanged`).
SARIF: the new findings only, as `regaudit audit --format sarif` renders findings.
"""

from __future__ import annotations

import json
from typing import Any

from regaudit.patch.run import CheckResult
from regaudit.report.sarif import render_sarif

SCHEMA = "regaudit-check/1"
FORMATS = ("text", "json", "sarif")


def render(result: CheckResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(check_json(result), indent=2) + "\n"
    if fmt == "sarif":
        return render_sarif({**result.on_disk, "findings": result.comparison.new}) + "\n"
    return render_text(result)


def render_text(result: CheckResult) -> str:
    comparison = result.comparison
    lines = [finding_line(finding, "WARNING") for finding in comparison.new]
    lines += [finding_line(finding, "FIXED") for finding in comparison.fixed]
    lines.append(f"total: {len(comparison.new)} new, {len(comparison.fixed)} fixed, {comparison.unchanged} "
                 "unchanged findings")
    return "\n".join(lines) + "\n"


def finding_line(finding: dict[str, Any], tag: str) -> str:
    consumer = finding["consumer"]
    member = "any member" if finding["member"] == "*" else finding["member"]
    if finding["access"] == "write":
        what = f"writes {member} in the live frame"
    else:
        what = f"reads {member} that {finding['producer']['api']} leaves unpopulated"
    return (f"{consumer['file']}:{consumer['line']}: {tag}: {finding['arch']}: {consumer['function']}() {what} "
            f"(via {' → '.join(path_functions(finding))})")


def path_functions(finding: dict[str, Any]) -> list[str]:
    """The functions of the finding's path, a function that moves the pointer on within itself shown once."""
    names = [hop["function"] for hop in finding["path"]]
    return [name for index, name in enumerate(names) if index == 0 or names[index - 1] != name]


def check_json(result: CheckResult) -> dict[str, Any]:
    comparison = result.comparison
    selection = result.selection
    seeds = {arch: {"rechecked": len(selection.run[arch]), "kept": len(selection.kept[arch])}
             for arch in sorted(selection.run)} if selection else {}
    return {"schema": SCHEMA, "arches": result.arches, "audited": result.audited, "seeds": seeds,
            "new": comparison.new, "fixed": comparison.fixed,
            "counts": {"new": len(comparison.new), "fixed": len(comparison.fixed), "unchanged": comparison.unchanged}}
