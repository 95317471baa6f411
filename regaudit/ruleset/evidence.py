"""Compares the evidence cited by rules files with a kernel tree and reports where they drifted apart.

Owns the drift check behind `regaudit rules check TREE`: for each evidence item that applies to the
tree's kernel series, does the cited line still contain the expected text, and if not, did it move
nearby, change, or vanish with its file. Also which rules files have no data at all for a series.
Rules files are loaded by `regaudit.ruleset.load`; this module only reads the tree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from regaudit.ruleset.load import (
    Evidence,
    RuleFile,
    applies_to,
    display_name,
    evidence_items,
    kernel_series,
    load_all_rules,
    series_key,
)

DriftStatus = Literal["missing-file", "moved", "changed"]

# How far from the cited line a moved text is looked for: far enough for the usual churn above a
# line in one release, near enough that an unrelated line with the same text is unlikely.
SEARCH_RADIUS = 200


@dataclass(frozen=True)
class Drift:
    """One evidence item whose cited line no longer says what the rules file expects."""

    rule_file: Path
    entry: str  # e.g. "trampoline[2].evidence[0]"
    at: str
    expect: str
    status: DriftStatus
    found_at: int | None  # "moved": the nearest line (1-based) now containing `expect`
    line_text: str | None  # the cited line as it reads now; None if the file is missing or shorter


def check_evidence(tree: Path, version: str, rule_files: list[RuleFile] | None = None) -> list[Drift]:
    """Every drift between `tree` (kernel `version`) and the evidence that applies to its series.

    `rule_files` defaults to every file under rules/. Items whose `kernels` exclude the series are
    not checked: data verified on another kernel says nothing about this one's lines.
    """
    series = kernel_series(version)
    read_lines = _line_reader(tree)
    drifts: list[Drift] = []
    for rule in load_all_rules() if rule_files is None else rule_files:
        for item in evidence_items(rule):
            if applies_to(item.kernels, series):
                drift = _check_item(rule, item, read_lines(item.path))
                if drift is not None:
                    drifts.append(drift)
    return drifts


def format_drift(drift: Drift) -> str:
    """One line naming the rules file, the entry, the citation and what the tree says now."""
    head = f'{display_name(drift.rule_file)}: {drift.entry}: {drift.at} expected "{drift.expect}"'
    if drift.status == "missing-file":
        return f"{head}, file is missing"
    if drift.status == "moved":
        return f"{head}, now at line {drift.found_at}"
    if drift.line_text is None:
        return f"{head}, the file no longer reaches that line"
    return f'{head}, line now reads "{_collapse(drift.line_text)}"'


def uncovered_files(version: str, rule_files: list[RuleFile] | None = None) -> list[Path]:
    """Rules files with no evidence item for the series of `version` (default: every file under rules/).

    The caller falls back to the nearest verified series for these and says so.
    """
    series = kernel_series(version)
    return [
        rule.path
        for rule in (load_all_rules() if rule_files is None else rule_files)
        if not any(applies_to(item.kernels, series) for item in evidence_items(rule))
    ]


def verified_series(rule: RuleFile) -> list[str]:
    """The series a rules file names in its evidence, oldest first (input to `nearest_series`)."""
    named = {version for item in evidence_items(rule) for version in item.kernels or ()}
    return sorted(named, key=series_key)


def nearest_series(available: list[str], series: str) -> str | None:
    """The highest of `available` not newer than `series`, else the oldest; None if there is none."""
    ordered = sorted(set(available), key=series_key)
    not_newer = [candidate for candidate in ordered if series_key(candidate) <= series_key(series)]
    if not_newer:
        return not_newer[-1]
    return ordered[0] if ordered else None


def _line_reader(tree: Path) -> Callable[[str], list[str] | None]:
    """Read each cited file once per check, however many items cite it."""

    @cache
    def read(relative: str) -> list[str] | None:
        return _read_lines(tree / relative)

    return read


def _read_lines(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    # Kernel sources are UTF-8 but a few files carry stray Latin-1 bytes; a lost character in a line
    # that is not cited must not stop the check.
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def _check_item(rule: RuleFile, item: Evidence, lines: list[str] | None) -> Drift | None:
    if lines is None:
        return _drift(rule, item, "missing-file", None, None)
    wanted = _collapse(item.expect)
    index = item.line - 1
    current = lines[index] if index < len(lines) else None
    if current is not None and wanted in _collapse(current):
        return None
    found_at = _nearest_line_containing(lines, index, wanted)
    return _drift(rule, item, "changed" if found_at is None else "moved", found_at, current)


def _drift(rule: RuleFile, item: Evidence, status: DriftStatus, found_at: int | None, line_text: str | None) -> Drift:
    return Drift(rule.path, item.entry, item.at, item.expect, status, found_at, line_text)


def _nearest_line_containing(lines: list[str], index: int, wanted: str) -> int | None:
    """1-based number of the closest line within SEARCH_RADIUS containing `wanted`; earlier wins ties."""
    for distance in range(1, SEARCH_RADIUS + 1):
        for candidate in (index - distance, index + distance):
            if 0 <= candidate < len(lines) and wanted in _collapse(lines[candidate]):
                return candidate + 1
    return None


def _collapse(text: str) -> str:
    """Whitespace-insensitive form: tabs versus spaces and re-indentation are not drift."""
    return " ".join(text.split())
