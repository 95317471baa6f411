"""The `#if`/`#ifdef` guard around any byte of a parsed file, as preprocessor text.

tree-sitter-c nests well-formed conditional blocks as preproc_if/ifdef nodes whose `alternative`
(#elif/#else) is a child node; this module turns them into disjoint byte intervals, one per branch,
each with its full guard (`defined(CONFIG_A) && !(X > 1)`), and answers lookups by offset.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from regaudit.parse.c_syntax import Node, text


@dataclass(frozen=True)
class _Branch:
    start: int
    end: int
    guard: str  # this branch's own test, already combined with its parents'


class Conditions:
    """Guards by offset. Branches are nested or disjoint, so the innermost one containing an
    offset is found by bisecting on start and walking out through enclosing branches."""

    def __init__(self, branch_nodes: list[Node], guard_macro: str | None = None) -> None:
        # The include guard wraps the whole header and says nothing about configuration.
        ignored = f"!defined({guard_macro})" if guard_macro else None
        own = [branch for node in branch_nodes for branch in _own_branches(node) if branch[2] != ignored]
        own.sort(key=lambda branch: (branch[0], -branch[1]))
        self._branches: list[_Branch] = []
        self._parent: list[int] = []
        stack: list[int] = []
        for start, end, test in own:
            while stack and self._branches[stack[-1]].end <= start:
                stack.pop()
            parent = stack[-1] if stack else -1
            guard = test if parent < 0 else f"{self._branches[parent].guard} && {test}"
            self._branches.append(_Branch(start, end, guard))
            self._parent.append(parent)
            stack.append(len(self._branches) - 1)
        self._starts = [b.start for b in self._branches]

    def at(self, offset: int) -> str:
        index = bisect.bisect_right(self._starts, offset) - 1
        while index >= 0:
            branch = self._branches[index]
            if branch.start <= offset < branch.end:
                return branch.guard
            index = self._parent[index]
        return ""


def _own_branches(node: Node) -> list[tuple[int, int, str]]:
    """The byte range this branch node governs (excluding its #elif/#else child) and its test.

    Only the head of a chain (preproc_if/ifdef) produces intervals; it walks its alternatives so
    each #elif/#else can negate every earlier test of the chain.
    """
    if node.type not in ("preproc_if", "preproc_ifdef"):
        return []
    result = []
    earlier: list[str] = []
    current: Node | None = node
    while current is not None:
        alternative = current.child_by_field_name("alternative")
        end = alternative.start_byte if alternative is not None else current.end_byte
        test = _test(current)
        negated = " && ".join(f"!({e})" for e in earlier)
        guard = " && ".join(part for part in (negated, test) if part)
        result.append((current.start_byte, end, guard or "1"))
        if test is not None:
            earlier.append(test)
        current = alternative
    return result


def _test(node: Node) -> str | None:
    """The branch's own condition text; None for #else."""
    if node.type in ("preproc_ifdef", "preproc_elifdef"):
        name = node.child_by_field_name("name")
        directive = node.children[0].type if node.children else ""
        label = text(name) if name is not None else "?"
        return f"!defined({label})" if directive.endswith("ifndef") else f"defined({label})"
    if node.type in ("preproc_if", "preproc_elif"):
        condition = node.child_by_field_name("condition")
        test = text(condition) if condition is not None else "?"
        # Parenthesised so that joining guards with && keeps each test's meaning ('A || B').
        return f"({test})" if any(op in test for op in ("||", "&&", "?")) else test
    return None


def include_guard(root: Node) -> str | None:
    """`_ASM_X86_PTRACE_H` when the file is `#ifndef G / #define G ... #endif`, else None."""
    first = next((c for c in root.named_children if c.type != "comment"), None)
    if first is None or first.type != "preproc_ifdef" or not first.children[0].type.endswith("ifndef"):
        return None
    name = first.child_by_field_name("name")
    body = [c for c in first.named_children if c.type not in ("comment", "identifier")]
    if name is None or not body or body[0].type != "preproc_def":
        return None
    defined = body[0].child_by_field_name("name")
    return text(name) if defined is not None and text(defined) == text(name) else None
