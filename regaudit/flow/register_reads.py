"""What perf's register tables and the offset/index readers of pt_regs can read, derived from the C
(rules/bridges.toml `reads_by_table` and `dynamic_read`).

Owns `table_reads`: the pt_regs members a perf register index maps to, from the `table` initializer
(`PT_REGS_OFFSET(id, member)`, the macro expanded from its definition) or, with no table, from the member
accesses of `table_function` on its pt_regs parameter, an array indexed by the register number
(`regs->regs[idx]`) bounded by the smallest enumerator the index is tested `>=` against. And
`dynamic_reads`: reads by offset or index, per `bound`: MAX_REG_OFFSET (every member up to the one its
`offsetof` names), NR_REG_ARGUMENTS (the first N entries of the function's `offsetof` table, or the first
N elements of the array its callee indexes) and kernel_stack_pointer (the members that function reads).

Sources: the fact database (member accesses, #defines, the arch's pt_regs layout) and the tree's text
(`regaudit.flow.c_text`). `#if` guards are evaluated with the arch's modelled build
(`regaudit.arch.config`, rules/producers.toml: x86 is x86_64 with X86_64=y, X86_32=n, __i386__
undefined); an arm the build leaves open is kept. Reads come once per member, in pt_regs layout order;
a member the layout does not know is kept as the C writes it, last.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from regaudit.arch.catalogue import load_catalogue
from regaudit.arch.config import BuildConfig, ConfigRules
from regaudit.arch.layout import Layout, struct_layout
from regaudit.errors import BadInput
from regaudit.facts.arch_facts import ArchFacts, Definition
from regaudit.flow.c_text import CFile, descendants, parse_file
from regaudit.parse.c_syntax import Node, text
from regaudit.ruleset.flow_rules import Bridge
from regaudit.ruleset.load import kernel_series
from regaudit.tree import files_below, open_tree

_OFFSETOF = re.compile(r"offsetof\s*\(\s*struct\s+pt_regs\s*,\s*([^()]+?)\s*\)")
_COMMENT = re.compile(r"/\*.*?\*/|//.*$")


@dataclass(frozen=True)
class DerivedRead:
    member: str  # as the arch's C names it: 'ax', 'regs[3]', 'pstate'
    file: str
    line: int  # the table entry, the access, or the bound's definition
    how: str  # 'perf-register-table' or 'dynamic'



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

    def body_node(self, definition: Definition) -> tuple[CFile, Node]:
        source = parse_file(self.tree, definition.file)
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


def _offsetof_entries(view: _ArchView, source: CFile, table: Node) -> list[tuple[str, str, int]]:
    """The pt_regs members an initializer's entries take the offset of, with file and line, guards honoured.

    An entry is `offsetof(struct pt_regs, m)` or a function-like macro whose body is one
    (`PT_REGS_OFFSET(id, r)`), expanded from the macro's definition in the database."""
    entries = []
    for entry in descendants(table, ("call_expression", "offsetof_expression")):
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
    name = bridge.expect("reads_by_table", bridge.table_function)
    with _arch_view(db_path, tree, arch) as view:
        definition = view.definition(bridge, name)
        if bridge.table:
            return _table(view, definition, bridge.table)
        return _indexed_array(view, bridge, definition)


def _table(view: _ArchView, definition: Definition, table: str) -> list[DerivedRead]:
    source = parse_file(view.tree, definition.file)
    value = source.initialized.get(table)
    if value is not None:
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
    return _enumerator(view.tree, view.config.arch, name)


@cache
def _enumerator(tree: Path, arch: str, name: str) -> int | None:
    """The value of enumerator `name` in arch/<arch>/include (the perf uapi enums live there), the last header
    defining it winning; only the headers naming it are parsed."""
    word = re.compile(rb"\b" + re.escape(name.encode()) + rb"\b")
    values: dict[str, int] = {}
    for header in files_below(tree / "arch" / arch / "include", "*.h"):
        text = header.read_bytes()
        if b"enum" not in text or not word.search(text):
            continue
        source = parse_file(tree, str(header.relative_to(tree)))
        for enum in descendants(source.root, ("enumerator_list",)):
            values.update(_enum_values(enum))
    return values.get(name)


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
    bound = bridge.expect("dynamic_read", bridge.bound)
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
    source = parse_file(view.tree, near)
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
    for table in descendants(node, ("initializer_list",)):
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
