"""Renders frame models: canonical JSON, plain lines for pipes and logs, a rich table for a terminal.

Owns how `regaudit frames` output looks; every form is rendered from `FrameModel`, nothing is
computed here. Plain text carries no escape codes, so it is what a non-TTY stdout gets.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable

import rich.box
import rich.table

from regaudit.arch.frames import UNPOPULATED, FrameModel, MemberValue

_ELEMENT = re.compile(r"^(?P<array>.+)\[(?P<index>\d+)\]$")


def frames_json(models: Iterable[FrameModel]) -> str:
    return json.dumps([model.to_json() for model in models], indent=2)


def frames_text(models: Iterable[FrameModel]) -> str:
    """One block per model: heading, members by state, then conditions, notes, drift and evidence."""
    return "\n".join(line for model in models for line in _block(model))


def frames_table(models: Iterable[FrameModel]) -> rich.table.Table:
    table = rich.table.Table(box=rich.box.SIMPLE_HEAVY, show_lines=True)
    for column in (
        "arch",
        "kernel",
        "producer",
        "context",
        "trampoline",
        "result",
        "populated",
        "constant",
        "unpopulated",
        "drift",
    ):
        table.add_column(column, overflow="fold")
    for model in models:
        table.add_row(
            model.arch,
            model.kernel,
            model.producer,
            model.context,
            model.trampoline,
            _result(model),
            compact(model.populated),
            " ".join(f"{name}={value}" for name, value in model.constants.items()),
            "\n".join(_by_state(model)),
            str(len(model.drift)) if model.drift else "",
        )
    return table


def compact(names: Iterable[str]) -> str:
    """Member names with runs of array elements folded: `regs[0..8] sp pc`."""
    parts: list[str] = []
    for array, group in itertools.groupby(names, key=_array_of):
        if array is None:
            parts += group
        else:
            indices = [int(match["index"]) for match in map(_ELEMENT.match, group) if match]
            parts += [f"{array}[{first}]" if first == last else f"{array}[{first}..{last}]"
                      for first, last in _runs(indices)]
    return " ".join(parts)


def _array_of(name: str) -> str | None:
    match = _ELEMENT.match(name)
    return match["array"] if match else None


def _runs(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """(first, last) of each run of consecutive numbers, in the order given: 3 4 5 9 -> (3, 5) (9, 9)."""
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and runs[-1][1] + 1 == number:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


def _block(model: FrameModel) -> list[str]:
    lines = [
        f"{model.arch} {model.kernel} {model.producer} {model.context} ({model.trampoline}, {model.mode}): "
        f"{_result(model)}"
    ]
    if model.members:
        lines.append(f"  populated: {compact(model.populated) or '-'}")
        if model.constants:
            lines.append("  constant: " + " ".join(f"{name}={value}" for name, value in model.constants.items()))
        lines += [f"  {line}" for line in _by_state(model)]
    for label, items in (
        ("condition", model.conditions),
        ("note", model.notes),
        ("unresolved", model.unresolved),
        ("DRIFT", model.drift),
    ):
        lines += [f"  {label}: {text}" for text in items]
    lines.append(f"  evidence: {folded_evidence(model.evidence)}")
    return lines


def folded_evidence(evidence: Iterable[str]) -> str:
    """`path:line` citations one file at a time, in the order files are first cited, their lines sorted and runs
    folded: `arch/x86/kernel/ftrace_64.S:83-90,100; include/linux/ftrace.h:204`."""
    lines: dict[str, set[int]] = {}
    for citation in evidence:
        path, _, line = citation.rpartition(":")
        if path and line.isdigit():
            lines.setdefault(path, set()).add(int(line))
        else:
            lines.setdefault(citation, set())
    return "; ".join(f"{path}:{_line_runs(numbers)}" if numbers else path for path, numbers in lines.items())


def _line_runs(numbers: set[int]) -> str:
    return ",".join(str(first) if first == last else f"{first}-{last}" for first, last in _runs(sorted(numbers)))


def _by_state(model: FrameModel) -> list[str]:
    lines = []
    for state in UNPOPULATED:
        members = [(name, value) for name, value in model.members.items() if value.state == state]
        masked = [_masked(name, value) for name, value in members if value.mask]
        plain = compact(name for name, value in members if not value.mask)
        if members:
            lines.append(f"{state}: {' '.join(part for part in (plain, *masked) if part)}")
    return lines


def _masked(name: str, value: MemberValue) -> str:
    return f"{name} (only {value.mask} set)"


def _result(model: FrameModel) -> str:
    if model.result == "null":
        return "NULL"
    what = (
        "the frame or NULL"
        if model.result == "undetermined"
        else "a pt_regs"
        if model.layout == "pt_regs"
        else f"a {model.layout}"
    )
    return f"{what} in {model.storage}" if model.storage else what
