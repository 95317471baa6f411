"""The tree's C source text where the fact database has nothing: parsed files with each line's `#if` guard.

Owns reading a file of the kernel tree the way the index would (the same dialect rewriting, which keeps
lines in place), parsing it with tree-sitter through `regaudit.parse.parser`, and the guard of every
line from the directive lines themselves (tree-sitter loses `#ifdef` inside an initializer list), in
the text form `regaudit.parse.conditions` gives fact conditions. The bridge derivations read statements
the index does not record (`return`, `case`, initializer entries, enumerators) through it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from regaudit.errors import BadInput
from regaudit.parse import parser
from regaudit.parse.c_syntax import Node, function_declarator, text
from regaudit.parse.prepare import load_dialect

_DIRECTIVE = re.compile(r"^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b(.*)$")
_COMMENT = re.compile(r"/\*.*?\*/|//.*$")


@dataclass(frozen=True)
class CFile:
    """One parsed file of the tree, with the `#if` guard of each of its lines."""

    path: str
    source: bytes
    root: Node
    guards: tuple[str, ...]  # guard of line i+1

    def guard(self, node: Node) -> str:
        return self.guards[node.start_point[0]]

    @cached_property
    def initialized(self) -> dict[str, Node]:
        """The `{...}` initializer of each variable the file defines with one (`struct bpf_func_proto p = {`, an
        array's `t[] = {`), by name; the first definition of a name."""
        found: dict[str, Node] = {}
        for declarator in parser.captures("expressions", self.root).get("initializer", []):
            target = declarator.child_by_field_name("declarator")
            value = declarator.child_by_field_name("value")
            while target is not None and target.type == "array_declarator":
                target = target.child_by_field_name("declarator")
            if target is not None and value is not None and value.type == "initializer_list":
                found.setdefault(text(target), value)
        return found

    def function(self, name: str, line: int | None = None) -> Node | None:
        """The definition of function `name` (the one spanning 1-based `line` when given)."""
        for node in parser.captures("definitions", self.root).get("function", []):
            declarator = function_declarator(node)
            inner = declarator.child_by_field_name("declarator") if declarator is not None else None
            spans = line is None or node.start_point[0] < line <= node.end_point[0] + 1
            if inner is not None and text(inner) == name and spans:
                return node
        return None


@cache
def parse_file(tree: Path, relative: str) -> CFile:
    path = tree / relative
    if not path.is_file():
        raise BadInput(f"{relative}: not in the kernel tree {tree}")
    source = path.read_bytes()
    lines = source.decode("utf-8", errors="replace").splitlines()
    # The index's rewriting (attribute macros blanked, BPF_CALL_n & co. made plain C) keeps lines in place.
    prepared = load_dialect(tree).prepare(source).text
    return CFile(relative, source, parser.parse(prepared).root_node, line_guards(lines))


def line_guards(lines: list[str]) -> tuple[str, ...]:
    """Each line's `#if` guard, written as `regaudit.parse.conditions` writes fact conditions.

    A header's include guard (`#ifndef X` then `#define X` as its first directives) is not a condition."""
    stack: list[tuple[str, list[str]]] = []  # (parent guard, tests of the chain so far) per open #if
    guards: list[str] = []
    current = ""
    include_guard = _include_guard(lines)
    for line in lines:
        match = _DIRECTIVE.match(line)
        if match:
            current = _directive(match[1], _COMMENT.sub("", match[2]).strip(), stack, current, include_guard)
        guards.append(current)
    return tuple(guards)


def _directive(kind: str, argument: str, stack: list[tuple[str, list[str]]], current: str, ignored: str | None) -> str:
    if kind == "endif":
        return stack.pop()[0] if stack else ""
    if kind in ("if", "ifdef", "ifndef"):
        test = _test(kind, argument)
        stack.append((current, [test]))
        return _join(current, "" if test == ignored else test)
    if not stack:
        return current
    parent, earlier = stack[-1]
    own = " && ".join(f"!({test})" for test in earlier)
    if kind == "elif":
        test = _test("if", argument)
        earlier.append(test)
        own = _join(own, test)
    return _join(parent, own or "1")


def _test(kind: str, argument: str) -> str:
    if kind == "ifdef":
        return f"defined({argument})"
    if kind == "ifndef":
        return f"!defined({argument})"
    return f"({argument})" if any(op in argument for op in ("||", "&&", "?")) else argument


def _join(parent: str, own: str) -> str:
    return " && ".join(part for part in (parent, own) if part)


def _include_guard(lines: list[str]) -> str | None:
    directives = [line.split() for line in lines if line.lstrip().startswith("#")][:2]
    if len(directives) == 2 and directives[0][:1] == ["#ifndef"] and directives[1][:1] == ["#define"]:
        name = directives[0][1] if len(directives[0]) > 1 else None
        if name is not None and directives[1][1:2] == [name]:
            return f"!defined({name})"
    return None


def descendants(node: Node, types: tuple[str, ...]) -> Iterator[Node]:
    """Outermost descendants of `node` of one of `types`, in source order."""
    for child in node.children:
        if child.type in types:
            yield child
        else:
            yield from descendants(child, types)


def enclosing(node: Node, kind: str, stop: Node) -> Node | None:
    """The nearest ancestor of `node` of type `kind` below `stop`."""
    current = node.parent
    while current is not None and current != stop:
        if current.type == kind:
            return current
        current = current.parent
    return None


