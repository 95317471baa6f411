"""The branch conditions a statement runs under, as the C of its function says (not `#if` guards).

Owns `Branches.of(node)`: innermost first, the `(condition text, holds)` pairs that must be true for
the node to execute — from the `if`/`else` arms around it, a `?:` arm, the right operand of `&&` /
`||`, and the guard-clause idiom (`if (C) return …;` / `goto` / `break` / `continue` earlier in the
same block makes the rest of the block run under `!C`). Later stages decide some of these
conditions from a frame model (`regs->flags & X86_EFLAGS_FIXED`) and drop the arms that cannot run.
Loops and `switch` cases are not conditions here: what they guard is taken to run.

A guard clause's condition carries a third element, where its arm goes: `RETURNS` (-1) for a
`return`, the label's line for a `goto`, 0 for `break`/`continue`. Code after the whole block is
then known to be reached only past the clause or not through the block at all.
"""

from __future__ import annotations

import bisect
import re

from regaudit.parse.c_syntax import Node, text

Condition = tuple[str, bool] | tuple[str, bool, int]
RETURNS = -1
_EXITS = frozenset({"return_statement", "goto_statement", "break_statement", "continue_statement"})
_MAX_TEXT = 240  # longer conditions are kept open: no model decides a paragraph
_PARENS = re.compile(r"[()]")


class Branches:
    """Branch conditions of the nodes of one syntax tree, memoised per node (ancestors are shared),
    with each block's guard clauses and each function's labels found once."""

    def __init__(self, labels: list[Node]) -> None:
        """`labels`: the tree's labeled statements in document order."""
        self._memo: dict[int, tuple[Condition, ...]] = {}
        self._guards: dict[int, dict[int, list[Condition]]] = {}
        self._labels: dict[int, dict[str, int]] = {}
        self._all_labels = labels
        self._label_starts = [label.start_byte for label in labels]

    def of(self, node: Node) -> tuple[Condition, ...]:
        # The climb to the function or to an ancestor met before reads each node's id, parent and type once:
        # every read costs, Node.parent most (it searches from the root).
        memo = self._memo
        chain: list[tuple[Node, int, Node | None, str]] = []  # (link, its id, its parent, the parent's type)
        outer: tuple[Condition, ...] = ()
        current: Node | None = node
        kind = node.type
        while current is not None and kind != "function_definition":
            key = current.id
            if key in memo:
                outer = memo[key]
                break
            parent = current.parent
            kind = parent.type if parent is not None else ""
            chain.append((current, key, parent, kind))
            current = parent
        for link, key, parent, parent_kind in reversed(chain):
            if parent is not None:
                own = self._guards_before(link, parent) if parent_kind == "compound_statement" \
                    else _arm(link, parent, parent_kind)
                if own:
                    outer = (*own, *outer)
            memo[key] = outer
        return outer

    def _guards_before(self, child: Node, block: Node) -> list[Condition]:
        """`if (C) return;` before `child` in `block`: the rest runs under !C (innermost, i.e. latest, first)."""
        before = self._guards.get(block.id)
        if before is None:
            before = self._guards[block.id] = {}
            found: list[Condition] = []
            for sibling in block.named_children:
                before[sibling.id] = found[::-1]
                if sibling.type == "if_statement" and sibling.child_by_field_name("alternative") is None:
                    consequence = sibling.child_by_field_name("consequence")
                    condition = sibling.child_by_field_name("condition")
                    exit_statement = _exit_of(consequence) if consequence is not None else None
                    if exit_statement is not None and condition is not None:
                        found += [(*pair, self._destination(exit_statement)) for pair in _pair(condition, False)]
        return before.get(child.id, [])

    def _destination(self, exit_statement: Node) -> int:
        """RETURNS, the line of a goto's label in the function (0 when not found), 0 for break/continue."""
        if exit_statement.type == "return_statement":
            return RETURNS
        if exit_statement.type != "goto_statement":
            return 0
        label = exit_statement.child_by_field_name("label")
        function = exit_statement.parent
        while function is not None and function.type != "function_definition":
            function = function.parent
        if label is None or function is None:
            return 0
        labels = self._labels.get(function.id)
        if labels is None:
            labels = self._labels[function.id] = self._label_lines(function)
        return labels.get(text(label), 0)

    def _label_lines(self, function: Node) -> dict[str, int]:
        """Each label of `function` and the line of its statement: the first one met by a search that takes
        the last statement first and an outer statement before the ones inside it."""
        first = bisect.bisect_left(self._label_starts, function.start_byte)
        end = bisect.bisect_left(self._label_starts, function.end_byte)
        lines: dict[str, int] = {}
        for statement in sorted(self._all_labels[first:end], key=lambda node: (-node.end_byte, node.start_byte)):
            name = statement.child_by_field_name("label")
            if name is not None:
                lines.setdefault(text(name), statement.start_point.row + 1)
        return lines


def _arm(child: Node, parent: Node, kind: str) -> list[Condition]:
    """The arm of `parent` (of type `kind`) that `child` is, as conditions."""
    if kind == "if_statement":
        return _if_arm(child, parent)
    if kind == "else_clause":
        return []
    if kind == "conditional_expression":
        condition = parent.child_by_field_name("condition")
        if condition is None or child.id == condition.id:
            return []
        consequence = parent.child_by_field_name("consequence")
        return _pair(condition, consequence is not None and child.id == consequence.id)
    if kind == "binary_expression":
        operator = parent.child_by_field_name("operator")
        left, right = parent.child_by_field_name("left"), parent.child_by_field_name("right")
        if operator is None or left is None or right is None or child.id != right.id:
            return []
        if operator.type in ("&&", "||"):
            return _pair(left, operator.type == "&&")
        return []
    return []


def _if_arm(child: Node, statement: Node) -> list[Condition]:
    condition = statement.child_by_field_name("condition")
    if condition is None or child.id == condition.id:
        return []
    consequence = statement.child_by_field_name("consequence")
    return _pair(condition, consequence is not None and child.id == consequence.id)


def _exit_of(statement: Node) -> Node | None:
    """The return/goto/break/continue a guard clause's arm ends with, if it ends with one."""
    if statement.type in _EXITS:
        return statement
    if statement.type == "compound_statement":
        body = [c for c in statement.named_children if c.type != "comment"]
        return body[-1] if body and body[-1].type in _EXITS else None
    return None


def _pair(condition: Node, holds: bool) -> list[Condition]:
    value = text(condition).strip()
    while value.startswith("(") and value.endswith(")") and _balanced(value[1:-1]):
        value = value[1:-1].strip()
    value = " ".join(value.split())
    return [(value, holds)] if value and len(value) <= _MAX_TEXT else []


def _balanced(inner: str) -> bool:
    depth = 0
    for paren in _PARENS.findall(inner):
        depth += 1 if paren == "(" else -1
        if depth < 0:
            return False
    return depth == 0
