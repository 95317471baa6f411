"""What a bridge of rules/bridges.toml reads, derived from the kernel's C rather than listed.

Owns three derivations, one per bridge kind that names C to read:

* `bpf_helpers` (calls_helpers): the helpers a program type may call with its ctx. It reads the
  `proto_function`'s body (every `return &X;`, both arms of `c ? &A : &B`), recurses into every function
  returning a `struct bpf_func_proto *` the body calls (`default: return bpf_tracing_func_proto(...)`,
  `func_proto = bpf_base_func_proto(...)`), and keeps the protos whose `argN_type` is ARG_PTR_TO_CTX
  (or ARG_PTR_TO_CTX_OR_NULL). A `case` an outer function already answered is not taken again from an
  inner one (kprobe's BPF_FUNC_get_func_ip never reaches bpf_tracing_func_proto's).
* `table_reads` (reads_by_table): the pt_regs members a perf register index maps to, from the
  `table` initializer (`PT_REGS_OFFSET(id, member)`, the macro expanded from its definition) or, with
  no table, from the member accesses of `table_function` on its pt_regs parameter, an array indexed by
  the register number (`regs->regs[idx]`) bounded by the smallest enumerator the index is tested
  `>=` against.
* `dynamic_reads` (dynamic_read): reads by offset or index, per `bound`: MAX_REG_OFFSET (every
  member up to the one its `offsetof` names), NR_REG_ARGUMENTS (the first N entries of the function's
  `offsetof` table, or the first N elements of the array its callee indexes) and
  kernel_stack_pointer (the members that function reads).

Sources, in this order: the fact database (function locations, `.func`/`.argN_type` bindings, member
accesses, #defines, the arch's pt_regs layout) and, where the index has nothing (a file its prefilter
skipped, statements it does not record: `return`, `case`, initializer entries, enumerators), the tree's
source text parsed with tree-sitter. `#if` guards come from the directive lines themselves (tree-sitter
loses `#ifdef` inside an initializer list) and are evaluated with the arch's modelled build
(`regaudit.arch.config`, rules/producers.toml: x86 is x86_64 with X86_64=y, X86_32=n, __i386__
undefined); an arm the build leaves open is kept. The source text is parsed after the index's own
rewriting (rules/c_dialect.toml). Reads come once per member, in pt_regs layout order; a member the
layout does not know is kept as the C writes it, last.

Limits: a proto whose initializer is found in no `*.c` file is left out; a proto field written as an
expression is read only when the database has no fields for that proto (text fallback); a func_proto
walk does not evaluate `if (...)` tests or Kconfig (every return is an entry, its guard in `condition`);
a function already walked is not walked again from another path.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from regaudit.arch.catalogue import load_catalogue
from regaudit.arch.config import BuildConfig, ConfigRules
from regaudit.arch.layout import Layout, struct_layout
from regaudit.errors import BadInput
from regaudit.facts.arch_facts import ArchFacts, Definition
from regaudit.facts.bridge_facts import PROTO_TAG, BridgeFacts, ProtoField
from regaudit.parse import parser
from regaudit.parse.c_syntax import Node, function_declarator, text
from regaudit.parse.prepare import Dialect, load_dialect
from regaudit.ruleset.flow_rules import Bridge
from regaudit.ruleset.load import kernel_series
from regaudit.tree import open_tree

_CTX_ARG = re.compile(r"^ARG_PTR_TO_CTX(?:_OR_NULL)?$")
_ARG_FIELD = re.compile(r"^arg(\d+)_type$")
_OFFSETOF = re.compile(r"offsetof\s*\(\s*struct\s+pt_regs\s*,\s*([^()]+?)\s*\)")
_DIRECTIVE = re.compile(r"^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b(.*)$")
_COMMENT = re.compile(r"/\*.*?\*/|//.*$")
_PROTO_VARIABLE = re.compile(rb"struct\s+" + PROTO_TAG.encode() + rb"\s+(\w+)\s*=\s*\{")
_PROTO_FUNCTION = re.compile(rb"struct\s+" + PROTO_TAG.encode() + rb"\s*\*\s*(\w+)\s*\(")


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


@dataclass(frozen=True)
class DerivedRead:
    member: str  # as the arch's C names it: 'ax', 'regs[3]', 'pstate'
    file: str
    line: int  # the table entry, the access, or the bound's definition
    how: str  # 'perf-register-table' or 'dynamic'


# --- C source text ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CFile:
    """One parsed file of the tree, with the `#if` guard of each of its lines."""

    path: str
    source: bytes
    root: Node
    guards: tuple[str, ...]  # guard of line i+1

    def guard(self, node: Node) -> str:
        return self.guards[node.start_point[0]]

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
def _parse(tree: Path, relative: str) -> _CFile:
    path = tree / relative
    if not path.is_file():
        raise BadInput(f"{relative}: not in the kernel tree {tree}")
    source = path.read_bytes()
    lines = source.decode("utf-8", errors="replace").splitlines()
    # The index's rewriting (attribute macros blanked, BPF_CALL_n & co. made plain C) keeps lines in place.
    prepared = _dialect(tree).prepare(source).text
    return _CFile(relative, source, parser.parse(prepared).root_node, _line_guards(lines))


@cache
def _dialect(tree: Path) -> Dialect:
    return load_dialect(tree)


def _line_guards(lines: list[str]) -> tuple[str, ...]:
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


def _descendants(node: Node, types: tuple[str, ...]) -> Iterator[Node]:
    """Outermost descendants of `node` of one of `types`, in source order."""
    for child in node.children:
        if child.type in types:
            yield child
        else:
            yield from _descendants(child, types)


def _enclosing(node: Node, kind: str, stop: Node) -> Node | None:
    """The nearest ancestor of `node` of type `kind` below `stop`."""
    current = node.parent
    while current is not None and current != stop:
        if current.type == kind:
            return current
        current = current.parent
    return None


# --- BPF helpers -------------------------------------------------------------------------------------


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
    tree: Path
    entries: list[HelperEntry] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def function(self, name: str) -> tuple[_CFile, Node] | None:
        """The definition of func_proto function `name`: the database's, else a `*.c` file's text."""
        files = [loc.file for loc in self.facts.proto_function_definitions(name)]
        files += _text_index(self.tree).functions.get(name, [])
        for relative in dict.fromkeys(files):
            source = _parse(self.tree, relative)
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
            elif _is_address_of(item) and (statement := _enclosing(item, "return_statement", body)):
                self._add(text(item.child_by_field_name("argument")), via, source, statement)

    def _add(self, proto_name: str, via: tuple[str, ...], source: _CFile, at: Node) -> None:
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
        for relative in _text_index(self.tree).protos.get(name, []):
            found = _proto_from_text(_parse(self.tree, relative), name)
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


def _proto_from_text(source: _CFile, name: str) -> _Proto | None:
    for declarator in _descendants(source.root, ("init_declarator",)):
        target = declarator.child_by_field_name("declarator")
        value = declarator.child_by_field_name("value")
        if target is None or text(target) != name or value is None or value.type != "initializer_list":
            continue
        fields = []
        for pair in _descendants(value, ("initializer_pair",)):
            designator = pair.child_by_field_name("designator")
            element = pair.child_by_field_name("value")
            if designator is not None and element is not None and designator.type == "field_designator":
                fields.append(ProtoField(text(designator).lstrip("."), text(element), source.path,
                                         pair.start_point[0] + 1, source.guard(pair)))
        return _Proto(name, tuple(fields))
    return None


@dataclass(frozen=True)
class _TextIndex:
    """Which `*.c` files of the tree define a bpf_func_proto variable or a function returning one."""

    protos: dict[str, list[str]]
    functions: dict[str, list[str]]


@cache
def _text_index(tree: Path) -> _TextIndex:
    protos: dict[str, list[str]] = {}
    functions: dict[str, list[str]] = {}
    # GNU grep finds the few files that name the struct at all; only those are read here.
    listed = subprocess.run(["grep", "-rlF", "--include=*.c", "--exclude-dir=.git", PROTO_TAG, "."], cwd=tree,
                            capture_output=True, check=False).stdout.decode(errors="replace")
    for relative in sorted(line.removeprefix("./") for line in listed.splitlines() if line):
        data = (tree / relative).read_bytes()
        for pattern, found in ((_PROTO_VARIABLE, protos), (_PROTO_FUNCTION, functions)):
            for match in pattern.finditer(data):
                found.setdefault(match[1].decode(), []).append(relative)
    return _TextIndex(protos, functions)


def bpf_helpers(db_path: Path, tree: Path, bridge: Bridge) -> list[HelperEntry]:
    """Helpers `bridge.proto_function` makes available whose proto takes the ctx, in walk order."""
    start = _required(bridge, "calls_helpers", bridge.proto_function)
    with BridgeFacts(db_path) as facts:
        walker = _ProtoWalker(facts, tree)
        if walker.function(start) is None:
            raise BadInput(f"bridge {bridge.name}: no function {start} returning a bpf_func_proto in {tree}")
        walker.walk(start, (), frozenset())
    return walker.entries


def _required(bridge: Bridge, kind: str, value: str | None) -> str:
    if bridge.kind != kind or value is None:
        raise BadInput(f"bridge {bridge.name}: kind {bridge.kind}, expected a {kind} entry")
    return value


# --- the arch's build and pt_regs ----------------------------------------------------------------------


@dataclass(frozen=True)
class _ArchView:
    """One architecture's modelled build, its pt_regs layout and the facts, for the register bridges."""

    tree: Path
    facts: ArchFacts
    config: BuildConfig
    layout: Layout

    def definition(self, bridge: Bridge, name: str) -> Definition:
        """The definition of `name` the arch's build uses; BadInput when the tree has none."""
        chosen = self.config.choose(name)
        if chosen is None:
            raise BadInput(f"bridge {bridge.name}: no definition of {name} for {self.config.arch}")
        return chosen

    def body_node(self, definition: Definition) -> tuple[_CFile, Node]:
        source = _parse(self.tree, definition.file)
        node = source.function(definition.name, definition.line)
        if node is not None:
            return source, node
        raise BadInput(f"{definition.at}: the definition of {definition.name} could not be read")

    def kept(self, guard: str) -> bool:
        """A guard the build does not rule out (open guards are kept)."""
        return self.config.holds(guard) is not False

    def members(self, path: str) -> tuple[str, ...]:
        """The pt_regs leaves C path `path` names, through an object-like #define (arm64 `compat_sp`)."""
        leaves = self.layout.resolve(path)
        if leaves:
            return leaves
        for define in self.facts.defines_named(path):
            if self.config.in_scope(define.file) and self.kept(define.condition):
                return self.layout.resolve(define.value.strip())
        return ()


@contextmanager
def _arch_view(db_path: Path, tree: Path, arch: str) -> Iterator[_ArchView]:
    catalogue = load_catalogue(kernel_series(open_tree(tree).version))
    with ArchFacts(db_path) as facts:
        config = BuildConfig.load(tree, arch, facts, ConfigRules.for_arch(catalogue.config, arch))
        layout = struct_layout("pt_regs", config, _line_reader(tree), catalogue.struct_groups.get(arch, ()))
        if layout is None:
            raise BadInput(f"no struct pt_regs for {arch} in {db_path}")
        yield _ArchView(tree, facts, config, layout)


def _line_reader(tree: Path) -> Callable[[str], list[str] | None]:
    def read(relative: str) -> list[str] | None:
        path = tree / relative
        return path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else None

    return cache(read)


def _reads(view: _ArchView, paths: list[tuple[str, str, int]], how: str) -> list[DerivedRead]:
    """(C path, file, line) triples as reads of pt_regs leaves, each leaf once (its first triple), in
    layout order. A path naming no member of the layout is kept as written, last: the C says it is read."""
    first: dict[str, DerivedRead] = {}
    for path, file, line in paths:
        for leaf in view.members(path) or (path,):
            first.setdefault(leaf, DerivedRead(leaf, file, line, how))
    order = {leaf: index for index, leaf in enumerate(view.layout.members)}
    return sorted(first.values(), key=lambda read: order.get(read.member, len(order)))


def _offsetof_entries(view: _ArchView, source: _CFile, table: Node) -> list[tuple[str, str, int]]:
    """The pt_regs members an initializer's entries take the offset of, with file and line, guards honoured.

    An entry is `offsetof(struct pt_regs, m)` or a function-like macro whose body is one
    (`PT_REGS_OFFSET(id, r)`), expanded from the macro's definition in the database."""
    entries = []
    for entry in _descendants(table, ("call_expression", "offsetof_expression")):
        if not view.kept(source.guard(entry)):
            continue
        match = _OFFSETOF.search(_expand(view, text(entry)))
        if match:
            entries.append((match[1], source.path, entry.start_point[0] + 1))
    return entries


def _expand(view: _ArchView, entry: str) -> str:
    """`NAME(args)` with NAME's macro body substituted, once; anything else as it is."""
    match = re.fullmatch(r"(\w+)\s*\((.*)\)", entry, re.S)
    if match is None:
        return entry
    for macro in view.facts.definitions_named(match[1]):
        if macro.kind == "macro" and macro.macro_body and view.config.in_scope(macro.file):
            params = [p.name or "" for p in view.facts.body(macro).params]
            args = [arg.strip() for arg in match[2].split(",")]
            return _substitute(macro.macro_body, dict(zip(params, args, strict=False)))
    return entry


def _substitute(body: str, values: dict[str, str]) -> str:
    return re.sub(r"\b\w+\b", lambda word: values.get(word[0], word[0]), body)


# --- perf register tables --------------------------------------------------------------------------------


def table_reads(db_path: Path, tree: Path, arch: str, bridge: Bridge) -> list[DerivedRead]:
    """The pt_regs members `bridge.table_function` maps a perf register index to on `arch`."""
    name = _required(bridge, "reads_by_table", bridge.table_function)
    with _arch_view(db_path, tree, arch) as view:
        definition = view.definition(bridge, name)
        if bridge.table:
            return _table(view, definition, bridge.table)
        return _indexed_array(view, bridge, definition)


def _table(view: _ArchView, definition: Definition, table: str) -> list[DerivedRead]:
    source = _parse(view.tree, definition.file)
    for declarator in _descendants(source.root, ("init_declarator",)):
        target = declarator.child_by_field_name("declarator")
        value = declarator.child_by_field_name("value")
        while target is not None and target.type == "array_declarator":
            target = target.child_by_field_name("declarator")
        if target is not None and text(target) == table and value is not None and value.type == "initializer_list":
            return _reads(view, _offsetof_entries(view, source, value), "perf-register-table")
    raise BadInput(f"{definition.file}: no initialized table {table}[] beside {definition.name}")


def _indexed_array(view: _ArchView, bridge: Bridge, definition: Definition) -> list[DerivedRead]:
    """No table: the function's reads of its pt_regs parameter, `regs->array[idx]` bounded by the index tests."""
    body = view.facts.body(definition)
    regs = next((p.name for p in body.params if p.position == bridge.position), None)
    index = next((p.name for p in body.params if p.position != bridge.position and p.name), None)
    if regs is None or index is None:
        raise BadInput(f"{definition.at}: {definition.name} has no pt_regs parameter {bridge.position} and index")
    _, node = view.body_node(definition)
    bound = _index_bound(view, text(node), index)
    reads = [access for access in body.accesses if access.base_var == regs and access.access != "write"]
    # The indexed array first: its line is where an index becomes a member (arm64 `return regs->regs[idx];`).
    paths = [
        (leaf, definition.file, access.line)
        for access in reads
        if access.member.endswith("[*]")
        for leaf in view.layout.resolve(access.member.removesuffix("[*]"))[:bound]
    ]
    paths += [(access.member, definition.file, access.line) for access in reads if not access.member.endswith("[*]")]
    return _reads(view, paths, "perf-register-table")


def _index_bound(view: _ArchView, body: str, index: str) -> int | None:
    """The smallest constant `index` is tested `>=` against in `body` (an enumerator or a number)."""
    names = re.findall(rf"(?:\(\s*\w+\s*\)\s*)?\b{re.escape(index)}\s*>=\s*(\w+)", body)
    values = [value for name in names if (value := _constant(view, name)) is not None]
    return min(values, default=None)


def _constant(view: _ArchView, name: str) -> int | None:
    if name.isdigit():
        return int(name)
    return _enumerators(view.tree, view.config.arch).get(name)


@cache
def _enumerators(tree: Path, arch: str) -> dict[str, int]:
    """Enumerator values of every enum in arch/<arch>/include (the perf uapi enums live there)."""
    values: dict[str, int] = {}
    for header in sorted((tree / "arch" / arch / "include").rglob("*.h")):
        if b"enum" not in header.read_bytes():
            continue
        source = _parse(tree, str(header.relative_to(tree)))
        for enum in _descendants(source.root, ("enumerator_list",)):
            values.update(_enum_values(enum))
    return values


def _enum_values(enum: Node) -> dict[str, int]:
    values: dict[str, int] = {}
    following = 0
    for enumerator in enum.named_children:
        if enumerator.type != "enumerator":
            continue
        name = enumerator.child_by_field_name("name")
        value = enumerator.child_by_field_name("value")
        if value is not None:
            literal = text(value).rstrip("uUlL")
            if not re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", literal):
                return values  # a computed value: the rest of this enum is not needed here
            following = int(literal, 0)
        if name is not None:
            values[text(name)] = following
        following += 1
    return values


# --- reads by offset or index ----------------------------------------------------------------------------


def dynamic_reads(db_path: Path, tree: Path, arch: str, bridge: Bridge) -> list[DerivedRead]:
    """The pt_regs members `bridge.function` can read on `arch` through an offset or index bounded by `bridge.bound`.

    What the bound is decides: a #define of `offsetof(struct pt_regs, m)` (every member up to m), a #define
    of a number N (the first N entries of the function's offset table, or elements of the array its
    callee indexes), a function (the members it reads)."""
    bound = _required(bridge, "dynamic_read", bridge.bound)
    with _arch_view(db_path, tree, arch) as view:
        definition = view.definition(bridge, bridge.function)
        define = _define(view, bound, definition.file)
        if define is None:
            return _reader(view, view.definition(bridge, bound))
        value, file, line = define
        offset = _OFFSETOF.search(value)
        if offset is not None:
            return _up_to(view, offset[1], file, line)
        if value.isdigit():
            return _first_arguments(view, bridge, definition, int(value))
        raise BadInput(f"{file}:{line}: {bound} is `{value}`, neither an offsetof(struct pt_regs, ...) nor a count")


def _define(view: _ArchView, name: str, near: str) -> tuple[str, str, int] | None:
    """(value, file, line) of the #define `name` the build keeps, the one in file `near` first.

    The database's defines, else the text of `near` (it misses a #define inside an initializer list,
    x86's NR_REG_ARGUMENTS)."""
    defines = [d for d in view.facts.defines_named(name) if view.config.in_scope(d.file) and view.kept(d.condition)]
    defines.sort(key=lambda d: d.file != near)
    if defines:
        return defines[0].value.strip(), defines[0].file, defines[0].line
    source = _parse(view.tree, near)
    pattern = re.compile(rf"^\s*#\s*define\s+{re.escape(name)}\s+(.+?)\s*$")
    for number, line in enumerate(source.source.decode("utf-8", errors="replace").splitlines()):
        match = pattern.match(_COMMENT.sub("", line))
        if match and view.kept(source.guards[number]):
            return match[1], near, number + 1
    return None


def _up_to(view: _ArchView, member: str, file: str, line: int) -> list[DerivedRead]:
    leaves = view.layout.resolve(member)
    if not leaves:
        raise BadInput(f"{file}:{line}: {member} is not a member of {view.config.arch}'s struct pt_regs")
    last = max(view.layout.members.index(leaf) for leaf in leaves)
    return [DerivedRead(leaf, file, line, "dynamic") for leaf in view.layout.members[: last + 1]]


def _first_arguments(view: _ArchView, bridge: Bridge, definition: Definition, count: int) -> list[DerivedRead]:
    source, node = view.body_node(definition)
    for table in _descendants(node, ("initializer_list",)):
        entries = _offsetof_entries(view, source, table)
        if entries:
            return _reads(view, entries[:count], "dynamic")
    elements = _indexed_elements(view, definition, bridge.position, count)
    if not elements:
        raise BadInput(f"{definition.at}: {definition.name} reads no offset table or indexed array of its pt_regs")
    return _reads(view, elements, "dynamic")


def _indexed_elements(view: _ArchView, definition: Definition, position: int, count: int) -> list[tuple[str, str, int]]:
    """The first `count` elements of arrays indexed on the pt_regs parameter, here or in a callee given it."""
    body = view.facts.body(definition)
    regs = next((p.name for p in body.params if p.position == position), None)
    found = [
        (leaf, definition.file, access.line)
        for access in body.accesses
        if access.base_var == regs and access.member.endswith("[*]")
        for leaf in view.layout.resolve(access.member.removesuffix("[*]"))[:count]
    ]
    for call in body.calls:
        callee = view.config.choose(call.callee) if call.callee else None
        for arg in call.args:
            if callee is not None and arg.var == regs and arg.member is None and callee != definition:
                found += _indexed_elements(view, callee, arg.position, count)
    return found


def _reader(view: _ArchView, reader: Definition) -> list[DerivedRead]:
    """The pt_regs members function `reader` reads through its pt_regs parameter."""
    body = view.facts.body(reader)
    regs = {p.name for p in body.params if p.type and "pt_regs" in p.type}
    paths = [(a.member, reader.file, a.line) for a in body.accesses if a.base_var in regs and a.access != "write"]
    return _reads(view, paths, "dynamic")
