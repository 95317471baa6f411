"""Interprocedural propagation of "this pointer points to frame F" over one architecture's call edges.

Owns the points-to walk from a `Seed` to every member access (`Reach`) and every unresolved call
(`Escape`) a frame pointer gets to, with one shortest call path per access. It does not know which
calls produce frames (the sources rules) nor what a frame left unwritten (the frame models): a frame is
an opaque label. All SQL is in `regaudit.facts.flow_facts`.

Model, and where it is approximate:
- Within a function the analysis is flow-insensitive: every assignment, argument and return of the
  body is one equation, solved to a fixpoint, so a seed "after line L" holds wherever its variable is
  used. Two exceptions: a local replaced on every way to a use (both arms of an if/else, past a guard
  clause that returns; loops are not seen) no longer holds the frame there, and with a `BranchOracle`
  (a frame model) calls, accesses and stores under a C branch condition it decides against are not
  followed. `#if` guards are evaluated for the arch as the link stage does (`BuildConfig`): facts
  compiled out are dropped, and a guard the build leaves open stays on the Reach / Escape as its condition.
- A value is a set of offsets into the frame: '' for the frame itself, 'x' for `&regs->x`, '^m' for the
  container `container_of(regs, T, m)` returns. Accesses through a container outside member `m` are
  not frame accesses and are not reported.
- Memory is field-sensitive by type, and by object inside an object: a store `p->a.b = regs` goes to
  the cell (innermost struct tag, last field), found by walking member types from p's declared struct,
  except that a field reached through an embedded struct has its object's cell: `data->regs_intr.regs`
  is ('perf_sample_data', 'regs_intr.regs'), distinct from `data->regs_user.regs`, and so is
  `regs_intr->regs` in a function every caller hands `&data->regs_intr`. A load reads its object's
  cell and the type's (stores through plain pointers); a load through a plain pointer reads every
  object cell embedding the type too. Globals and per-CPU variables are cells keyed by name: the
  pointer they hold ('global') or, for `&buf` / `this_cpu_ptr(&buf)`, the object itself ('object').
  Stores through `*p = regs` are not followed.
- Summaries: a function is analysed once per entry state (which parameters carry which offsets);
  callers re-read a callee's return summary when it grows; the worklist stops at the fixpoint, so
  recursion terminates. A function of the arch's program that reads a frame-carrying heap cell is
  analysed with the empty entry state too, and its path continues from the store that filled the cell.
- Return values come from `return NAME;` lines of the function's source (the facts have no return
  statements), `return call(...)` calls, and macros whose whole body is one parameter.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from regaudit.arch.catalogue import load_catalogue
from regaudit.arch.config import BuildConfig, ConfigRules
from regaudit.errors import BadInput
from regaudit.facts.arch_facts import ArchFacts
from regaudit.facts.cell_names import STRUCT_TAG, field_word
from regaudit.facts.flow_facts import (
    Access,
    Argument,
    Assignment,
    Branches,
    CallSite,
    FlowFacts,
)
from regaudit.facts.store import open_existing
from regaudit.facts.text_facts import TextFacts
from regaudit.flow.link import program_for
from regaudit.ruleset.load import kernel_series
from regaudit.tree import open_tree

# Accessors whose value is what their first argument names (per-CPU reads, READ_ONCE): not descended
# into, their bodies are arch asm or compiler builtins. `this_cpu_write(p, v)` stores v into p.
_READS_FIRST_ARGUMENT = frozenset({"this_cpu_ptr", "raw_cpu_ptr", "per_cpu_ptr", "this_cpu_read", "__this_cpu_read",
                                   "raw_cpu_read", "per_cpu", "READ_ONCE", "rcu_dereference"})
_WRITES_FIRST_ARGUMENT = frozenset({"this_cpu_write", "__this_cpu_write", "raw_cpu_write", "WRITE_ONCE"})
# Calls the walk models itself instead of following an edge, so they are never escapes.
_MODELLED = _READS_FIRST_ARGUMENT | _WRITES_FIRST_ARGUMENT | {"container_of"}
_RETURN = re.compile(r"\breturn\s+(?:\(\s*[\w\s*]+\)\s*)?\(?\s*(\w+)\s*\)?\s*;")
_INDEX = re.compile(r"\[.*?\]")  # an array index in a member path: cells are per field, not per element
_TYPEDEF_HOPS = 4

class BranchOracle(Protocol):
    """Decides a C branch condition given the variables that point to the frame (None: cannot tell)."""

    def decide(self, condition: str, frame_vars: frozenset[str]) -> bool | None: ...


HeapKey = tuple[str, str, str]  # ('field', struct tag, field) | ('global', name, '') | ('object', name, '')
Entry = frozenset[tuple[int, str]]  # (parameter position, offset) pairs a call passes
Context = tuple[int, Entry]  # a function analysed under one entry state


@dataclass(frozen=True)
class Local:
    name: str


@dataclass(frozen=True)
class Heap:
    """Memory: the cells a store writes, or a load reads (a load also reads every cell embedding `any_of`)."""

    keys: tuple[HeapKey, ...]
    any_of: tuple[str, str] | None = None  # (struct tag, field): a load through a plain pointer to that struct


def cell(key: HeapKey) -> Heap:
    return Heap((key,))


@dataclass(frozen=True)
class CallResult:
    call_id: int


@dataclass(frozen=True)
class Returned:
    """The function's return value (a destination only)."""


Source = Local | Heap | CallResult
NOTHING = Local("\0nothing")  # the value of a constant or an expression the walk does not follow
Destination = Local | Heap | Returned


@dataclass(frozen=True)
class Transform:
    """How an expression moves an offset: 'copy', 'member' (`&p->path`), 'container' (container_of(p, T, m))."""

    kind: str = "copy"
    member: str = ""

    def apply(self, offset: str) -> str | None:
        """The offset the expression yields, None when it no longer points into the frame."""
        if self.kind == "copy":
            return offset
        if self.kind == "member":
            if not offset.startswith("^"):
                return f"{offset}.{self.member}" if offset else self.member
            inside = offset[1:]
            if self.member == inside:
                return ""
            return self.member[len(inside) + 1:] if self.member.startswith(inside + ".") else None
        if offset == "":
            return f"^{self.member}"
        return "" if offset == self.member else None


COPY = Transform()


def member_in_frame(offset: str, member: str) -> str | None:
    """The frame member `p->member` touches when p holds `offset`; None when it lies outside the frame."""
    if not offset:
        return member
    if not offset.startswith("^"):
        return f"{offset}.{member}"
    inside = offset[1:]
    if member == inside:
        return "*"  # the whole embedded frame: its address is taken or it is copied
    if member.startswith(inside + "."):
        return member[len(inside) + 1:]
    return member[len(inside):] if member.startswith(inside + "[") else None


@dataclass(frozen=True)
class Seed:
    """Where a frame pointer is born. Exactly one of var, param, returned_by and buffer is set.

    var / param: that local or parameter of `function` (an id, or a name, with `file` to choose);
    returned_by: every call to that function returns the frame (only the calls made in `function`
    when it is given); buffer: the global or per-CPU object of that name is the frame, so `&buf` and
    `this_cpu_ptr(&buf)` point to it.
    """

    frame: str  # opaque label, e.g. 'x86:ftrace_partial_regs:entry'
    function: int | str | None = None
    file: str | None = None
    var: str | None = None
    line: int = 0  # where the pointer is assigned; the first hop of every path
    param: int | None = None
    returned_by: str | None = None
    buffer: str | None = None


@dataclass(frozen=True)
class Hop:
    """A step a reviewer follows: in `function`, at file:line, the frame moves on (a call or a store)."""

    function: str
    file: str
    line: int
    condition: str = ""  # for a call: the guards the arch's build leaves open on its edge (see `edges`)


@dataclass(frozen=True)
class Reach:
    """A member access through a pointer into the frame."""

    frame: str
    access_id: int  # accesses.id
    function: str
    file: str
    line: int
    member: str  # relative to the frame: 'cs', 'regs[29]', 'regs[*]'; '*' for the whole frame
    access: str  # 'read', 'write', 'readwrite', 'address'
    mask: str | None
    condition: str  # the access's `#if` guard when the arch's build leaves it open, else ''
    path: tuple[Hop, ...]


@dataclass(frozen=True)
class Escape:
    """A frame pointer passed to a call with no edge on the arch (a BPF program, an unbound pointer)."""

    frame: str
    function: str
    file: str
    line: int
    callee_expr: str
    position: int  # the argument carrying the frame
    condition: str  # the call's `#if` guard when the arch's build leaves it open, else ''
    path: tuple[Hop, ...]  # ends with the call itself


@dataclass(frozen=True)
class Entered:
    """A function the frame pointer is passed into: `positions` are the parameters holding the frame itself."""

    frame: str
    function: str
    file: str
    line: int
    positions: tuple[int, ...]
    path: tuple[Hop, ...]  # ends with the call into the function


@dataclass(frozen=True)
class Scope:
    """What a walk's result depends on, by name: a change to anything else cannot alter it.

    `functions`: (file, name) of the functions it analysed; `names`: what those call (the callee, or the
    field of a call through a pointer), whose definitions or bindings decide where the walk goes;
    `cells`: the names of the memory cells it stored the frame into (`regaudit.facts.cell_names`), which any
    function naming them may read.
    """

    functions: frozenset[tuple[str, str]] = frozenset()
    names: frozenset[str] = frozenset()
    cells: frozenset[str] = frozenset()

    def __or__(self, other: Scope) -> Scope:
        return Scope(self.functions | other.functions, self.names | other.names, self.cells | other.cells)

    def to_json(self) -> dict[str, list[Any]]:
        return {"functions": sorted(map(list, self.functions)), "names": sorted(self.names),
                "cells": sorted(self.cells)}

    @classmethod
    def from_json(cls, data: dict[str, list[Any]]) -> Scope:
        return cls(frozenset(tuple(f) for f in data["functions"]), frozenset(data["names"]), frozenset(data["cells"]))


@dataclass(frozen=True)
class Propagation:
    """Everything one seed's frame pointer gets to on one arch, and what that depended on."""

    reaches: list[Reach]
    escapes: list[Escape]
    entered: list[Entered]
    scope: Scope = Scope()


@dataclass(frozen=True)
class Site:
    """Where an equation holds: its line and the C branch conditions it runs under (innermost first)."""

    line: int = 0
    branches: Branches = ()


ANYWHERE = Site()
Flow = tuple[Destination, Source, Transform, Site]


@dataclass
class Body:
    """A function compiled to equations `destination <- transform(source)`."""

    flows: list[Flow] = field(default_factory=list)
    calls: dict[int, tuple[CallSite, list[tuple[int, Source, Transform]]]] = field(default_factory=dict)
    accesses: list[tuple[Access, Source]] = field(default_factory=list)
    store_lines: dict[HeapKey, int] = field(default_factory=dict)
    heap_reads: frozenset[HeapKey] = frozenset()  # cells any equation, argument or access reads
    open_reads: frozenset[tuple[str, str]] = frozenset()  # loads through plain pointers: (struct tag, field)
    # local -> the plain assignments to it: a later use is killed when they cover every way to it
    assigned: dict[str, list[tuple[Site, Source, Transform]]] = field(default_factory=dict)

    def seal(self) -> Body:
        sources = [source for _d, source, _t, _s in self.flows] + [source for _a, source in self.accesses]
        sources += [source for _c, args in self.calls.values() for _p, source, _t in args]
        self.heap_reads = frozenset(key for source in sources if isinstance(source, Heap) for key in source.keys)
        self.open_reads = frozenset(source.any_of for source in sources if isinstance(source, Heap) and source.any_of)
        return self


def propagate(db_path: str | Path, arch: str, seeds: list[Seed]) -> tuple[list[Reach], list[Escape]]:
    """Every access and unresolved call each seed's frame pointer reaches on `arch`, with a shortest path.

    BadInput when `arch` is not linked in the database or a seed names no function.
    """
    reaches: list[Reach] = []
    escapes: list[Escape] = []
    with arch_program(db_path, arch) as program:
        for seed in seeds:
            result = program.run(seed)
            reaches.extend(result.reaches)
            escapes.extend(result.escapes)
    return reaches, escapes


@contextmanager
def arch_program(db_path: str | Path, arch: str, dotconfig: Mapping[str, bool] | None = None,
                 barriers: frozenset[tuple[str, str]] = frozenset(),
                 tree_path: str | Path | None = None) -> Iterator[FlowProgram]:
    """The arch's program, compiled as seeds reach its functions, to run many seeds on; `dotconfig`
    evaluates guards as a .config does.

    `barriers`: (caller, callee) names of calls a frame is never passed through (rules' no_flow bridges);
    `tree_path`: the tree whose text the walk reads (`return NAME;` lines, Kbuild), when it is not the one
    the database was indexed from (`regaudit check`'s patched view).
    """
    conn = open_existing(Path(db_path)).conn
    try:
        facts = FlowFacts(conn, arch, str(tree_path) if tree_path is not None else None)
        tree = open_tree(facts.tree_path)
        rules = ConfigRules.for_arch(load_catalogue(kernel_series(tree.version)).config, arch)
        # Open while walking: the build config reads macro definitions when it meets a new guard, a branch
        # oracle header constants.
        with ArchFacts(Path(db_path)) as arch_facts, TextFacts(Path(db_path)) as text_facts:
            yield FlowProgram(facts, BuildConfig.load(tree.root, arch, arch_facts, rules, dotconfig=dotconfig),
                              Path(db_path), text_facts, barriers)
    finally:
        conn.close()


class FlowProgram:
    """The arch's functions compiled to equations on first use, shared by every seed's walk.

    Which functions read a memory cell is asked only for the cells a walk stores a frame into: the
    candidates are the functions whose facts name the cell's field or variable, compiled then.
    """

    def __init__(self, facts: FlowFacts, config: BuildConfig, db_path: Path, text: TextFacts,
                 barriers: frozenset[tuple[str, str]] = frozenset()) -> None:
        """`text`: the database's text facts, for branch oracles (header constants the index did not parse)."""
        self.facts, self.config, self.db_path, self.text, self.barriers = facts, config, db_path, text, barriers
        self.program = program_for(Path(facts.tree_path), config.arch, facts.generic_header_files())
        self.embeddings: dict[tuple[str, str], set[HeapKey]] = defaultdict(set)  # (tag, field) -> object cells
        self.embedded: dict[HeapKey, set[tuple[str, str]]] = defaultdict(set)  # object cell -> (tag, field)
        self.bodies: dict[int, Body] = {}
        self._in_program: dict[str, bool] = {}
        self._aliases: dict[int, dict[str, set[tuple[str, str]]]] = {}
        self._naming: dict[tuple[bool, str], set[int]] = {}
        self._readers: dict[HeapKey, tuple[set[int], list[tuple[int, frozenset[tuple[str, str]]]]]] = {}
        self._returns_added: set[int] = set()

    def in_program(self, function_id: int) -> bool:
        """Whether the arch's build sees and compiles the function's file."""
        file = self.facts.function(function_id).file
        if file not in self._in_program:
            self._in_program[file] = self.program.sees(file) and self.config.builds(file)
        return self._in_program[file]

    def compiled(self, function_id: int) -> Body | None:
        """The function's equations (None when it is not part of the arch's program)."""
        if function_id not in self.bodies:
            if not self.in_program(function_id):
                return None
            self.bodies[function_id] = self._compile(function_id)
        return self.bodies[function_id]

    def cells_read(self, body: Body) -> set[HeapKey]:
        """The cells a body reads, with every object cell known to embed a type it loads through a plain pointer."""
        return set(body.heap_reads).union(*(self.embeddings.get(o, set()) for o in body.open_reads))

    def cell_words(self, key: HeapKey) -> set[str]:
        """The cell's names (`regaudit.facts.cell_names`): `tag.field` by the innermost struct holding its field
        when known (a type's cell; an object's, by the types it embeds), else its field or variable."""
        kind, tag, path = key
        if kind == "field" and "." not in path:
            return {field_word(tag, path)}
        return {field_word(*embedded) for embedded in self.embedded.get(key, ())} or {cell_name(key)}

    def readers_of(self, key: HeapKey) -> set[int]:
        """The functions of the program that read the cell `key`.

        Of the candidates (functions naming the cell), those reading it by name are found once; those loading a
        field through a plain pointer read it when the cell is known to embed that field's struct, which more
        compiled functions can make true, so they are asked each time."""
        if key not in self._readers:
            named = (key[0] == "field", cell_name(key))  # a field is named in member paths, a variable as itself
            if named not in self._naming:
                self._naming[named] = self.facts.naming(named[1], member=named[0])
            candidates = self._naming[named]
            self.facts.load_functions(candidates)  # in bulk: a common field name has hundreds of candidates
            self.facts.load_bodies([f for f in candidates if f not in self.bodies and self.in_program(f)])
            by_name, through_pointers = set(), []
            for function_id in candidates:
                body = self.compiled(function_id)
                if body is not None and key in body.heap_reads:
                    by_name.add(function_id)
                elif body is not None and body.open_reads:
                    through_pointers.append((function_id, body.open_reads))
            self._readers[key] = (by_name, through_pointers)
        by_name, through_pointers = self._readers[key]
        return by_name | {function_id for function_id, loads in through_pointers
                          if any(key in self.embeddings.get(load, ()) for load in loads)}

    def run(self, seed: Seed, oracle: BranchOracle | None = None) -> Propagation:
        """One seed's reaches, escapes and entered functions; nothing when its function is not in the program.

        With an `oracle`, calls and accesses under a branch condition it decides against are not followed.
        """
        if sum(value is not None for value in (seed.var, seed.param, seed.returned_by, seed.buffer)) != 1:
            raise BadInput(f"seed {seed.frame}: set exactly one of var, param, returned_by, buffer")
        walk = Walk(self, seed, self._seed_function(seed), oracle)
        walk.run()
        paths = walk.paths()
        return Propagation(walk.reaches(paths), walk.escapes(paths), walk.entered(paths), walk.scope())

    def _seed_function(self, seed: Seed) -> int | None:
        if seed.function is None or isinstance(seed.function, int):
            return seed.function
        ids = self.facts.functions_named(seed.function, seed.file)
        if not ids:
            raise BadInput(f"seed {seed.frame}: no function {seed.function} in {seed.file or 'the database'}")
        return ids[0]

    def has(self, seed: Seed) -> bool:
        """Whether the seed's function (by id) is part of this arch's program."""
        return isinstance(seed.function, int) and self.compiled(seed.function) is not None

    def functions_named(self, name: str) -> list[int]:
        """This arch's definitions called `name`."""
        return sorted(f for f in self.facts.functions_named(name) if self.in_program(f))

    def name(self, function_id: int) -> str:
        return self.facts.function(function_id).name

    def body(self, function_id: int) -> Body:
        """The compiled body; its `return NAME;` flows are added on first use (they read the source file)."""
        body = self.compiled(function_id)
        assert body is not None, "only functions of the program are walked"
        if function_id not in self._returns_added:
            self._returns_added.add(function_id)
            body.flows.extend((Returned(), Local(name), COPY, ANYWHERE) for name in self._returned_names(function_id))
        return body

    def open_guard(self, condition: str) -> str:
        """'' when the arch's build decides `condition` (true: facts under a false one are never compiled)."""
        return "" if self.config.holds(condition) else condition

    def _returned_names(self, function_id: int) -> set[str]:
        function = self.facts.function(function_id)
        if function.kind == "macro":
            body = (function.macro_body or "").strip().strip("()").strip()
            return {body} if body in self.facts.params(function_id) else set()
        lines = source_lines(self.facts.tree_path, function.file)[function.line - 1:function.end_line]
        return {match[1] for line in lines for match in _RETURN.finditer(line)}

    def _compile(self, function_id: int) -> Body:
        body = Body()
        calls = self.facts.calls(function_id)
        by_place = {(call.line, call.callee): call.id for call in calls}
        for assignment in self.facts.assignments(function_id):
            self._compile_assignment(body, function_id, assignment, by_place)
        for call in calls:
            if self.config.holds(call.condition) is False:
                continue
            args = []
            for arg in call.args:
                source, transform = self._argument(function_id, call, arg, by_place)
                if source is not None:
                    args.append((arg.position, source, transform))
            body.calls[call.id] = (call, args)
            if call.result_use == "returned":
                body.flows.append((Returned(), CallResult(call.id), COPY, Site(call.line, call.branches)))
            self._compile_percpu_write(body, call, args)
        for access in self.facts.accesses(function_id):
            if access.base_var and not access.base_call and self.config.holds(access.condition) is not False:
                body.accesses.append(self._access(function_id, access.base_var, access))
        return body.seal()

    def _access(self, function_id: int, base_var: str, access: Access) -> tuple[Access, Source]:
        """`p->m` reads through p; `p->a.regs->cs` reads `cs` through the pointer held in the cell of `a.regs`."""
        head, arrow, rest = access.member.partition("->")
        key = self.field_cells(function_id, base_var, head, write=False) if arrow else None
        if key is None:
            return access, self._variable(function_id, base_var, access.base_var_kind)
        return access._replace(member=rest), key

    @staticmethod
    def _compile_percpu_write(body: Body, call: CallSite, args: list[tuple[int, Source, Transform]]) -> None:
        if call.callee not in _WRITES_FIRST_ARGUMENT:
            return
        by_position = {position: (source, transform) for position, source, transform in args}
        target, value = by_position.get(0), by_position.get(1)
        if target and value and isinstance(target[0], Heap):
            body.flows.append((target[0], *value, Site(call.line, call.branches)))
            for key in target[0].keys:
                body.store_lines[key] = call.line

    def _compile_assignment(self, body: Body, function_id: int, assignment: Assignment,
                            by_place: dict[tuple[int, str | None], int]) -> None:
        if not assignment.lhs_var or assignment.lhs_deref:
            return
        source, transform = self._rhs(function_id, assignment, by_place)
        if source is None:
            if not assignment.lhs_member and self._variable(function_id, assignment.lhs_var, None) == Local(
                    assignment.lhs_var):
                site = Site(assignment.line, assignment.branches)
                body.assigned.setdefault(assignment.lhs_var, []).append((site, NOTHING, COPY))
            return
        site = Site(assignment.line, assignment.branches)
        if not assignment.lhs_member:
            destination = self._variable(function_id, assignment.lhs_var, assignment.lhs_var_kind)
            body.flows.append((destination, source, transform, site))
            if isinstance(destination, Local):
                body.assigned.setdefault(destination.name, []).append((site, source, transform))
            return
        cells = self.field_cells(function_id, assignment.lhs_var, assignment.lhs_member, write=True)
        if cells is not None:
            body.flows.append((cells, source, transform, site))
            for key in cells.keys:
                body.store_lines[key] = assignment.line

    def _rhs(self, function_id: int, assignment: Assignment,
             by_place: dict[tuple[int, str | None], int]) -> tuple[Source | None, Transform]:
        kind, var = assignment.rhs_kind, assignment.rhs_var
        if kind == "call":
            call_id = by_place.get((assignment.line, assignment.rhs_callee))
            return (CallResult(call_id) if call_id is not None else None), COPY
        if not var:
            return None, COPY
        if kind == "member":
            return self.field_cells(function_id, var, assignment.rhs_member or "", write=False), COPY
        if kind == "container_of":
            return Local(var), Transform("container", assignment.rhs_member or "")
        if kind == "address" and assignment.rhs_member:
            return Local(var), Transform("member", assignment.rhs_member)
        if kind == "address" and assignment.rhs_var_kind == "global":
            return cell(("object", var, "")), COPY
        if kind in ("var", "cast", "address"):
            return self._variable(function_id, var, assignment.rhs_var_kind), COPY
        return None, COPY

    def _argument(self, function_id: int, call: CallSite, arg: Argument,
                  by_place: dict[tuple[int, str | None], int]) -> tuple[Source | None, Transform]:
        if arg.inner_call:
            call_id = by_place.get((call.line, arg.inner_call))
            return (CallResult(call_id) if call_id is not None else None), COPY
        if not arg.var:
            return None, COPY
        if arg.member and arg.address_of:
            return Local(arg.var), Transform("member", arg.member)
        if arg.member:
            return self.field_cells(function_id, arg.var, arg.member, write=False), COPY
        if arg.address_of:
            # &buf of a global is the object; &local is a pointer to a pointer, which is not followed.
            return (cell(("object", arg.var, "")) if arg.var_kind == "global" else None), COPY
        return self._variable(function_id, arg.var, arg.var_kind), COPY

    def _variable(self, function_id: int, name: str, kind: str | None) -> Local | Heap:
        if kind == "global" or (kind is None and not self.facts.declares(function_id, name)
                                and name in self.facts.file_scope):
            return cell(("global", name, ""))
        return Local(name)

    def field_cells(self, function_id: int, var: str, path: str, write: bool) -> Heap | None:
        """The memory `var->path` names. A field is a cell of its innermost struct type, ("field", tag, field),
        except inside an object: `data->regs_intr.regs` is the cell ("field", "perf_sample_data",
        "regs_intr.regs"), and so is `p->regs` in a function every caller passes `&data->regs_intr` as `p`.
        A store there writes the object's cell only; a load reads it and the type's cell (what was stored
        through a plain pointer); a load through a plain pointer also reads every object cell embedding the type.
        """
        declared = self.facts.var_type(function_id, var) or ""
        tag = outer = self._struct_tag(declared)
        if tag is None:
            return None
        parts = [_INDEX.sub("", part) for part in path.split(".")]
        for depth, part in enumerate(parts[:-1]):
            inner = self.facts.member_types.get((tag, part), "")
            inner_tag = self._struct_tag(inner)
            if "*" in inner or inner_tag is None:
                return cell(("field", tag, ".".join(parts[depth:])))
            tag = inner_tag
        type_key: HeapKey = ("field", tag, parts[-1])
        prefixes = [(outer, "")] if len(parts) > 1 else []
        prefixes += list(self._field_address_parameters(function_id).get(var, ()))
        objects = tuple(("field", holder, ".".join(filter(None, (prefix, *parts)))) for holder, prefix in prefixes)
        for key in objects:
            self.embeddings[(tag, parts[-1])].add(key)
            self.embedded[key].add((tag, parts[-1]))
        if write:
            return Heap(objects or (type_key,))
        return Heap((*objects, type_key), any_of=None if objects else (tag, parts[-1]))

    def _field_address_parameters(self, function_id: int) -> dict[str, set[tuple[str, str]]]:
        """The function's parameters every caller on this arch passes the address of an embedded struct field
        (`perf_sample_regs_intr(&data->regs_intr, regs)`): parameter -> {(holding struct, field path)}."""
        if function_id not in self._aliases:
            params = self.facts.params(function_id)
            aliases: dict[str, set[tuple[str, str]]] = defaultdict(set)
            plain: set[str] = set()
            for caller, arg in self.facts.incoming_arguments(function_id):
                name = params[arg.position] if arg.position < len(params) else None
                if name is None:
                    continue
                holder = self._held_in(caller, arg)
                if holder is None:
                    plain.add(name)
                else:
                    aliases[name].add(holder)
            self._aliases[function_id] = {name: value for name, value in aliases.items() if name not in plain}
        return self._aliases[function_id]

    def _held_in(self, caller: int, arg: Argument) -> tuple[str, str] | None:
        """(struct, field path) when `arg` is `&var->a.b` of a struct variable, else None."""
        if not (arg.address_of and arg.member and arg.var):
            return None
        declared = self.facts.var_type(caller, arg.var) or ""
        tag = self._struct_tag(declared)
        return (tag, _INDEX.sub("", arg.member)) if tag else None

    def _struct_tag(self, type_text: str) -> str | None:
        for _ in range(_TYPEDEF_HOPS):
            match = STRUCT_TAG.search(type_text)
            if match:
                return match[1]
            words = re.findall(r"\w+", type_text.replace("const", ""))
            if not words or words[-1] not in self.facts.typedefs:
                return None
            type_text = self.facts.typedefs[words[-1]]
        return None


def cell_name(key: HeapKey) -> str:
    """The name a function must mention to read the cell: its last field, or its variable."""
    kind, name, path = key
    return _INDEX.sub("", path.split(".")[-1]) if kind == "field" else name


@cache
def source_lines(tree: str, file: str) -> list[str]:
    try:
        return (Path(tree) / file).read_text(errors="replace").splitlines()
    except OSError:
        return []


class Walk:
    """One seed's worklist over contexts to the fixpoint, then its reaches and escapes."""

    def __init__(self, program: FlowProgram, seed: Seed, function_id: int | None,
                 oracle: BranchOracle | None = None) -> None:
        self.program, self.seed, self.seed_function, self.oracle = program, seed, function_id, oracle
        self.heap: dict[HeapKey, set[str]] = defaultdict(set)
        self.summaries: dict[Context, set[str]] = {}
        self.values: dict[Context, dict[str, set[str]]] = {}
        self.callers: dict[Context, set[Context]] = defaultdict(set)
        self.readers: dict[HeapKey, set[Context]] = defaultdict(set)
        self.open_readers: dict[tuple[str, str], set[Context]] = defaultdict(set)  # by (tag, field) loaded
        self.incoming: dict[Context, set[tuple[Context, Hop]]] = defaultdict(set)
        self.storers: dict[HeapKey, set[tuple[Context, Hop]]] = defaultdict(set)
        self.seeded_calls: set[int] = set()
        self.roots: list[Context] = []
        self.queue: deque[Context] = deque()
        self.queued: set[Context] = set()

    def run(self) -> None:
        self.roots = self._roots()
        for context in self.roots:
            self._enqueue(context)
        while self.queue:
            context = self.queue.popleft()
            self.queued.discard(context)
            self._analyse(context)

    def _roots(self) -> list[Context]:
        seed, facts = self.seed, self.program.facts
        if seed.buffer is not None:
            self._store(("object", seed.buffer, ""), {""}, None)
            return [(f, frozenset()) for f in sorted(self.program.readers_of(("object", seed.buffer, "")))]
        if seed.returned_by is not None:
            named = facts.callers_calling(seed.returned_by) if self.seed_function is None else [self.seed_function]
            callers = [f for f in named if self.program.in_program(f)]
            sites = [call for f in callers for call in facts.calls(f)
                     if call.callee == seed.returned_by and self.program.config.holds(call.condition) is not False]
            self.seeded_calls = {call.id for call in sites}
            return [(f, frozenset()) for f in sorted({call.function_id for call in sites})]
        if self.program.compiled(self.seed_function) is None:
            return []  # defined only in another arch's code, or compiled out on this one
        entry = frozenset({(seed.param, "")}) if seed.param is not None else frozenset()
        return [(self.seed_function, entry)]

    def _enqueue(self, context: Context) -> None:
        if context not in self.queued:
            self.queued.add(context)
            self.queue.append(context)

    def _analyse(self, context: Context) -> None:
        function_id, entry = context
        body = self.program.body(function_id)
        values = self.values.setdefault(context, defaultdict(set))
        params = self.program.facts.params(function_id)
        for position, offset in entry:
            name = params[position] if position < len(params) else None
            if name:
                values[name].add(offset)
        if self.seed.var is not None and function_id == self.seed_function:
            values[self.seed.var].add("")
        for key in body.heap_reads:
            self.readers[key].add(context)
        for loaded in body.open_reads:
            self.open_readers[loaded].add(context)
        while self._solve_flows(context, body, values):
            pass
        self._publish_return(context, values)
        self._enter_callees(context, body, values)

    def value(self, context: Context, values: dict[str, set[str]], source: Source) -> set[str]:
        if isinstance(source, Local):
            return values.get(source.name, set())
        if isinstance(source, Heap):
            keys = set(source.keys)
            if source.any_of:
                keys |= self.program.embeddings.get(source.any_of, set())
            return set().union(*(self.heap.get(key, set()) for key in keys))
        return self._call_value(context, values, source.call_id)

    def _moved(self, context: Context, values: dict[str, set[str]], source: Source, transform: Transform,
               site: Site | None = None) -> set[str]:
        """The offsets `transform(source)` yields; at `site`, nothing when a reassignment killed the local."""
        if site is not None and isinstance(source, Local) and self._killed(context, values, source.name, site):
            return set()
        return {o for o in map(transform.apply, self.value(context, values, source)) if o is not None}

    def _killed(self, context: Context, values: dict[str, set[str]], name: str, site: Site) -> bool:
        """True when assignments of values that are not the frame, earlier in the function than `site`, cover
        every way to it: their branch conditions, once the ones the oracle decides are dropped and the two arms
        of one condition are merged, are all among the conditions `site` runs under. Loops are not seen: a use
        reached again after a later reassignment on a back edge is taken as killed."""
        assigned = self.program.bodies[context[0]].assigned.get(name)
        if not assigned or not site.line:
            return False
        covers: set[frozenset[tuple[str, bool]]] = set()
        seeded_after = self.seed.line if name == self.seed.var and context[0] == self.seed_function else 0
        for where, source, transform in assigned:
            if not seeded_after < where.line < site.line or self._moved(context, values, source, transform):
                continue  # after the use, before the seed made the variable the frame, or may assign the frame
            # a guard clause whose arm returns, or jumps past the use, does not keep the use from the assignment
            passed = tuple(b for b in where.branches if b[2] is None or not (b[2] == -1 or b[2] > site.line))
            conditions = self._undecided(passed, values)
            if conditions is not None:
                covers.add(conditions)
        if not covers:
            return False
        covers = _merged_arms(covers)
        at_use = self._undecided(site.branches, values)
        return at_use is None or any(cover <= at_use for cover in covers)

    def _undecided(self, branches: Branches, values: dict[str, set[str]]) -> frozenset[tuple[str, bool]] | None:
        """The branch conditions the oracle leaves open; None when it decides one against its arm."""
        if self.oracle is None:
            return frozenset((condition, holds) for condition, holds, _exit in branches)
        frame_vars = _frame_vars(values)
        kept = set()
        for condition, holds, _exit in branches:
            decided = self.oracle.decide(condition, frame_vars)
            if decided is None:
                kept.add((condition, holds))
            elif decided is not holds:
                return None
        return frozenset(kept)

    def _solve_flows(self, context: Context, body: Body, values: dict[str, set[str]]) -> bool:
        """One pass over the equations; True when a local grew (heap growth re-queues readers instead)."""
        changed = False
        for destination, source, transform, site in body.flows:
            if self._dead(site.branches, values):
                continue
            moved = self._moved(context, values, source, transform, site)
            if not moved:
                continue
            if isinstance(destination, Heap):
                for key in destination.keys:
                    self._store(key, moved, (context, body.store_lines.get(key, 0)))
                continue
            target = values["\0return" if isinstance(destination, Returned) else destination.name]
            if not moved <= target:
                target |= moved
                changed = True
        return changed

    def _publish_return(self, context: Context, values: dict[str, set[str]]) -> None:
        returned = values.get("\0return", set())
        if returned - self.summaries.get(context, set()):
            self.summaries[context] = set(returned)
            for caller in self.callers[context]:
                self._enqueue(caller)

    def _store(self, key: HeapKey, offsets: set[str], where: tuple[Context, int] | None) -> None:
        if where is not None:
            context, line = where
            function = self.program.facts.function(context[0])
            self.storers[key].add((context, Hop(function.name, function.file, line or function.line)))
        if offsets <= self.heap[key]:
            return
        self.heap[key] |= offsets
        for reader in self.readers[key].union(*(self.open_readers[t] for t in self.program.embedded.get(key, ()))):
            self._enqueue(reader)
        for function_id in self.program.readers_of(key):
            if (function_id, frozenset()) not in self.values:
                self._enqueue((function_id, frozenset()))

    def _entry_of(self, context: Context, values: dict[str, set[str]], call_id: int) -> Entry:
        call, args = self.program.bodies[context[0]].calls[call_id]
        site = Site(call.line, call.branches)
        return frozenset((position, offset) for position, source, transform in args
                         for offset in self._moved(context, values, source, transform, site))

    def _enter_callees(self, context: Context, body: Body, values: dict[str, set[str]]) -> None:
        caller = self.program.facts.function(context[0])
        for call, _args in body.calls.values():
            if call.callee in _MODELLED or self._dead(call.branches, values):
                continue
            entry = self._entry_of(context, values, call.id)
            if not entry:
                continue
            for callee_id in self.program.facts.callees(call):
                if (caller.name, self.program.name(callee_id)) in self.program.barriers:
                    continue
                callee = (callee_id, entry)
                guard = self.program.facts.edge_guard(call.id, callee_id)
                self.incoming[callee].add((context, Hop(caller.name, call.file, call.line, guard)))
                self.callers[callee].add(context)
                if callee not in self.values and self.program.compiled(callee_id) is not None:
                    self._enqueue(callee)

    def _call_value(self, context: Context, values: dict[str, set[str]], call_id: int) -> set[str]:
        if call_id in self.seeded_calls:
            return {""}
        compiled = self.program.bodies[context[0]].calls.get(call_id)
        if compiled is None:
            return set()  # the call is compiled out on this arch: its result is nothing
        call, args = compiled
        if call.callee in _READS_FIRST_ARGUMENT:
            return set().union(*(self._moved(context, values, s, t) for p, s, t in args if p == 0))
        entry = self._entry_of(context, values, call_id)
        result: set[str] = set()
        for callee_id in self.program.facts.callees(call):
            callee = (callee_id, entry)
            self.callers[callee].add(context)
            body = self.program.compiled(callee_id)
            if callee not in self.values and body and any(self.heap.get(k) for k in self.program.cells_read(body)):
                self._enqueue(callee)  # no frame argument, but it may return what a heap cell holds
            result |= self.summaries.get(callee, set())
        return result

    def _dead(self, branches: Branches, values: dict[str, set[str]]) -> bool:
        """True when the oracle decides one of the branch conditions against the arm the fact is in."""
        if self.oracle is None or not branches:
            return False
        frame_vars = _frame_vars(values)
        return any(self.oracle.decide(condition, frame_vars) is (not holds) for condition, holds, _exit in branches)

    def paths(self) -> dict[Context, tuple[Hop, ...]]:
        """A shortest path to every analysed context: breadth-first from the roots over calls and heap stores."""
        successors: dict[Context, list[tuple[Context, Hop]]] = defaultdict(list)
        for callee, sources in self.incoming.items():
            for caller, hop in sources:
                successors[caller].append((callee, hop))
        for key, storers in self.storers.items():
            readers = self.program.readers_of(key)
            for storer, hop in storers:
                successors[storer].extend(((f, frozenset()), hop) for f in readers)
        best = {root: self._seed_hops() for root in self.roots}
        frontier = deque(self.roots)
        while frontier:
            context = frontier.popleft()
            for successor, hop in sorted(successors.get(context, ()), key=self._step_order):
                if successor not in best and successor in self.values:
                    best[successor] = (*best[context], hop)
                    frontier.append(successor)
        return best

    def scope(self) -> Scope:
        functions = {self.program.facts.function(function_id) for function_id, _entry in self.values}
        names = {call.callee or call.callee_member or call.callee_expr for function_id, _entry in self.values
                 for call, _args in self.program.bodies[function_id].calls.values()}
        if self.seed.returned_by is not None:
            names.add(self.seed.returned_by)
        cells = {word for key, offsets in self.heap.items() if offsets for word in self.program.cell_words(key)}
        return Scope(frozenset((f.file, f.name) for f in functions), frozenset(names), frozenset(cells))

    def _step_order(self, step: tuple[Context, Hop]) -> tuple[str, int, str, int, list[tuple[int, str]]]:
        """Equal-length paths are told apart by where the hop is, then by the function it enters: never by the
        order the walk happened to meet them."""
        (function_id, entry), hop = step
        function = self.program.facts.function(function_id)
        return hop.file, hop.line, function.file, function.line, sorted(entry)

    def _seed_hops(self) -> tuple[Hop, ...]:
        if self.seed_function is None:
            return ()
        function = self.program.facts.function(self.seed_function)
        return (Hop(function.name, function.file, self.seed.line or function.line),)

    def reaches(self, paths: dict[Context, tuple[Hop, ...]]) -> list[Reach]:
        found: dict[tuple[int, str], Reach] = {}
        for context, path in paths.items():
            values = self.values[context]
            for access, source in self.program.bodies[context[0]].accesses:
                if self._dead(access.branches, values):
                    continue
                site = Site(access.line, access.branches)
                for offset in self._moved(context, values, source, COPY, site):
                    member = member_in_frame(offset, access.member)
                    known = found.get((access.id, member or ""))
                    if member is None or (known is not None and len(known.path) <= len(path)):
                        continue
                    found[(access.id, member)] = Reach(self.seed.frame, access.id, self.program.name(context[0]),
                                                       access.file, access.line, member, access.access, access.mask,
                                                       self.program.open_guard(access.condition), path)
        return sorted(found.values(), key=lambda r: (r.file, r.line, r.access_id, r.member))

    def entered(self, paths: dict[Context, tuple[Hop, ...]]) -> list[Entered]:
        """Each function entered with the frame itself in a parameter, on its shortest path."""
        found: dict[tuple[int, tuple[int, ...]], Entered] = {}
        for (function_id, entry), path in paths.items():
            positions = tuple(sorted(position for position, offset in entry if offset == ""))
            known = found.get((function_id, positions))
            if positions and (known is None or len(path) < len(known.path)):
                function = self.program.facts.function(function_id)
                found[(function_id, positions)] = Entered(self.seed.frame, function.name, function.file,
                                                          function.line, positions, path)
        return sorted(found.values(), key=lambda e: (e.file, e.line, e.positions))

    def escapes(self, paths: dict[Context, tuple[Hop, ...]]) -> list[Escape]:
        found: dict[tuple[int, int], Escape] = {}
        for context, path in paths.items():
            values, function = self.values[context], self.program.name(context[0])
            for call, _args in self.program.bodies[context[0]].calls.values():
                resolved = bool(self.program.facts.callees(call))
                if resolved or call.callee in _MODELLED or self._dead(call.branches, values):
                    continue
                for position in sorted({p for p, _o in self._entry_of(context, values, call.id)}):
                    known = found.get((call.id, position))
                    if known is None or len(path) + 1 < len(known.path):
                        found[(call.id, position)] = Escape(self.seed.frame, function, call.file, call.line,
                                                            call.callee_expr, position,
                                                            self.program.open_guard(call.condition),
                                                            (*path, Hop(function, call.file, call.line)))
        return sorted(found.values(), key=lambda e: (e.file, e.line, e.position))


def _merged_arms(covers: set[frozenset[tuple[str, bool]]]) -> set[frozenset[tuple[str, bool]]]:
    """Close a set of condition sets under "C and !C with the same rest give the rest" (an if and its else)."""
    merged = set(covers)
    changed = True
    while changed:
        changed = False
        for first in list(merged):
            for second in list(merged):
                difference = first ^ second
                if len(difference) == 2 and len({condition for condition, _holds in difference}) == 1:
                    rest = first & second
                    if rest not in merged:
                        merged.add(rest)
                        changed = True
    return merged


def _frame_vars(values: dict[str, set[str]]) -> frozenset[str]:
    """The locals holding the frame itself (offset ''), which a branch condition may test."""
    return frozenset(name for name, offsets in values.items() if "" in offsets)
