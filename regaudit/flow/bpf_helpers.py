"""The BPF helpers a program type may call with its ctx, derived from the kernel's C (rules/bridges.toml
`calls_helpers`).

Owns `bpf_helpers`: it reads the `proto_function`'s body (every `return &X;`, both arms of
`c ? &A : &B`), recurses into every function returning a `struct bpf_func_proto *` the body calls
(`default: return bpf_tracing_func_proto(...)`, `func_proto = bpf_base_func_proto(...)`), and keeps the
protos whose `argN_type` is ARG_PTR_TO_CTX (or ARG_PTR_TO_CTX_OR_NULL). A `case` an outer function
already answered is not taken again from an inner one (kprobe's BPF_FUNC_get_func_ip never reaches
bpf_tracing_func_proto's). Sources: the fact database (function locations, `.func`/`.argN_type`
bindings), else the tree's text (`regaudit.flow.c_text`) of the `*.c` files the database's text facts
list as defining the proto or function (`bpf_proto_definitions`).

Limits: a proto whose initializer is found in no `*.c` file is left out; a proto field written as an
expression is read only when the database has no fields for that proto (text fallback); a func_proto
walk does not evaluate `if (...)` tests or Kconfig (every return is an entry, its guard in `condition`);
a function already walked is not walked again from another path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from regaudit.errors import BadInput
from regaudit.facts.bridge_facts import PROTO_TAG, BridgeFacts, ProtoField
from regaudit.facts.text_facts import TextFacts
from regaudit.flow.c_text import CFile, descendants, enclosing, parse_file
from regaudit.parse.c_syntax import Node, text
from regaudit.ruleset.flow_rules import Bridge

_CTX_ARG = re.compile(r"^ARG_PTR_TO_CTX(?:_OR_NULL)?$")
_ARG_FIELD = re.compile(r"^arg(\d+)_type$")


@dataclass(frozen=True)
class HelperEntry:
    helper: str  # 'bpf_get_stackid' (proto name without its `_proto` part)
    proto: str  # 'bpf_get_stackid_proto'
    function: str  # the proto's `.func`, the C function the helper runs
    ctx_positions: tuple[int, ...]  # 0-based arguments typed ARG_PTR_TO_CTX
    via: tuple[str, ...]  # func_proto functions walked, outermost first
    file: str
    line: int  # the `return &X_proto;` line
    condition: str  # #if guard around that line, '' when none

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HelperEntry:
        return cls(**{**data, "ctx_positions": tuple(data["ctx_positions"]), "via": tuple(data["via"])})



@dataclass(frozen=True)
class _Proto:
    name: str
    fields: tuple[ProtoField, ...]

    def value(self, name: str) -> str | None:
        return next((f.value for f in self.fields if f.field == name), None)

    def ctx_positions(self) -> tuple[int, ...]:
        positions = {
            int(match[1]) - 1 for f in self.fields if (match := _ARG_FIELD.match(f.field)) and _CTX_ARG.match(f.value)
        }
        return tuple(sorted(positions))


@dataclass
class _ProtoWalker:
    """Walks func_proto functions from one start, through the database and the tree's text."""

    facts: BridgeFacts
    text: TextFacts
    tree: Path
    entries: list[HelperEntry] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def function(self, name: str) -> tuple[CFile, Node] | None:
        """The definition of func_proto function `name`: the database's, else a `*.c` file's text."""
        files = [loc.file for loc in self.facts.proto_function_definitions(name)]
        files += self.text.proto_files(name, "function")
        for relative in dict.fromkeys(files):
            source = parse_file(self.tree, relative)
            node = source.function(name)
            kind = node.child_by_field_name("type") if node is not None else None
            if node is not None and kind is not None and PROTO_TAG in text(kind):
                return source, node
        return None

    def walk(self, name: str, via: tuple[str, ...], handled: frozenset[str]) -> None:
        found = None if name in self.seen else self.function(name)
        if found is None:
            return
        self.seen.add(name)
        source, node = found
        via = (*via, name)
        body = node.child_by_field_name("body")
        if body is None:
            return
        labelled = list(_labelled(body, None))
        inner_handled = handled | {label for _, label in labelled if label is not None}
        for item, label in labelled:
            if label in handled:
                continue
            if item.type == "call_expression":
                callee = item.child_by_field_name("function")
                if callee is not None and callee.type == "identifier":
                    self.walk(text(callee), via, inner_handled)
            elif _is_address_of(item) and (statement := enclosing(item, "return_statement", body)):
                self._add(text(item.child_by_field_name("argument")), via, source, statement)

    def _add(self, proto_name: str, via: tuple[str, ...], source: CFile, at: Node) -> None:
        proto = self.proto(proto_name)
        if proto is None:
            return
        positions = proto.ctx_positions()
        if positions:
            helper = re.sub(r"_proto(?=_|$)", "", proto_name, count=1)
            line = at.start_point[0] + 1
            function = proto.value("func") or ""
            self.entries.append(
                HelperEntry(helper, proto_name, function, positions, via, source.path, line, source.guard(at))
            )

    def proto(self, name: str) -> _Proto | None:
        """The initializer of `struct bpf_func_proto name`: database bindings, else the text of a `*.c` file."""
        fields = self.facts.proto_fields(name)
        if fields:
            return _Proto(name, fields)
        for relative in self.text.proto_files(name, "variable"):
            found = _proto_from_text(parse_file(self.tree, relative), name)
            if found is not None:
                return found
        return None


def _labelled(node: Node, label: str | None) -> Iterator[tuple[Node, str | None]]:
    """Every call and `&x` under `node` with the `case` label it sits under (None: no case or default)."""
    for child in node.named_children:
        own = label
        if child.type == "case_statement":
            value = child.child_by_field_name("value")
            own = text(value) if value is not None else None
        if child.type == "call_expression" or _is_address_of(child):
            yield child, own
        yield from _labelled(child, own)


def _is_address_of(node: Node) -> bool:
    argument = node.child_by_field_name("argument")
    operator = node.child_by_field_name("operator")
    return (
        node.type == "pointer_expression"
        and operator is not None
        and text(operator) == "&"
        and argument is not None
        and argument.type == "identifier"
    )


def _proto_from_text(source: CFile, name: str) -> _Proto | None:
    value = source.initialized.get(name)
    if value is None:
        return None
    fields = []
    for pair in descendants(value, ("initializer_pair",)):
        designator = pair.child_by_field_name("designator")
        element = pair.child_by_field_name("value")
        if designator is not None and element is not None and designator.type == "field_designator":
            fields.append(ProtoField(text(designator).lstrip("."), text(element), source.path,
                                     pair.start_point[0] + 1, source.guard(pair)))
    return _Proto(name, tuple(fields))


def bpf_helpers(db_path: Path, tree: Path, bridge: Bridge) -> list[HelperEntry]:
    """Helpers `bridge.proto_function` makes available whose proto takes the ctx, in walk order."""
    start = bridge.expect("calls_helpers", bridge.proto_function)
    with BridgeFacts(db_path) as facts, TextFacts(db_path) as text:
        walker = _ProtoWalker(facts, text, tree)
        if walker.function(start) is None:
            raise BadInput(f"bridge {bridge.name}: no function {start} returning a bpf_func_proto in {tree}")
        walker.walk(start, (), frozenset())
    return walker.entries
