"""Every SQL statement of the propagation stage: one bulk read of the facts a points-to walk needs.

Owns the read of one architecture's program as the propagation sees it: definitions, their parameters
and declared variable types, call sites with their arguments and that arch's resolved callees, member
accesses and assignments, grouped by function so the walk works on dicts. It decides nothing about
what points to a frame (that is `regaudit.flow.propagate`).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from regaudit.errors import BadInput
from regaudit.facts.link_facts import member_types, typedef_types

# (condition text, holds, exit) the fact runs under, innermost first; `exit` is None except for a guard
# clause (`if (C) return;`): -1 for a return, a goto's label line, 0 for break/continue
Branches = tuple[tuple[str, bool, int | None], ...]


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


@dataclass
class FlowFacts:
    """One arch's facts, grouped for the propagation: every lookup is a dict access."""

    tree_path: str
    functions: dict[int, Function]
    params: dict[int, list[str | None]]  # function id -> parameter names by position
    var_types: dict[tuple[int | None, str], str]  # (function id or None for file scope, name) -> C type
    calls: dict[int, list[CallSite]] = field(default_factory=dict)  # by calling function
    callees: dict[int, list[int]] = field(default_factory=dict)  # call id -> function ids on this arch
    edge_guards: dict[tuple[int, int], str] = field(default_factory=dict)  # (call, callee) -> open guard, or ''
    accesses: dict[int, list[Access]] = field(default_factory=dict)  # by function
    assignments: dict[int, list[Assignment]] = field(default_factory=dict)  # by function
    member_types: dict[tuple[str, str], str] = field(default_factory=dict)  # (struct tag, member) -> C type
    typedefs: dict[str, str] = field(default_factory=dict)


def load_flow_facts(conn: sqlite3.Connection, arch: str, shared: FlowFacts | None = None) -> FlowFacts:
    """Everything the propagation over `arch` reads, in a handful of queries. BadInput if `arch` is not linked.

    `shared`: the arch-independent facts already loaded for another arch (`load_shared_facts`); only the
    arch's edges are read then.
    """
    if not conn.execute("SELECT 1 FROM link_arches WHERE arch = ?", (arch,)).fetchone():
        raise BadInput(f"arch {arch} is not linked in this database: run the link stage first")
    facts = replace(shared or load_shared_facts(conn), callees={}, edge_guards={})
    for call_id, callee_id, guard in conn.execute(
        "SELECT call_id, callee_id, condition FROM edges WHERE arch = ?", (arch,)
    ):
        facts.callees.setdefault(call_id, []).append(callee_id)
        facts.edge_guards[(call_id, callee_id)] = guard
    return facts


def load_shared_facts(conn: sqlite3.Connection) -> FlowFacts:
    """The facts every arch's propagation shares (all but the edges), grouped by function."""
    row = conn.execute("SELECT tree_path FROM runs WHERE stage = 'index' ORDER BY id DESC LIMIT 1").fetchone()
    facts = FlowFacts(tree_path=row[0] if row else "", functions=_functions(conn), params=_params(conn),
                      var_types=_var_types(conn), member_types=member_types(conn), typedefs=typedef_types(conn))
    facts.calls = _calls(conn)
    for access in _accesses(conn):
        facts.accesses.setdefault(access.function_id, []).append(access)
    for assignment in _assignments(conn):
        facts.assignments.setdefault(assignment.function_id, []).append(assignment)
    return facts


def functions_named(conn: sqlite3.Connection, name: str, file: str | None = None) -> list[int]:
    """Ids of the definitions called `name` (in `file` when given), in file order."""
    rows = conn.execute(
        "SELECT id FROM functions WHERE name = ? AND (? IS NULL OR file = ?) ORDER BY file, line", (name, file, file)
    )
    return [function_id for (function_id,) in rows]


def _functions(conn: sqlite3.Connection) -> dict[int, Function]:
    rows = conn.execute("SELECT id, name, kind, file, line, end_line, macro_body FROM functions")
    return {row[0]: Function(*row) for row in rows}


def _params(conn: sqlite3.Connection) -> dict[int, list[str | None]]:
    params: dict[int, list[str | None]] = defaultdict(list)
    for function_id, name in conn.execute("SELECT function_id, name FROM params ORDER BY function_id, position"):
        params[function_id].append(name)
    return dict(params)


def _var_types(conn: sqlite3.Connection) -> dict[tuple[int | None, str], str]:
    rows = conn.execute(
        "SELECT function_id, name, type FROM params WHERE name IS NOT NULL AND type IS NOT NULL "
        "UNION ALL SELECT function_id, name, type FROM variables"
    )
    return {(function_id, name): type_text for function_id, name, type_text in rows}


def _calls(conn: sqlite3.Connection) -> dict[int, list[CallSite]]:
    args: dict[int, list[Argument]] = defaultdict(list)
    for call_id, *rest in conn.execute(
        "SELECT call_id, position, var, var_kind, address_of, member, inner_call FROM call_args "
        "ORDER BY call_id, position"
    ):
        position, var, var_kind, address_of, member, inner_call = rest
        args[call_id].append(Argument(position, var, var_kind, bool(address_of), member, inner_call))
    calls: dict[int, list[CallSite]] = defaultdict(list)
    for row in conn.execute(
        "SELECT id, function_id, file, line, callee, callee_expr, result_use, condition, branches FROM calls "
        "WHERE function_id IS NOT NULL ORDER BY id"
    ):
        *columns, branches = row
        calls[row[1]].append(CallSite(*columns, args=tuple(args.get(row[0], ())), branches=_branches(branches)))
    return dict(calls)


def _accesses(conn: sqlite3.Connection) -> list[Access]:
    rows = conn.execute(
        "SELECT id, function_id, file, line, base_var, base_var_kind, base_call, member, access, mask, condition, "
        "branches FROM accesses WHERE function_id IS NOT NULL ORDER BY id"
    )
    return [Access(*columns, branches=_branches(branches)) for *columns, branches in rows]


def _assignments(conn: sqlite3.Connection) -> list[Assignment]:
    rows = conn.execute(
        "SELECT function_id, line, lhs_var, lhs_var_kind, lhs_member, lhs_deref, rhs_kind, rhs_callee, rhs_var, "
        "rhs_var_kind, rhs_member, cast_type, branches FROM assignments WHERE function_id IS NOT NULL "
        "AND operator = '=' ORDER BY id"
    )
    return [Assignment(f, line, lv, lk, lm, bool(ld), *rest, branches=_branches(branches))
            for f, line, lv, lk, lm, ld, *rest, branches in rows]


def _branches(column: str) -> Branches:
    if column == "[]":
        return ()
    return tuple((item[0], bool(item[1]), item[2] if len(item) > 2 else None) for item in json.loads(column))
