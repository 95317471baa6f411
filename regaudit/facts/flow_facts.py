"""Every SQL statement of the propagation stage: the facts a points-to walk needs, read on demand.

Owns the read of one architecture's program as the propagation sees it: definitions, their parameters
and declared variable types, call sites with their arguments and that arch's resolved callees, member
accesses and assignments, read per function when the walk first needs it and kept. It decides nothing about
what points to a frame (that is `regaudit.flow.propagate`).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from regaudit.errors import BadInput
from regaudit.facts.cell_names import member_words
from regaudit.facts.link_facts import member_types, typedef_types

# (condition text, holds, exit) the fact runs under, innermost first; `exit` is None except for a guard
# clause (`if (C) return;`): -1 for a return, a goto's label line, 0 for break/continue
Branches = tuple[tuple[str, bool, int | None], ...]
_CHUNK = 500


@dataclass(frozen=True)
class Function:
    id: int
    name: str
    kind: str  # 'function', 'macro', or a definition-macro family
    file: str
    line: int
    end_line: int
    macro_body: str | None


class Argument(NamedTuple):
    position: int
    var: str | None
    var_kind: str | None  # 'param', 'local', 'global' or None
    address_of: bool
    member: str | None
    inner_call: str | None


class CallSite(NamedTuple):
    id: int
    function_id: int
    file: str
    line: int
    callee: str | None
    callee_expr: str
    callee_member: str | None  # the field of a call through a pointer (`fp->entry_handler(...)`)
    result_use: str
    condition: str
    args: tuple[Argument, ...]
    branches: Branches = ()


class Access(NamedTuple):
    id: int
    function_id: int
    file: str
    line: int
    base_var: str | None
    base_var_kind: str | None
    base_call: str | None
    member: str
    access: str
    mask: str | None
    condition: str
    branches: Branches = ()


class Assignment(NamedTuple):
    function_id: int
    line: int
    lhs_var: str | None
    lhs_var_kind: str | None
    lhs_member: str | None
    lhs_deref: bool
    rhs_kind: str
    rhs_callee: str | None
    rhs_var: str | None
    rhs_var_kind: str | None
    rhs_member: str | None
    cast_type: str | None
    branches: Branches = ()


class FlowFacts:
    """One arch's facts, read as the walk first needs them, then kept.

    A walk reaches a few thousand of the tree's ~100k definitions: reading those on demand (one indexed
    query per table, for a function or for the batch of functions a cell's readers are looked for in) costs
    less than grouping every fact of the database up front.
    """

    def __init__(self, conn: sqlite3.Connection, arch: str, tree_path: str | None = None) -> None:
        """BadInput if `arch` is not linked in the database. `tree_path`: the tree whose text goes with the facts
        (default: the one the database was last indexed from)."""
        if not conn.execute("SELECT 1 FROM link_arches WHERE arch = ?", (arch,)).fetchone():
            raise BadInput(f"arch {arch} is not linked in this database: run the link stage first")
        self.conn, self.arch = conn, arch
        row = conn.execute("SELECT tree_path FROM runs WHERE stage = 'index' ORDER BY id DESC LIMIT 1").fetchone()
        self.tree_path: str = tree_path or (row[0] if row else "")
        self.member_types = member_types(conn)  # (struct tag, member) -> C type
        self.typedefs = typedef_types(conn)
        # file-scope variables (globals, per-CPU buffers) -> C type, None when the index saw none
        self.file_scope: dict[str, str | None] = dict(conn.execute(
            "SELECT name, type FROM variables WHERE function_id IS NULL"))
        self._functions: dict[int, Function] = {}
        self._params: dict[int, list[str | None]] = {}
        self._var_types: dict[int, dict[str, str | None]] = {}
        self._calls: dict[int, list[CallSite]] = {}
        self._callees: dict[int, list[int]] = {}
        self._edge_guards: dict[tuple[int, int], str] = {}
        self._accesses: dict[int, list[Access]] = {}
        self._assignments: dict[int, list[Assignment]] = {}

    def function(self, function_id: int) -> Function:
        if function_id not in self._functions:
            self.load_functions([function_id])
        return self._functions[function_id]

    def load_functions(self, function_ids: Iterable[int]) -> None:
        """Read the definition rows of many functions at once (those a cell's readers are looked for in)."""
        for marks, chunk in _chunks(function_ids, self._functions):
            for row in self.conn.execute(f"SELECT id, name, kind, file, line, end_line, macro_body FROM functions "
                                         f"WHERE id IN ({marks})", chunk):
                self._functions[row[0]] = Function(*row)

    def load_bodies(self, function_ids: Iterable[int]) -> None:
        """Read what the walk compiles of many functions at once: parameters and declarations, call sites with
        their arguments and this arch's callees, accesses and assignments."""
        for marks, chunk in _chunks(function_ids, self._calls):
            params: dict[int, list[str | None]] = {f: [] for f in chunk}
            declarations: dict[int, dict[str, str | None]] = {f: {} for f in chunk}
            for function_id, name, type_ in self.conn.execute(
                    f"SELECT function_id, name, type FROM params WHERE function_id IN ({marks}) "
                    f"ORDER BY function_id, position", chunk):
                params[function_id].append(name)
                if name is not None and type_ is not None:
                    declarations[function_id][name] = type_
            for function_id, name, type_ in self.conn.execute(
                    f"SELECT function_id, name, type FROM variables WHERE function_id IN ({marks}) ORDER BY rowid",
                    chunk):
                declarations[function_id][name] = type_
            self._params.update(params)
            self._var_types.update(declarations)
            self._calls.update(_calls(self.conn, marks, chunk))
            for call_id, callee_id, guard in self.conn.execute(
                    f"SELECT call_id, callee_id, condition FROM edges WHERE arch = ? AND caller_id IN ({marks})",
                    (self.arch, *chunk)):
                self._callees.setdefault(call_id, []).append(callee_id)
                self._edge_guards[(call_id, callee_id)] = guard
            accesses: dict[int, list[Access]] = {f: [] for f in chunk}
            for *columns, branches in self.conn.execute(
                    f"SELECT id, function_id, file, line, base_var, base_var_kind, base_call, member, access, mask, "
                    f"condition, branches FROM accesses WHERE function_id IN ({marks}) ORDER BY id", chunk):
                accesses[columns[1]].append(Access(*columns, branches=_branches(branches)))
            self._accesses.update(accesses)
            assignments: dict[int, list[Assignment]] = {f: [] for f in chunk}
            for f, line, lv, lk, lm, ld, *rest, branches in self.conn.execute(
                    f"SELECT function_id, line, lhs_var, lhs_var_kind, lhs_member, lhs_deref, rhs_kind, rhs_callee, "
                    f"rhs_var, rhs_var_kind, rhs_member, cast_type, branches FROM assignments "
                    f"WHERE function_id IN ({marks}) AND operator = '=' ORDER BY id", chunk):
                assignments[f].append(Assignment(f, line, lv, lk, lm, bool(ld), *rest, branches=_branches(branches)))
            self._assignments.update(assignments)

    def functions_named(self, name: str, file: str | None = None) -> list[int]:
        """Ids of the definitions called `name` (in `file` when given), in file order."""
        rows = self.conn.execute("SELECT id FROM functions WHERE name = ? AND (? IS NULL OR file = ?) "
                                 "ORDER BY file, line", (name, file, file))
        return [function_id for (function_id,) in rows]

    def generic_header_files(self) -> list[str]:
        """Files under include/asm-generic/ that define something."""
        rows = self.conn.execute("SELECT DISTINCT file FROM functions WHERE file LIKE 'include/asm-generic/%'")
        return sorted(file for (file,) in rows)

    def params(self, function_id: int) -> list[str | None]:
        """Parameter names by position."""
        self.load_bodies([function_id])
        return self._params[function_id]

    def declares(self, function_id: int, name: str) -> bool:
        """Whether `name` is a parameter or local of the function."""
        return name in self._declarations(function_id)

    def var_type(self, function_id: int, name: str) -> str | None:
        """`name`'s C type inside the function: its own declaration, else a file-scope one."""
        return self._declarations(function_id).get(name) or self.file_scope.get(name)

    def _declarations(self, function_id: int) -> dict[str, str | None]:
        self.load_bodies([function_id])
        return self._var_types[function_id]

    def calls(self, function_id: int) -> list[CallSite]:
        """The function's call sites, in id order; their callees on this arch are read with them."""
        self.load_bodies([function_id])
        return self._calls[function_id]

    def callees(self, call: CallSite) -> list[int]:
        """The definitions `call` resolves to on this arch (none: unresolved)."""
        self.calls(call.function_id)
        return self._callees.get(call.id, [])

    def edge_guard(self, call_id: int, callee_id: int) -> str:
        return self._edge_guards.get((call_id, callee_id), "")

    def accesses(self, function_id: int) -> list[Access]:
        self.load_bodies([function_id])
        return self._accesses[function_id]

    def assignments(self, function_id: int) -> list[Assignment]:
        self.load_bodies([function_id])
        return self._assignments[function_id]

    def callers_calling(self, callee: str) -> list[int]:
        """Functions with a call of `callee` by name."""
        rows = self.conn.execute("SELECT DISTINCT function_id FROM calls WHERE callee = ? AND function_id IS NOT NULL",
                                 (callee,))
        return sorted(function_id for (function_id,) in rows)

    def incoming_arguments(self, function_id: int) -> list[tuple[int, Argument]]:
        """(calling function, argument) of every call resolved to the function on this arch."""
        rows = self.conn.execute(
            "SELECT c.function_id, a.position, a.var, a.var_kind, a.address_of, a.member, a.inner_call "
            "FROM edges e JOIN calls c ON c.id = e.call_id JOIN call_args a ON a.call_id = e.call_id "
            "WHERE e.arch = ? AND e.callee_id = ? AND c.function_id IS NOT NULL", (self.arch, function_id))
        return [(caller, Argument(position, var, kind, bool(address), member, inner))
                for caller, position, var, kind, address, member, inner in rows]

    def naming(self, name: str, member: bool) -> set[int]:
        """Functions whose accesses, assignments or call arguments name `name` in a member path (`member`: as one
        of its fields) or as a variable: a superset of those that can read a field, or a global, called `name`."""
        if member:
            rows = self.conn.execute(
                "SELECT function_id, member FROM accesses WHERE member LIKE ?1 "
                "UNION SELECT function_id, rhs_member FROM assignments WHERE rhs_member LIKE ?1 "
                "UNION SELECT c.function_id, a.member FROM call_args a JOIN calls c ON c.id = a.call_id "
                "WHERE a.member LIKE ?1", (f"%{name}%",))
            return {function_id for function_id, path in rows
                    if function_id is not None and name in member_words(path, None)}
        rows = self.conn.execute(
            "SELECT function_id FROM accesses WHERE base_var = ?1 "
            "UNION SELECT function_id FROM assignments WHERE rhs_var = ?1 "
            "UNION SELECT c.function_id FROM call_args a JOIN calls c ON c.id = a.call_id WHERE a.var = ?1",
            (name,))
        return {function_id for (function_id,) in rows if function_id is not None}


def _calls(conn: sqlite3.Connection, marks: str, function_ids: list[int]) -> dict[int, list[CallSite]]:
    args: dict[int, list[Argument]] = defaultdict(list)
    for call_id, *rest in conn.execute(
        f"SELECT a.call_id, a.position, a.var, a.var_kind, a.address_of, a.member, a.inner_call FROM call_args a "
        f"JOIN calls c ON c.id = a.call_id WHERE c.function_id IN ({marks}) ORDER BY a.call_id, a.position",
        function_ids,
    ):
        position, var, var_kind, address_of, member, inner_call = rest
        args[call_id].append(Argument(position, var, var_kind, bool(address_of), member, inner_call))
    calls: dict[int, list[CallSite]] = {function_id: [] for function_id in function_ids}
    for row in conn.execute(
        f"SELECT id, function_id, file, line, callee, callee_expr, callee_member, result_use, condition, branches "
        f"FROM calls WHERE function_id IN ({marks}) ORDER BY id", function_ids,
    ):
        calls[row[1]].append(CallSite(*row[:-1], args=tuple(args.get(row[0], ())), branches=_branches(row[-1])))
    return calls


def _chunks(function_ids: Iterable[int], loaded: Mapping[int, object]) -> Iterator[tuple[str, list[int]]]:
    """(placeholders, ids) for the ids not `loaded` yet, a few hundred at a time (SQLite's parameter limit)."""
    missing = sorted({function_id for function_id in function_ids if function_id not in loaded})
    for start in range(0, len(missing), _CHUNK):
        chunk = missing[start:start + _CHUNK]
        yield ", ".join("?" * len(chunk)), chunk


def _branches(column: str) -> Branches:
    if column == "[]":
        return ()
    return tuple((item[0], bool(item[1]), item[2] if len(item) > 2 else None) for item in json.loads(column))
