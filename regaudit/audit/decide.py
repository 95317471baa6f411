"""Deciding a C branch condition from what a frame model says a frame pointer's members hold.

Owns `FrameOracle.decide(condition, frame_vars)`: True, False, or None (open) for the condition text
of a branch (`calls.branches`), given which variables point to the frame. It knows:
- a member read of the frame: a `constant` member is its value folded through the arch's #defines
  (`cs` = `__KERNEL_CS` = `GDT_ENTRY_KERNEL_CS*8` = 16), a `zero` member is 0, anything else is open;
- `regs->flags & BITS` where the producer set exactly those bits (a model mask): non-zero;
- integer constants, object-like #defines whose guard the arch's build takes, `! && || & | == != < >`
  and friends, casts, `!!`;
- a call of a function or function-like macro whose body is a single expression (`return EXPR;`
  once the `#if` arms the build drops are gone, or a macro body), with the frame passed in.
Anything else is open, and an open condition keeps both arms: the oracle only removes arms the
model proves dead (x86 `perf_hw_regs(regs)` on a frame whose flags are 0), never guesses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from regaudit.arch.frames import FrameModel
from regaudit.flow.propagate import FlowProgram, source_lines
from regaudit.parse import parser
from regaudit.parse.c_syntax import Node, member_path_of, text


class _Nonzero:
    """An unknown value known not to be 0 (bits the producer set)."""


NONZERO = _Nonzero()
# The values an expression can have: each #if arm of a #define gives one (x86_32 and x86_64
# __KERNEL_CS are 96 and 16; both have RPL 0). None when unknown.
Value = frozenset[int] | _Nonzero | None
_DEPTH = 4  # calls inlined into a condition
_MACRO_DEPTH = 8  # object-like macros expanded into one value
_MACRO_NAME = re.compile(r"^_*[A-Z][A-Z0-9_]*$")  # how kernel constants are spelled; others are variables
_MAX_VALUES = 16
_NUMBER = re.compile(r"^(0[xX][0-9a-fA-F]+|\d+)[uUlL]*$")
_OPERATORS: dict[str, Callable[[int, int], int]] = {
    "==": lambda a, b: int(a == b), "!=": lambda a, b: int(a != b), "<": lambda a, b: int(a < b),
    ">": lambda a, b: int(a > b), "<=": lambda a, b: int(a <= b), ">=": lambda a, b: int(a >= b),
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "<<": lambda a, b: a << b,
    ">>": lambda a, b: a >> b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b, "&": lambda a, b: a & b,
}


class FrameOracle:
    """Decides conditions over the frame of one model on the model's arch."""

    def __init__(self, program: FlowProgram, model: FrameModel) -> None:
        self.program, self.model = program, model
        self._decided: dict[tuple[str, frozenset[str]], bool | None] = {}
        self._bodies: dict[str, tuple[list[str], str] | None] = {}
        self.consulted: set[str] = set()  # macros, constants and functions a decision read, by name

    def decide(self, condition: str, frame_vars: frozenset[str]) -> bool | None:
        key = (condition, frame_vars)
        if key not in self._decided:
            node = _expression(condition)
            value = None if node is None else self._value(node, {name: "frame" for name in frame_vars}, 0)
            self._decided[key] = _truth(value)
        return self._decided[key]

    # --- evaluation ---------------------------------------------------------------------------------

    def _value(self, node: Node, env: dict[str, object], depth: int) -> Value:
        kind = node.type
        if kind in ("parenthesized_expression", "cast_expression"):
            inner = node.child_by_field_name("value") if kind == "cast_expression" else node.named_children[-1]
            return self._value(inner, env, depth) if inner is not None else None
        if kind == "number_literal":
            number = _number(text(node))
            return None if number is None else frozenset({number})
        if kind == "identifier":
            return self._identifier(text(node), env, depth)
        if kind == "unary_expression":
            return self._unary(node, env, depth)
        if kind == "binary_expression":
            return self._binary(node, env, depth)
        if kind == "field_expression":
            return self._member(node, env)
        if kind == "call_expression":
            return self._call(node, env, depth)
        return None

    def _identifier(self, name: str, env: dict[str, object], depth: int) -> Value:
        if name in env:
            bound = env[name]
            return None if bound == "frame" else bound  # type: ignore[return-value]
        return self._define(name, depth)

    def _unary(self, node: Node, env: dict[str, object], depth: int) -> Value:
        operator = node.child_by_field_name("operator")
        operand = node.child_by_field_name("argument")
        value = self._value(operand, env, depth) if operand is not None else None
        if value is None or operator is None:
            return None
        if operator.type == "!":
            truth = _truth(value)
            return None if truth is None else frozenset({int(not truth)})
        if isinstance(value, _Nonzero):
            return None
        apply = {"-": lambda v: -v, "~": lambda v: ~v, "+": lambda v: v}.get(operator.type)
        return frozenset(apply(v) for v in value) if apply else None

    def _binary(self, node: Node, env: dict[str, object], depth: int) -> Value:
        operator_node = node.child_by_field_name("operator")
        left_node, right_node = node.child_by_field_name("left"), node.child_by_field_name("right")
        if operator_node is None or left_node is None or right_node is None:
            return None
        operator = operator_node.type
        if operator == "&" and self._sets_bits(left_node, right_node, env):
            return NONZERO
        left, right = self._value(left_node, env, depth), self._value(right_node, env, depth)
        if operator in ("&&", "||"):
            return _logical(operator, _truth(left), _truth(right))
        if operator == "&" and frozenset({0}) in (left, right):
            return frozenset({0})
        apply = _OPERATORS.get(operator)
        if apply is None or not isinstance(left, frozenset) or not isinstance(right, frozenset):
            return None
        result = frozenset(apply(a, b) for a in left for b in right)
        return result if len(result) <= _MAX_VALUES else None

    def _sets_bits(self, left: Node, right: Node, env: dict[str, object]) -> bool:
        """`regs->m & BITS` where the producer set every bit named in BITS (its mask names them)."""
        member = self._frame_member(left, env)
        if member is None or member not in self.model.members:
            return False
        mask = self.model.members[member].mask
        wanted = set(re.findall(r"[A-Za-z_]\w*", text(right)))
        return bool(mask and wanted) and wanted <= set(re.findall(r"[A-Za-z_]\w*", mask))

    def _member(self, node: Node, env: dict[str, object]) -> Value:
        member = self._frame_member(node, env)
        value = self.model.members.get(member) if member is not None else None
        if value is None:
            return None
        if value.state == "zero":
            return frozenset({0})
        if value.state == "constant" and value.value is not None:
            node_value = _expression(value.value)
            return self._value(node_value, {}, 0) if node_value is not None else None
        return None

    def _frame_member(self, node: Node, env: dict[str, object]) -> str | None:
        var, path = member_path_of(node)
        return path if var is not None and env.get(var) == "frame" and path else None

    def _call(self, node: Node, env: dict[str, object], depth: int) -> Value:
        callee = node.child_by_field_name("function")
        arguments = node.child_by_field_name("arguments")
        if callee is None or callee.type != "identifier" or arguments is None or depth >= _DEPTH:
            return None
        body = self._body(text(callee))
        if body is None:
            return None
        params, expression = body
        args = [a for a in arguments.named_children if a.type != "comment"]
        if len(args) != len(params):
            return None
        inner: dict[str, object] = {}
        for param, arg in zip(params, args, strict=True):
            name = text(arg).strip("() ")
            inner[param] = "frame" if env.get(name) == "frame" else self._value(arg, env, depth + 1)
        parsed = _expression(expression)
        return self._value(parsed, inner, depth + 1) if parsed is not None else None

    def _body(self, name: str) -> tuple[list[str], str] | None:
        """(parameter names, the single expression it returns) of the arch's definition of `name`."""
        if name not in self._bodies:
            self.consulted.add(name)
            self._bodies[name] = None
            facts = self.program.facts
            for function_id in self.program.functions_named(name):
                function = facts.function(function_id)
                params = [p or "" for p in facts.params(function_id)]
                if function.kind == "macro":
                    self._bodies[name] = (params, function.macro_body or "")
                    break
                expression = self._single_return(function_id)
                if expression is not None:
                    self._bodies[name] = (params, expression)
                    break
        return self._bodies[name]

    def _single_return(self, function_id: int) -> str | None:
        function = self.program.facts.function(function_id)
        lines = source_lines(self.program.facts.tree_path, function.file)[function.line - 1:function.end_line]
        guards = {fact.line: fact.condition for fact in self.program.facts.accesses(function_id)}
        guards.update({call.line: call.condition for call in self.program.facts.calls(function_id)})
        returns = []
        for offset, line in enumerate(lines):
            match = re.match(r"\s*return\s+(.*);\s*$", line)
            if match and self.program.config.holds(guards.get(function.line + offset, "")) is not False:
                returns.append(match[1])
        statements = [line.strip() for line in lines[1:] if line.strip().endswith(";")]
        only_returns = all(statement.startswith("return") for statement in statements)
        return returns[0] if len(returns) == 1 and only_returns else None

    def _define(self, name: str, depth: int) -> Value:
        """An object-like macro's value: the indexed #define the build takes, else every #define of it in the
        arch's and the generic headers (the `header_defines` text facts; they must all agree, as 32- and 64-bit
        arms of a mask do)."""
        if depth >= _MACRO_DEPTH:
            return None
        self.consulted.add(name)
        config = self.program.config
        indexed = [d for d in config.facts.defines_named(name) if config.in_scope(d.file)]
        taken = [d.value for d in indexed if config.holds(d.condition)]
        if taken or indexed:
            candidates = taken[:1]
        elif _MACRO_NAME.match(name):
            candidates = list(self.program.text.header_define_values(config.arch, name))
        else:
            return None  # a variable, not a constant
        union: set[int] = set()
        for text_value in candidates:
            parsed = _expression(text_value)
            value = self._value(parsed, {}, depth + 1) if parsed is not None else None
            if not isinstance(value, frozenset):
                return None
            union |= value
        return frozenset(union) if union and len(union) <= _MAX_VALUES else None


def _truth(value: Value) -> bool | None:
    if isinstance(value, _Nonzero):
        return True
    if not value:
        return None
    if all(value):
        return True
    return False if not any(value) else None


def _logical(operator: str, left: bool | None, right: bool | None) -> Value:
    if operator == "&&":
        if False in (left, right):
            return frozenset({0})
        return frozenset({1}) if left and right else None
    if True in (left, right):
        return frozenset({1})
    return frozenset({0}) if left is False and right is False else None


def _number(literal: str) -> int | None:
    match = _NUMBER.match(literal)
    return int(match[1], 0) if match else None


@cache
def _expression(condition: str) -> Node | None:
    """The expression node of `condition`, parsed as C (None when it does not parse cleanly)."""
    source = f"int __regaudit_condition = ({condition});".encode()
    root = parser.parse(source).root_node
    if parser.count_errors(root):
        return None
    declaration = root.named_children[0] if root.named_children else None
    declarator = declaration.child_by_field_name("declarator") if declaration is not None else None
    value = declarator.child_by_field_name("value") if declarator is not None else None
    return value

