"""The output of `regaudit check`: checkpatch.pl's grammar, a small JSON object, SARIF.

Owns the wording. Text, one line per finding, then the total:

    FILE:LINE: WARNING: <arch>: <consumer>() reads <member> that <producer> (<context>) leaves unpopulated (via a → b)
    FILE:LINE: FIXED: <arch>: <consumer>() writes <member> in the live frame of <producer> (<context>) (via a → b)

and for a write into a buffer the producer fills (a per-cpu copy), of a member it never writes there:

    FILE:LINE: WARNING: <arch>: <consumer>() writes <member> of <storage>: the next frame <producer> (<context>)
    builds there holds it, not zero (via a → b)

then the total:

    total: N new, M fixed, K unchanged findings

FILE:LINE is the consumer's access: in the patched tree for a new finding, in the unpatched tree for a fixed
one. The path lists the functions from the source to the consumer, each once. The producer's context tells the
entry and the exit frame of one producer apart, and where a write lands is the frame model's `storage`.

JSON (`"schema": "regaudit-check/1"`): `arches` (compared), `audited` (audited again on the patched tree),
`seeds` (per arch audited again, how many seeds were checked again and how many kept the base audit's findings),
`new` and `fixed` (findings in the audit JSON shape), `counts` (`new`, `fixed`, `unchanged`).
SARIF: the new findings only, as `regaudit audit --format sarif` renders findings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from regaudit.arch.frames import is_live
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


FrameKey = tuple[str, str, str, str]  # arch, producer, context, trampoline


def render_text(result: CheckResult) -> str:
    comparison = result.comparison
    base, patched = frame_storages(result.on_disk), frame_storages(result.scratch)
    lines = [finding_line(finding, "WARNING", {**base, **patched}) for finding in comparison.new]
    lines += [finding_line(finding, "FIXED", {**patched, **base}) for finding in comparison.fixed]
    lines.append(f"total: {len(comparison.new)} new, {len(comparison.fixed)} fixed, {comparison.unchanged} "
                 "unchanged findings")
    return "\n".join(lines) + "\n"


def frame_storages(document: dict[str, Any] | None) -> dict[FrameKey, str]:
    """Where each frame model of an audit document keeps its members (`storage`)."""
    return {(frame["arch"], frame["producer"], frame["context"], frame["trampoline"]): frame["storage"]
            for frame in (document or {}).get("frames", [])}


def finding_line(finding: dict[str, Any], tag: str, storages: Mapping[FrameKey, str]) -> str:
    """The finding in checkpatch.pl's grammar; `storages`: where the frame models keep their members."""
    consumer, producer = finding["consumer"], finding["producer"]
    member = "any member" if finding["member"] == "*" else finding["member"]
    frame = f"{producer['api']} ({producer['context']})"
    storage = storages.get((finding["arch"], producer["api"], producer["context"], producer["trampoline"]))
    if finding["access"] != "write":
        what = f"reads {member} that {frame} leaves unpopulated"
    elif storage is None:
        what = f"writes {member} in the frame of {frame}"
    elif is_live(storage):
        what = f"writes {member} in the live frame of {frame}"
    else:
        what = f"writes {member} of {storage}: the next frame {frame} builds there holds it, not zero"
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
