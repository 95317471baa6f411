"""The branch conditions a statement runs under, as the C of its function says (not `#if` guards).

Owns `Branches(captures).of_all(nodes)`: per node, innermost first, the `(condition text, holds)` pairs
that must be true for the node to execute — from the `if`/`else` arms around it, a `?:` arm, the right operand of `&&` /
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
    """Branch conditions of the nodes of one syntax tree, from the query's captures of the constructs that make
    them: every arm is a byte span of the tree (an `if` arm, a `?:` arm, the right operand of `&&` / `||`, the
    rest of a block after a guard clause), the spans nest, and a node runs under the arms whose spans hold it,
    up to its function. `of_all` finds them for many nodes in one sweep over the spans sorted by start: no
    climb from node to parent, which tree-sitter answers by searching down from the root."""

    def __init__(self, found: dict[str, list[Node]]) -> None:
        """`found`: the captures of the expressions and definitions queries (`if`, `ternary`, `logical`,
        `function`, `label`) under one root."""
        self._labels: dict[int, dict[str, int]] = {}
        self._all_labels = found.get("label", [])
        self._label_starts = [label.start_byte for label in self._all_labels]
        spans: list[tuple[int, int, list[Condition] | None]] = [  # (start, end, conditions; None: a function)
            (function.start_byte, function.end_byte, None) for function in found.get("function", [])]
        for statement in found.get("if", []):
            spans += self._if_spans(statement)
        for expression in found.get("ternary", []):
            condition = expression.child_by_field_name("condition")
            if condition is not None:
                for field, holds in (("consequence", True), ("alternative", False)):
                    arm = expression.child_by_field_name(field)
                    if arm is not None:
                        spans.append((arm.start_byte, arm.end_byte, _pair(condition, holds)))
        for expression in found.get("logical", []):
            left, right = expression.child_by_field_name("left"), expression.child_by_field_name("right")
            operator = expression.child_by_field_name("operator")
            if left is not None and right is not None and operator is not None:
                spans.append((right.start_byte, right.end_byte, _pair(left, operator.type == "&&")))
        self._spans = sorted(spans, key=lambda span: (span[0], -span[1]))

    def of_all(self, nodes: list[Node]) -> dict[int, tuple[Condition, ...]]:
        """Node id -> its conditions, innermost first."""
        result: dict[int, tuple[Condition, ...]] = {}
        stack: list[tuple[int, tuple[Condition, ...]]] = []  # (end, conditions of the span and those around it)
        spans, count, next_span = self._spans, len(self._spans), 0
        for start, node_id in sorted((node.start_byte, node.id) for node in nodes):
            while next_span < count and spans[next_span][0] <= start:
                span_start, span_end, own = spans[next_span]
                next_span += 1
                while stack and stack[-1][0] <= span_start:
                    stack.pop()
                around = stack[-1][1] if stack else ()
                stack.append((span_end, () if own is None else (*own, *around) if own else around))
            while stack and stack[-1][0] <= start:
                stack.pop()
            result[node_id] = stack[-1][1] if stack else ()
        return result

    def _if_spans(self, statement: Node) -> list[tuple[int, int, list[Condition] | None]]:
        """The arms of an `if`, and when it is a guard clause (no `else`, an arm that leaves) in a block, the rest
        of the block, which runs only where the condition is false."""
        condition = statement.child_by_field_name("condition")
        if condition is None:
            return []
        consequence = statement.child_by_field_name("consequence")
        alternative = statement.child_by_field_name("alternative")
        spans = [(arm.start_byte, arm.end_byte, _pair(condition, holds))
                 for arm, holds in ((consequence, True), (alternative, False)) if arm is not None]
        exit_statement = _exit_of(consequence) if consequence is not None and alternative is None else None
        block = statement.parent if exit_statement is not None else None
        if block is not None and block.type == "compound_statement":
            destination = self._destination(exit_statement)
            spans.append((statement.end_byte, block.end_byte,
                          [(*pair, destination) for pair in _pair(condition, False)]))
        return spans

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
