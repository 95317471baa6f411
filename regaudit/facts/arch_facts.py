"""Intent-level reads of the fact database for the frame models (regaudit.arch).

Owns every SQL statement the arch layer needs: struct layouts, the definitions of a name (functions
and function-like macros, object-like #defines, typedefs), the body facts of one definition (its
parameters, member accesses, assignments, calls and locals), the call sites of a callee, file-scope
variables and where a variable is named. Each answer is a tuple of small frozen records; nothing here
interprets C semantics or decides which definition an architecture uses. It never writes.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from regaudit.facts.read import require_indexed
from regaudit.facts.store import FactReader


@dataclass(frozen=True)
class StructDefinition:
    id: int
    name: str | None
    kind: str  # 'struct' or 'union'
    file: str
    line: int
    end_line: int
    condition: str


@dataclass(frozen=True)
class StructMember:
    position: int
    name: str | None
    type: str
    array_len: str | None
    anon_path: str  # '' or e.g. 'union/struct': the anonymous aggregates the member sits in
    line: int
    condition: str


@dataclass(frozen=True)
class Definition:
    """A function or a function-like macro (kind 'macro', with its body text)."""

    id: int
    name: str
    kind: str
    file: str
    line: int
    end_line: int
    weak: bool
    return_type: str | None  # None for macros
    macro_body: str | None
    condition: str

    @property
    def at(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Param:
    position: int
    name: str | None
    type: str | None  # None for macro parameters


@dataclass(frozen=True)
class MemberAccess:
    line: int
    col: int
    base_var: str | None
    base_call: str | None  # 'arch_ftrace_regs' for arch_ftrace_regs(fregs)->regs.ip
    member: str  # 'regs.ip', 'regs[29]', 'psw.addr'
    access: str  # 'read', 'write', 'readwrite', 'address'
    mask: str | None
    condition: str


@dataclass(frozen=True)
class Assignment:
    line: int
    operator: str
    lhs_var: str | None
    lhs_member: str | None
    lhs_deref: bool
    rhs_expr: str
    rhs_kind: str  # 'call', 'var', 'member', 'address', 'cast', 'constant', ...
    rhs_callee: str | None
    rhs_var: str | None
    rhs_var_kind: str | None  # 'param', 'local', 'global' or None (a macro constant, an enum)
    rhs_member: str | None
    condition: str


@dataclass(frozen=True)
class CallArg:
    position: int
    expr: str
    var: str | None
    var_kind: str | None
    address_of: bool
    member: str | None
    inner_call: str | None


@dataclass(frozen=True)
class Call:
    function_id: int | None
    caller: str | None
    file: str
    line: int
    col: int
    callee: str | None  # None when called through an expression (gops->retfunc, static_call(x))
    callee_expr: str
    result_use: str
    condition: str
    args: tuple[CallArg, ...]

    @property
    def at(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Variable:
    function_id: int | None
    file: str
    line: int
    name: str
    type: str
    storage: str  # 'auto', 'static', 'extern', 'percpu'
    condition: str


@dataclass(frozen=True)
class VariableUse:
    """Where a file-scope variable is named: as a call's argument, an access's base, or either side of an
    assignment (its declarations are `Variable`s)."""

    function: str | None  # the function or macro naming it, None at file scope
    file: str
    line: int
    condition: str

    @property
    def at(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Body:
    """Everything the index recorded inside one definition."""

    definition: Definition
    params: tuple[Param, ...]
    accesses: tuple[MemberAccess, ...]
    assignments: tuple[Assignment, ...]
    calls: tuple[Call, ...]
    locals: frozenset[str]


@dataclass(frozen=True)
class Define:
    name: str
    file: str
    line: int
    value: str
    condition: str


@dataclass(frozen=True)
class Typedef:
    name: str
    type: str
    file: str
    line: int
    condition: str


_Read = TypeVar("_Read", bound=Callable[..., Any])


def _memoized(method: _Read) -> _Read:
    """Remember a read per ArchFacts: the database does not change while models are built from it."""

    @functools.wraps(method)
    def read(self: ArchFacts, *args: Any) -> Any:
        key = (method.__name__, *args)
        if key not in self._memo:
            self._memo[key] = method(self, *args)
        return self._memo[key]

    return cast(_Read, read)


_DEFINITION_COLUMNS = "id, name, kind, file, line, end_line, weak, return_type, macro_body, condition"


class ArchFacts(FactReader):
    """Read-only view of one fact database; answers are cached, so ask freely."""

    def __init__(self, db: Path | sqlite3.Connection) -> None:
        super().__init__(db)
        self._memo: dict[tuple[Any, ...], Any] = {}

    def require_arches(self, db_path: Path, arches: Collection[str]) -> None:
        """BadInput unless the last index run holds the C files of `arches` (`read.require_indexed`)."""
        require_indexed(self._conn, db_path, arches)

    def kernel_version(self) -> str:
        """Version of the tree the last finished index run read, e.g. '7.3.4'."""
        row = self._conn.execute(
            "SELECT kernel_version FROM runs WHERE stage = 'index' AND finished IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else ""

    @_memoized
    def structs_named(self, name: str) -> tuple[StructDefinition, ...]:
        rows = self._conn.execute(
            "SELECT id, name, kind, file, line, end_line, condition FROM structs WHERE name = ? ORDER BY file, line",
            (name,),
        )
        return tuple(StructDefinition(*row) for row in rows)

    @_memoized
    def anonymous_struct_at(self, file: str, line: int) -> StructDefinition | None:
        """The innermost anonymous struct/union spanning `line` (`typedef struct { ... } psw_t;`)."""
        row = self._conn.execute(
            "SELECT id, name, kind, file, line, end_line, condition FROM structs "
            "WHERE name IS NULL AND file = ? AND line <= ? AND end_line >= ? "
            "ORDER BY line DESC LIMIT 1",
            (file, line, line),
        ).fetchone()
        return StructDefinition(*row) if row else None

    @_memoized
    def struct_members(self, struct_id: int) -> tuple[StructMember, ...]:
        rows = self._conn.execute(
            "SELECT position, name, type, array_len, anon_path, line, condition "
            "FROM struct_members WHERE struct_id = ? ORDER BY position",
            (struct_id,),
        )
        return tuple(StructMember(*row) for row in rows)

    @_memoized
    def typedefs_named(self, name: str) -> tuple[Typedef, ...]:
        rows = self._conn.execute(
            "SELECT name, type, file, line, condition FROM typedefs WHERE name = ? ORDER BY file, line", (name,)
        )
        return tuple(Typedef(*row) for row in rows)

    @_memoized
    def defines_named(self, name: str) -> tuple[Define, ...]:
        """Object-like #defines of `name` (function-like ones are `definitions_named`)."""
        rows = self._conn.execute(
            "SELECT name, file, line, value, condition FROM defines WHERE name = ? ORDER BY file, line", (name,)
        )
        return tuple(Define(*row) for row in rows)

    @_memoized
    def definitions_named(self, name: str) -> tuple[Definition, ...]:
        """Functions and function-like macros called `name`, in every file and under every guard."""
        rows = self._conn.execute(
            f"SELECT {_DEFINITION_COLUMNS} FROM functions WHERE name = ? ORDER BY file, line", (name,)
        )
        return tuple(_definition(row) for row in rows)

    @_memoized
    def body(self, definition: Definition) -> Body:
        fid = definition.id
        params = tuple(
            Param(*row)
            for row in self._conn.execute(
                "SELECT position, name, type FROM params WHERE function_id = ? ORDER BY position", (fid,)
            )
        )
        accesses = tuple(
            MemberAccess(*row)
            for row in self._conn.execute(
                "SELECT line, col, base_var, base_call, member, access, mask, condition FROM accesses "
                "WHERE function_id = ? ORDER BY line, col",
                (fid,),
            )
        )
        assignments = tuple(
            _assignment(row)
            for row in self._conn.execute(
                "SELECT line, operator, lhs_var, lhs_member, lhs_deref, rhs_expr, rhs_kind, rhs_callee, rhs_var, "
                "rhs_var_kind, rhs_member, condition FROM assignments WHERE function_id = ? ORDER BY line, id",
                (fid,),
            )
        )
        local_names = frozenset(
            name for (name,) in self._conn.execute("SELECT name FROM variables WHERE function_id = ?", (fid,))
        )
        return Body(definition, params, accesses, assignments, self._calls("c.function_id = ?", fid), local_names)

    def caller_of(self, call: Call) -> Definition | None:
        """The function or macro `call` is made in; None at file scope."""
        return next((d for d in self.definitions_named(call.caller or "") if d.id == call.function_id), None)

    @_memoized
    def call_sites(self, callee: str) -> tuple[Call, ...]:
        """Every call of `callee` by name, with its arguments and the calling function."""
        return self._calls("c.callee = ?", callee)

    @_memoized
    def file_scope_variables(self, name: str) -> tuple[Variable, ...]:
        rows = self._conn.execute(
            "SELECT function_id, file, line, name, type, storage, condition FROM variables "
            "WHERE name = ? AND function_id IS NULL ORDER BY file, line",
            (name,),
        )
        return tuple(Variable(*row) for row in rows)

    @_memoized
    def variable_uses(self, name: str) -> tuple[VariableUse, ...]:
        """Every place a variable called `name` is named outside declarations, whatever its kind: a local of
        the same name counts too (callers that want every use of a global may only over-count)."""
        rows = self._conn.execute(
            "SELECT f.name, u.file, u.line, u.condition FROM ("
            "  SELECT c.function_id, c.file, c.line, c.condition FROM call_args a JOIN calls c ON c.id = a.call_id"
            "  WHERE a.var = :name"
            "  UNION SELECT function_id, file, line, condition FROM accesses WHERE base_var = :name"
            "  UNION SELECT function_id, file, line, condition FROM assignments"
            "  WHERE lhs_var = :name OR rhs_var = :name"
            ") u LEFT JOIN functions f ON f.id = u.function_id ORDER BY u.file, u.line",
            {"name": name},
        )
        return tuple(VariableUse(*row) for row in rows)

    def _calls(self, where: str, value: object) -> tuple[Call, ...]:
        rows = self._conn.execute(
            "SELECT c.id, c.function_id, f.name, c.file, c.line, c.col, c.callee, c.callee_expr, c.result_use, "
            f"c.condition FROM calls c LEFT JOIN functions f ON f.id = c.function_id WHERE {where} "
            "ORDER BY c.file, c.line, c.col",
            (value,),
        ).fetchall()
        args: dict[int, list[CallArg]] = {row[0]: [] for row in rows}
        if args:
            marks = ", ".join("?" for _ in args)
            for call_id, *fields in self._conn.execute(
                "SELECT call_id, position, expr, var, var_kind, address_of, member, inner_call FROM call_args "
                f"WHERE call_id IN ({marks}) ORDER BY call_id, position",
                list(args),
            ):
                position, expr, var, var_kind, address_of, member, inner_call = fields
                args[call_id].append(CallArg(position, expr, var, var_kind, bool(address_of), member, inner_call))
        return tuple(Call(*row[1:], args=tuple(args[row[0]])) for row in rows)


def _definition(row: Any) -> Definition:
    *head, weak, return_type, macro_body, condition = row
    return Definition(*head, bool(weak), return_type, macro_body, condition)


def _assignment(row: Any) -> Assignment:
    line, operator, lhs_var, lhs_member, lhs_deref, *rest = row
    return Assignment(line, operator, lhs_var, lhs_member, bool(lhs_deref), *rest)
