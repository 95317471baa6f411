"""Which findings a patch adds, fixes or leaves: two audit documents matched by fingerprint.

Owns the comparison only. A finding is its `fingerprint` (README, "Audit JSON"): it holds no line number,
so code moved by the patch keeps its findings unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Finding = dict[str, Any]


@dataclass(frozen=True)
class Comparison:
    """`new`: in the patched tree only (its lines); `fixed`: in the base tree only (its lines)."""

    new: list[Finding]
    fixed: list[Finding]
    unchanged: int


def compare(base: list[Finding], patched: list[Finding]) -> Comparison:
    before, after = _by_fingerprint(base), _by_fingerprint(patched)
    return Comparison(new=_ordered(after[fp] for fp in after.keys() - before.keys()),
                      fixed=_ordered(before[fp] for fp in before.keys() - after.keys()),
                      unchanged=len(after.keys() & before.keys()))


def _ordered(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f["consumer"]["file"], f["consumer"]["line"], f["arch"], f["member"],
                                           f["fingerprint"]))


def _by_fingerprint(findings: Iterable[Finding]) -> dict[str, Finding]:
    """One finding per fingerprint (the first: documents list findings by arch, file and line)."""
    found: dict[str, Finding] = {}
    for finding in findings:
        found.setdefault(finding["fingerprint"], finding)
    return found
