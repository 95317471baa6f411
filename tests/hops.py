"""Checking a reported path against the tree: every hop's line must move the frame pointer on.

Shared by the real-tree tests of the propagation and of the audit, so both hold paths to one rule.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_INDIRECT_CALL = re.compile(r"->\s*\w+\s*\(|\)\s*\(")


def moves_on(text: str, function: str, following: str) -> bool:
    """A hop's line calls the next function, calls through a pointer, stores the pointer, or stays in the
    function (the source line). A BPF program run may call any helper its func_proto offers."""
    return (following in text or following == function or following.endswith("_func_proto") or "=" in text
            or bool(_INDIRECT_CALL.search(text)))


def around(tree: Path, file: str, line: int) -> str:
    """The cited line and the next one (a call's arguments may continue there)."""
    return " ".join(_lines(tree, file)[line - 1:line + 1])


@cache
def _lines(tree: Path, file: str) -> list[str]:
    return (tree / file).read_text(errors="replace").splitlines()
