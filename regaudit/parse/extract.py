"""Turns one C file into fact rows for the tables described in regaudit/facts/schema.py.

Flow per file: rewrite kernel dialect (prepare.py) → parse → definitions query (functions, macros,
structs, typedefs, declarations, #if branches) → expressions query over the file and over a
synthetic file holding every function-like macro body at its original line → rows.

Rows reference functions, calls and structs by their index in this file's lists; the writer turns
those into database ids. This module never touches SQLite.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field

from regaudit.parse import parser
from regaudit.parse.branches import Branches, Condition
from regaudit.parse.c_syntax import (
    LITERALS,
    Node,
    declarator_name_type,
    function_declarator,
    function_return_type,
    is_address_of,
    member_chain,
    member_path_of,
    operator_of,
    root_identifier,
    text,
    type_text,
    unwrap,
    unwrap_casts,
)
from regaudit.parse.conditions import Conditions, include_guard
from regaudit.parse.prepare import Dialect, Prepared

Row = dict[str, object]
# Name of the wrapper function each macro body is parsed in (see _macro_unit).
_MACRO_WRAPPER = "_"
_ASSIGN_MASK_OPERATORS = {"|=", "&=", "^="}
_CONTAINER_OF = {"container_of", "container_of_const"}
# Both queries in one pass over a tree: their capture names differ.
_QUERIES = ("definitions", "expressions")


@dataclass
class FileFacts:
    """Everything extracted from one file, ready for the writer."""

    path: str
    parse_errors: int = 0
    rewrites: int = 0
    warnings: list[Row] = field(default_factory=list)
    functions: list[Row] = field(default_factory=list)
    params: list[Row] = field(default_factory=list)
    variables: list[Row] = field(default_factory=list)
    defines: list[Row] = field(default_factory=list)
    calls: list[Row] = field(default_factory=list)
    call_args: list[Row] = field(default_factory=list)
    accesses: list[Row] = field(default_factory=list)
    assignments: list[Row] = field(default_factory=list)
    bindings: list[Row] = field(default_factory=list)
    structs: list[Row] = field(default_factory=list)
    struct_members: list[Row] = field(default_factory=list)
    typedefs: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class Symbol:
    kind: str  # 'param' | 'local' | 'global'
    param_index: int | None
    type: str | None


class _Scopes:
    """Which function (index into FileFacts.functions) contains a byte offset."""

    def __init__(self) -> None:
        self._spans: list[tuple[int, int, int]] = []

    def add(self, start: int, end: int, function: int) -> None:
        self._spans.append((start, end, function))

    def freeze(self) -> None:
        self._spans.sort()
        self._starts = [span[0] for span in self._spans]

    def at(self, offset: int) -> int | None:
        index = bisect.bisect_right(self._starts, offset) - 1
        if index >= 0 and self._spans[index][0] <= offset < self._spans[index][1]:
            return self._spans[index][2]
        return None


def extract_file(path: str, source: bytes, dialect: Dialect) -> FileFacts:
    prepared = dialect.prepare(source)
    facts = FileFacts(path=path, rewrites=len(prepared.rewrites))
    facts.warnings += [{"path": path, "kind": "rewrite", "message": m} for m in prepared.failures]
    tree = parser.parse(prepared.text)
    facts.parse_errors = parser.count_errors(tree.root_node)
    _FileExtractor(facts, prepared, tree.root_node).run()
    return facts


class _FileExtractor:
    def __init__(self, facts: FileFacts, prepared: Prepared, root: Node) -> None:
        self.facts = facts
        self.prepared = prepared
        self.root = root
        self.found = parser.captures(_QUERIES, root)
        self.conditions = Conditions(self.found.get("branch", []), include_guard(root))
        self.scopes = _Scopes()
        self.symbols: dict[int | None, dict[str, Symbol]] = {None: {}}
        self.attribute_starts = [span[0] for span in prepared.attributes]

    def run(self) -> None:
        for node in self.found.get("function", []):
            self._function(node)
        self.scopes.freeze()
        for node in self.found.get("declaration", []):
            self._declaration(node, self.scopes.at(node.start_byte), self._condition(node))
        for node in self.found.get("struct", []):
            self._struct(node)
        for node in self.found.get("typedef", []):
            self._typedef(node)
        for node in self.found.get("define", []):
            self._define(node)
        _Expressions(self, self.scopes, lambda node, _f: self._condition(node)).run(self.found)
        self._macros(self.found.get("macro", []))

    def _condition(self, node: Node) -> str:
        return self.conditions.at(node.start_byte)

    # -- functions -----------------------------------------------------------------------------

    def _function(self, node: Node) -> None:
        declarator = function_declarator(node)
        if declarator is None:
            return
        name_node = declarator.child_by_field_name("declarator")
        name = text(name_node) if name_node is not None else ""
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            return
        index = len(self.facts.functions)
        line = name_node.start_point.row + 1
        inline, weak = self._head_attributes(node, declarator)
        rewrite = next((r for r in self.prepared.rewrites if r.line <= line <= node.end_point.row + 1
                        and r.name == name), None)
        self.facts.functions.append({
            "id": index, "name": name, "kind": rewrite.family if rewrite else "function",
            "file": self.facts.path, "line": line, "end_line": node.end_point.row + 1,
            "storage": "static" if _has_storage(node, "static") or (rewrite and rewrite.storage == "static")
            else "extern",
            "inline": int(inline or _has_child_text(node, "inline")), "weak": int(weak),
            "return_type": function_return_type(node) or None,
            "macro_body": None, "condition": self._condition(node),
        })
        self.scopes.add(node.start_byte, node.end_byte, index)
        table = self.symbols.setdefault(index, {})
        parameters = declarator.child_by_field_name("parameters")
        position = 0
        for param in parameters.named_children if parameters is not None else []:
            if param.type != "parameter_declaration":
                continue
            param_name, param_type = declarator_name_type(param.child_by_field_name("declarator"),
                                                          type_text(param))
            if param_name is None and param_type == "void":
                continue
            self.facts.params.append({"function_id": index, "position": position, "name": param_name,
                                      "type": param_type})
            if param_name:
                table[param_name] = Symbol("param", position, param_type)
            position += 1

    def _head_attributes(self, node: Node, declarator: Node) -> tuple[bool, bool]:
        """inline/weak from attribute macros blanked in the definition's head.

        The head starts after the previous sibling, not at the node: a blanked leading `__weak`
        is whitespace to the grammar, so the definition node begins after it."""
        inline = weak = False
        previous = node.prev_sibling
        first = bisect.bisect_left(self.attribute_starts, previous.end_byte if previous is not None else 0)
        for start, _end, name in self.prepared.attributes[first:]:
            if start >= declarator.start_byte:
                break
            macro = _ATTRIBUTE_FLAGS.get(name)
            if macro is not None:
                inline |= macro[0]
                weak |= macro[1]
        return inline, weak

    # -- declarations, structs, typedefs, defines -------------------------------------------------

    def _declaration(self, node: Node, function: int | None, condition: str) -> None:
        base = type_text(node)
        storage = "static" if _has_storage(node, "static") else "extern" if _has_storage(node, "extern") \
            else "auto" if function is not None else "extern"
        line = node.start_point.row + 1
        percpu = {r.name for r in self.prepared.rewrites if r.line == line and r.storage == "percpu"}
        for declarator in node.children_by_field_name("declarator"):
            if declarator.type == "function_declarator":
                continue  # a prototype, not a variable
            name, full_type = declarator_name_type(declarator, base)
            if name is None:
                continue
            kind = "percpu" if name in percpu else storage
            self.facts.variables.append({"function_id": function, "file": self.facts.path, "line": line,
                                         "name": name, "type": full_type, "storage": kind,
                                         "condition": condition})
            symbol_kind = "local" if function is not None else "global"
            self.symbols.setdefault(function, {})[name] = Symbol(symbol_kind, None, full_type)

    def _struct(self, node: Node) -> None:
        name_node = node.child_by_field_name("name")
        if name_node is None and node.parent is not None and node.parent.type == "field_declaration":
            return  # anonymous member struct/union: flattened into its container below
        index = len(self.facts.structs)
        self.facts.structs.append({
            "id": index, "name": text(name_node) if name_node is not None else None,
            "kind": "union" if node.type == "union_specifier" else "struct", "file": self.facts.path,
            "line": node.start_point.row + 1, "end_line": node.end_point.row + 1,
            "condition": self._condition(node)})
        self._members(node.child_by_field_name("body"), index, "", [0])

    def _members(self, body: Node, struct: int, anon_path: str, position: list[int]) -> None:
        for child in body.named_children:
            if child.type.startswith("preproc_"):
                self._members(child, struct, anon_path, position)  # #ifdef inside a struct body
                continue
            if child.type != "field_declaration":
                continue
            type_node = child.child_by_field_name("type")
            declarators = child.children_by_field_name("declarator")
            if not declarators and type_node is not None and type_node.child_by_field_name("body"):
                kind = "union" if type_node.type == "union_specifier" else "struct"
                inner = f"{anon_path}/{kind}" if anon_path else kind
                self._members(type_node.child_by_field_name("body"), struct, inner, position)
                continue
            base = _short_type(type_node)
            bits = next((text(c.named_children[0]) for c in child.named_children
                         if c.type == "bitfield_clause" and c.named_children), None)
            for declarator in declarators:
                name, full_type = declarator_name_type(declarator, base)
                array = re.search(r"\[([^\]]*)\]", full_type) if declarator.type == "array_declarator" else None
                self.facts.struct_members.append({
                    "struct_id": struct, "position": position[0], "name": name,
                    "type": re.sub(r"\s*\[[^\]]*\]", "", full_type) if array else full_type,
                    "array_len": array.group(1) if array else None, "bits": bits, "anon_path": anon_path,
                    "line": declarator.start_point.row + 1, "condition": self._condition(declarator)})
                position[0] += 1

    def _typedef(self, node: Node) -> None:
        base = _short_type(node.child_by_field_name("type"))
        for declarator in node.children_by_field_name("declarator"):
            name, full_type = declarator_name_type(declarator, base)
            if name:
                self.facts.typedefs.append({"name": name, "type": full_type, "file": self.facts.path,
                                            "line": node.start_point.row + 1,
                                            "condition": self._condition(node)})

    def _define(self, node: Node) -> None:
        name = node.child_by_field_name("name")
        value = node.child_by_field_name("value")
        self.facts.defines.append({"name": text(name), "file": self.facts.path,
                                   "line": node.start_point.row + 1,
                                   "value": text(value) if value is not None else "",
                                   "condition": self._condition(node)})

    # -- function-like macros --------------------------------------------------------------------

    def _macros(self, nodes: list[Node]) -> None:
        """Record each function-like macro, then parse all their bodies as one synthetic C file."""
        wrapped: dict[int, int] = {}  # line of the wrapper in the synthetic file -> function index
        conditions: dict[int, str] = {}
        for node in nodes:
            name = text(node.child_by_field_name("name"))
            value = node.child_by_field_name("value")
            index = len(self.facts.functions)
            condition = self._condition(node)
            self.facts.functions.append({
                "id": index, "name": name, "kind": "macro", "file": self.facts.path,
                "line": node.start_point.row + 1, "end_line": node.end_point.row,
                "storage": "macro", "inline": 0, "weak": 0, "return_type": None,
                "macro_body": text(value) if value is not None else "", "condition": condition})
            table = self.symbols.setdefault(index, {})
            parameters = node.child_by_field_name("parameters")
            names = [text(p) for p in parameters.named_children] if parameters is not None else []
            for position, param in enumerate(names):
                self.facts.params.append({"function_id": index, "position": position, "name": param,
                                          "type": None})
                table[param] = Symbol("param", position, None)
            if value is not None:
                wrapped[value.start_point.row] = index
                conditions[index] = condition
        if not wrapped:
            return
        tree = parser.parse(_macro_unit(self.prepared.text, nodes))
        found = parser.captures(_QUERIES, tree.root_node)
        scopes = _Scopes()
        for function in found.get("function", []):
            index = wrapped.get(function.start_point.row)
            if index is not None:
                scopes.add(function.start_byte, function.end_byte, index)
                for declaration in parser.captures("definitions", function).get("declaration", []):
                    self._declaration(declaration, index, conditions[index])
        scopes.freeze()
        _Expressions(self, scopes, lambda _n, f: conditions.get(f, "") if f is not None else "").run(found)


def _macro_unit(text_bytes: bytes, nodes: list[Node]) -> bytes:
    """A C file with each macro body wrapped as `void _(){ body ;}` starting on the body's line.

    Continuations become plain newlines, so every token keeps its line; everything between macro
    bodies is dropped except newlines.
    """
    pieces: list[bytes] = []
    line = 0
    for node in nodes:
        value = node.child_by_field_name("value")
        if value is None:
            continue
        body = text_bytes[value.start_byte:value.end_byte].replace(b"\\\n", b" \n").replace(b"\\\r\n", b" \n")
        pieces.append(b"\n" * (value.start_point.row - line))
        pieces.append(b"void " + _MACRO_WRAPPER.encode() + b"(){" + body + b"\n;}")
        line = value.start_point.row + body.count(b"\n") + 1
    return b"".join(pieces)


class _Expressions:
    """Calls, member accesses, assignments and bindings under one root, attributed to functions."""

    def __init__(self, owner: _FileExtractor, scopes: _Scopes, condition_for) -> None:
        self.owner = owner
        self.facts = owner.facts
        self.scopes = scopes
        self.condition_for = condition_for
        self._encoded: dict[tuple[Condition, ...], str] = {}

    def run(self, found: dict[str, list[Node]]) -> None:
        """`found`: both queries' captures under the root."""
        branching = [found.get(capture, []) for capture in ("call", "field", "assignment", "initializer")]
        self.conditions = Branches(found).of_all([node for nodes in branching for node in nodes])
        for node in found.get("call", []):
            self._call(node)
        for node in found.get("field", []):
            self._access(node)
        for node in found.get("assignment", []):
            self._assignment(node, node.child_by_field_name("left"), node.child_by_field_name("right"),
                             operator_of(node), False)
        for node in found.get("initializer", []):
            name_node = node.child_by_field_name("declarator")
            self._assignment(node, name_node, node.child_by_field_name("value"), "=", True)
        for node in found.get("designated", []):
            self._designated(node)

    # helpers
    def _where(self, node: Node) -> tuple[int | None, str]:
        function = self.scopes.at(node.start_byte)
        return function, self.condition_for(node, function)

    def _branches(self, node: Node) -> str:
        """The `branches` column: JSON `[[condition, holds], ...]`, innermost first."""
        conditions = self.conditions[node.id]
        encoded = self._encoded.get(conditions)
        if encoded is None:
            encoded = self._encoded[conditions] = json.dumps(conditions)
        return encoded

    def _symbol(self, function: int | None, name: str | None) -> Symbol | None:
        if name is None:
            return None
        table = self.owner.symbols.get(function, {})
        return table.get(name) or self.owner.symbols[None].get(name)

    # calls
    def _call(self, node: Node) -> None:
        function, condition = self._where(node)
        callee_node = _through_accessor(unwrap(node.child_by_field_name("function")))
        if callee_node is None:
            return
        callee_kind = callee_node.type
        callee_expr = text(callee_node)
        callee = callee_expr if callee_kind == "identifier" else None
        member = base_var = base_type = None
        if callee_kind == "field_expression":
            member = text(callee_node.child_by_field_name("field"))
            base_var = root_identifier(callee_node.child_by_field_name("argument"))
            symbol = self._symbol(function, base_var)
            base_type = symbol.type if symbol else None
        arguments = node.child_by_field_name("arguments")
        args = [a for a in arguments.named_children if a.type != "comment"] if arguments is not None else []
        index = len(self.facts.calls)
        row, column = callee_node.start_point
        self.facts.calls.append({
            "id": index, "function_id": function, "file": self.facts.path, "line": row + 1, "col": column + 1,
            "callee": callee, "callee_expr": callee_expr, "callee_member": member,
            "callee_base_var": base_var, "callee_base_type": base_type, "n_args": len(args),
            "result_use": _result_use(node), "condition": condition, "branches": self._branches(node)})
        for position, arg in enumerate(args):
            var, path = member_path_of(arg)
            symbol = self._symbol(function, var)
            inner = unwrap_casts(arg)
            inner_call = None
            if inner is not None and inner.type == "call_expression":
                callee_of_inner = unwrap(inner.child_by_field_name("function"))
                inner_call = text(callee_of_inner) if callee_of_inner is not None else None
            self.facts.call_args.append({
                "call_id": index, "position": position, "expr": text(arg), "var": var,
                "var_kind": symbol.kind if symbol else None,
                "param_index": symbol.param_index if symbol else None,
                "address_of": int(is_address_of(inner)), "member": path, "inner_call": inner_call})

    # member accesses
    def _access(self, node: Node) -> None:
        chain = member_chain(node)
        if chain is None:
            return
        function, condition = self._where(node)
        base = unwrap(chain.base)
        base_call = base_cast = None
        if base is not None and base.type == "call_expression":
            callee = unwrap(base.child_by_field_name("function"))
            base_call = text(callee) if callee is not None else None
            arguments = base.child_by_field_name("arguments")
            first = arguments.named_children[0] if arguments is not None and arguments.named_children else None
            base_var = root_identifier(first)
        else:
            if base is not None and base.type == "cast_expression":
                base_cast = text(base.child_by_field_name("type"))
            base_var = root_identifier(base)
        symbol = self._symbol(function, base_var)
        access, mask = _access_kind(chain.top)
        row, column = node.child_by_field_name("field").start_point
        self.facts.accesses.append({
            "function_id": function, "file": self.facts.path, "line": row + 1, "col": column + 1,
            "base_expr": text(base) if base is not None else "",
            "base_var": base_var, "base_var_kind": symbol.kind if symbol else None,
            "param_index": symbol.param_index if symbol else None,
            "base_type": symbol.type if symbol else None, "base_call": base_call, "base_cast": base_cast,
            "via": chain.via, "member": chain.path, "access": access, "mask": mask,
            "condition": condition, "branches": self._branches(node)})

    # assignments
    def _assignment(self, node: Node, lhs: Node | None, rhs: Node | None, operator: str,
                    declaration: bool) -> None:
        if lhs is None or rhs is None or rhs.type == "initializer_list":
            return
        function, condition = self._where(node)
        if declaration:
            lhs_var, _type = declarator_name_type(lhs, "")
            lhs_member = None
            deref = False
        else:
            lhs_var, lhs_member = member_path_of(lhs)
            target = unwrap_casts(lhs)
            deref = target is not None and target.type == "pointer_expression" and not is_address_of(target)
        symbol = self._symbol(function, lhs_var)
        row: Row = {
            "function_id": function, "file": self.facts.path, "line": node.start_point.row + 1,
            "is_declaration": int(declaration), "operator": operator, "lhs_expr": text(lhs),
            "lhs_var": lhs_var, "lhs_var_kind": symbol.kind if symbol else None, "lhs_member": lhs_member,
            "lhs_deref": int(deref), "lhs_type": symbol.type if symbol else None, "rhs_expr": text(rhs),
            "condition": condition, "branches": self._branches(node)}
        row.update(self._rhs(function, rhs))
        self.facts.assignments.append(row)
        if not declaration and lhs_member and row["rhs_kind"] in ("var", "address") and \
                row["rhs_var"] and row["rhs_var_kind"] not in ("param", "local") and not row["rhs_member"]:
            self.facts.bindings.append({
                "function_id": function, "file": self.facts.path, "line": node.start_point.row + 1,
                "kind": "assignment", "struct_type": row["lhs_type"], "field": lhs_member,
                "target": row["rhs_var"], "holder": lhs_var, "condition": condition})

    def _rhs(self, function: int | None, rhs: Node) -> Row:
        node = unwrap(rhs)
        cast_type = None
        if node is not None and node.type == "cast_expression":
            cast_type = text(node.child_by_field_name("type"))
            node = unwrap_casts(node)
        kind, callee, member = "other", None, None
        var: str | None = None
        if node is None:
            pass
        elif node.type == "call_expression":
            callee_node = unwrap(node.child_by_field_name("function"))
            callee = text(callee_node) if callee_node is not None else None
            kind = "call"
            arguments = node.child_by_field_name("arguments")
            args = arguments.named_children if arguments is not None else []
            if callee in _CONTAINER_OF and args:
                # The type argument (`struct outer`) is not an expression: the grammar may wrap it
                # in an ERROR node, so take the three arguments from the text.
                parts = _top_level_split(text(arguments)[1:-1])
                if len(parts) == 3:
                    kind, var = "container_of", root_identifier(args[0])
                    cast_type, member = parts[1], parts[2]
        elif node.type == "identifier":
            kind, var = "var", text(node)
        elif node.type in ("field_expression", "subscript_expression"):
            var, member = member_path_of(node)
            kind = "member"
        elif node.type == "pointer_expression" and is_address_of(node):
            var, member = member_path_of(node)
            kind = "address"
        elif node.type in LITERALS:
            kind = "constant"
        if cast_type is not None and kind in ("var", "member", "address", "other"):
            kind = "cast" if kind != "member" else kind
        symbol = self._symbol(function, var)
        return {"rhs_kind": kind, "rhs_callee": callee, "rhs_var": var,
                "rhs_var_kind": symbol.kind if symbol else None, "rhs_member": member,
                "cast_type": cast_type}

    # designated initializers
    def _designated(self, node: Node) -> None:
        value = unwrap(node.child_by_field_name("value"))
        if value is not None and value.type == "pointer_expression" and is_address_of(value):
            value = unwrap(value.child_by_field_name("argument"))
        if value is None or value.type != "identifier":
            return
        path, declaration = _designator_path(node)
        if declaration is None:
            return
        function, condition = self._where(node)
        holder = None
        for declarator in declaration.children_by_field_name("declarator"):
            if declarator.start_byte <= node.start_byte < declarator.end_byte:
                holder, _ = declarator_name_type(declarator, "")
        self.facts.bindings.append({
            "function_id": function, "file": self.facts.path, "line": node.start_point.row + 1,
            "kind": "initializer", "struct_type": type_text(declaration) or None, "field": path,
            "target": text(value), "holder": holder, "condition": condition})


_ATTRIBUTE_FLAGS: dict[str, tuple[bool, bool]] = {}


def register_attribute_flags(dialect: Dialect) -> None:
    """Make the dialect's inline/weak meaning of attribute macros known to this process."""
    _ATTRIBUTE_FLAGS.clear()
    _ATTRIBUTE_FLAGS.update({name: (m.inline, m.weak) for name, m in dialect.attributes.items()})


def _has_storage(node: Node, keyword: str) -> bool:
    return any(c.type == "storage_class_specifier" and c.text.decode() == keyword for c in node.children)


def _has_child_text(node: Node, keyword: str) -> bool:
    return any(c.type == "storage_class_specifier" and keyword in c.text.decode() for c in node.children)


def _short_type(type_node: Node | None) -> str:
    """Type text without an inline body: `struct { ... }` -> 'struct'; `struct foo {...}` -> 'struct foo'."""
    if type_node is None:
        return ""
    body = type_node.child_by_field_name("body")
    if body is None:
        return text(type_node)
    name = type_node.child_by_field_name("name")
    keyword = "union" if type_node.type == "union_specifier" else "struct" \
        if type_node.type == "struct_specifier" else "enum"
    return f"{keyword} {text(name)}" if name is not None else keyword


# `READ_ONCE(event->overflow_handler)(event, data, regs)` calls the pointer the field holds.
_POINTER_ACCESSORS = frozenset({"READ_ONCE", "rcu_dereference", "rcu_dereference_raw", "smp_load_acquire"})


def _through_accessor(callee: Node | None) -> Node | None:
    """The field a called pointer is loaded from through a one-argument accessor, else `callee` itself."""
    if callee is None or callee.type != "call_expression":
        return callee
    accessor = callee.child_by_field_name("function")
    arguments = callee.child_by_field_name("arguments")
    if accessor is None or text(accessor) not in _POINTER_ACCESSORS or arguments is None:
        return callee
    loaded = [unwrap(a) for a in arguments.named_children if a.type != "comment"]
    return loaded[0] if len(loaded) == 1 and loaded[0] is not None and loaded[0].type == "field_expression" \
        else callee


_RESULT_USES = {"expression_statement": "discarded", "init_declarator": "assigned",
                "assignment_expression": "assigned", "argument_list": "argument", "return_statement": "returned",
                "if_statement": "condition", "while_statement": "condition", "unary_expression": "condition",
                "binary_expression": "other"}


def _result_use(call: Node) -> str:
    parent = call.parent
    kind = parent.type if parent is not None else None
    while kind in ("parenthesized_expression", "cast_expression"):
        parent = parent.parent
        kind = parent.type if parent is not None else None
    return _RESULT_USES.get(kind, "other")


def _access_kind(top: Node) -> tuple[str, str | None]:
    """('read'|'write'|'readwrite'|'address', mask) for the member chain ending at `top`."""
    node = top
    parent = node.parent
    kind = parent.type if parent is not None else None
    while kind == "parenthesized_expression":
        node, parent = parent, parent.parent
        kind = parent.type if parent is not None else None
    if parent is None:
        return "read", None
    if kind == "assignment_expression" and parent.child_by_field_name("left") == node:
        operator = operator_of(parent)
        right = parent.child_by_field_name("right")
        mask = text(right) if operator in _ASSIGN_MASK_OPERATORS and right is not None else None
        return ("write", None) if operator == "=" else ("readwrite", mask)
    if kind == "update_expression":
        return "readwrite", None
    if kind == "pointer_expression" and operator_of(parent) == "&":
        return "address", None
    if kind == "binary_expression" and operator_of(parent) == "&":
        left, right = parent.child_by_field_name("left"), parent.child_by_field_name("right")
        other = right if left == node else left
        return "read", text(other) if other is not None else None
    return "read", None


def _top_level_split(inner: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in inner:
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += (char in "([{") - (char in ")]}")
        current += char
    return [*parts, current.strip()]


def _designator_path(pair: Node) -> tuple[str, Node | None]:
    """Field path of a designated initializer ('session_ctx.is_return') and its declaration."""
    parts: list[str] = []
    node: Node | None = pair
    while node is not None and node.type != "declaration":
        if node.type == "initializer_pair":
            designators = [text(d).lstrip(".") for d in node.children_by_field_name("designator")
                           if d.type == "field_designator"]
            parts[:0] = designators
        node = node.parent
    return ".".join(parts), node
