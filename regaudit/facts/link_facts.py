"""Every SQL statement of the link stage: the facts it resolves and the `edges` it writes.

Owns bulk reads of definitions (functions and function-like macros with their file's arch), call
sites (by name and through a function-pointer field), the names each function declares (parameters
and locals, which shadow global definitions), field bindings, and the replacement of one arch's
edges plus the `runs` / `link_arches` rows of a link run. Each read returns the whole table as small
records in one query, so the linker resolves with dicts instead of one query per call. It decides
nothing about which definition an architecture uses (that is `regaudit.flow.link`).

Also owns what an incremental link reads: what some files hold (`TouchedFacts`, taken by the index
stage before it replaces them, into `IndexChanges`), the calls a change of them can alter, the index
runs since an arch was linked, and the patching of one arch's edges in place.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple


class DefinitionRow(NamedTuple):
    """A function or function-like macro (kind 'macro') a call may resolve to. The rows the link reads by the
    hundred thousand are named tuples: a frozen dataclass costs several times more to build."""

    id: int
    name: str
    kind: str
    file: str
    storage: str  # 'static', 'extern' or 'macro'
    weak: bool
    condition: str


class DirectCall(NamedTuple):
    """`name(...)`: a call whose callee is a plain identifier."""

    id: int
    function_id: int | None
    file: str
    callee: str
    condition: str


class FieldCall(NamedTuple):
    """`base->a.b(...)`: a call through a function-pointer member."""

    id: int
    function_id: int | None
    file: str
    member: str  # the member path called, 'entry_handler' or 'ops.func'
    base_type: str | None  # declared type of the base variable when the index knows it
    condition: str


class Binding(NamedTuple):
    """A function name stored into a struct field: `.func = f` or `x->fp.entry_handler = f`."""

    file: str
    line: int
    struct_type: str | None
    field: str
    target: str
    condition: str


class Edge(NamedTuple):
    arch: str
    call_id: int
    caller_id: int | None
    callee_id: int
    kind: str  # 'direct', 'macro', 'weak' or 'pointer'
    condition: str


@dataclass(frozen=True)
class EdgeView:
    """An edge as a reader checks it: who calls whom, where."""

    arch: str
    caller: str  # '' for a call at file scope
    call_file: str
    call_line: int
    callee: str
    callee_file: str
    callee_line: int
    kind: str
    condition: str


@dataclass(frozen=True)
class IndexRun:
    """The index run whose facts a link run resolves."""

    tree_path: str
    kernel_version: str
    query_hash: str
    prefilter: str


@dataclass(frozen=True)
class TouchedFacts:
    """What some files hold that the link stage resolves against."""

    names: frozenset[str]  # functions and function-like macros: a call of such a name may resolve there
    macros: frozenset[tuple[str, str, str]]  # (name, file, condition) of every macro, function-like or not:
    # what `BuildConfig` answers `defined(name)` from
    call_sites: frozenset[tuple[str, str, int]]  # (file, condition, how many) of the calls the link resolves
    bound_fields: frozenset[str]  # the field paths of the bindings: a call through such a field may reach
    # another function
    types: tuple[tuple[str | None, ...], ...]  # typedef and struct member rows, in file order without lines: what
    # names the struct holding a called field


@dataclass(frozen=True)
class IndexChanges:
    """What one index run changed, for relinking only what it can affect (`regaudit.flow.link`)."""

    run_id: int  # runs.id of the index run
    touched: frozenset[str]  # every path the run was given, C or not, changed, removed or left out
    before: TouchedFacts  # what the touched files held before the run


def touched_facts(conn: sqlite3.Connection, paths: Iterable[str]) -> TouchedFacts:
    """What `paths` hold now."""
    files = json.dumps(sorted(paths))
    names = conn.execute("SELECT DISTINCT name FROM functions WHERE file IN (SELECT value FROM json_each(?))",
                         (files,))
    macros = conn.execute(
        "SELECT name, file, condition FROM functions WHERE kind = 'macro' AND file IN (SELECT value FROM json_each(?)) "
        "UNION SELECT name, file, condition FROM defines WHERE file IN (SELECT value FROM json_each(?))",
        (files, files),
    )
    call_sites = conn.execute(
        "SELECT file, condition, count(*) FROM calls WHERE file IN (SELECT value FROM json_each(?)) "
        "AND (callee IS NOT NULL OR callee_member IS NOT NULL) GROUP BY file, condition",
        (files,),
    )
    bound = conn.execute("SELECT DISTINCT field FROM bindings WHERE file IN (SELECT value FROM json_each(?))",
                         (files,))
    types = conn.execute(
        "SELECT * FROM (SELECT file, line, 0 AS position, 'typedef', name, NULL, type FROM typedefs "
        "WHERE file IN (SELECT value FROM json_each(?)) UNION ALL "
        "SELECT s.file, s.line, m.position, 'member', s.name, m.name, m.type FROM struct_members m JOIN structs s "
        "ON s.id = m.struct_id WHERE s.file IN (SELECT value FROM json_each(?))) ORDER BY file, line, position",
        (files, files),
    )
    return TouchedFacts(frozenset(name for (name,) in names), frozenset(macros), frozenset(call_sites),
                        frozenset(field for (field,) in bound), tuple(row[3:] for row in types))


def definitions(conn: sqlite3.Connection) -> list[DefinitionRow]:
    rows = conn.execute("SELECT id, name, kind, file, storage, weak, condition FROM functions ORDER BY id")
    return [DefinitionRow(i, name, kind, file, storage, bool(weak), cond) for i, name, kind, file, storage, weak, cond
            in rows]


def direct_calls(conn: sqlite3.Connection) -> list[DirectCall]:
    rows = conn.execute("SELECT id, function_id, file, callee, condition FROM calls WHERE callee IS NOT NULL")
    return list(map(DirectCall._make, rows))


def calls_reaching(conn: sqlite3.Connection, arch: str, paths: Iterable[str], names: Iterable[str]) -> list[DirectCall]:
    """`name(...)` calls whose resolution on `arch` a change of `paths` can alter: the calls in those files, the
    calls of `names`, and the calls with an edge to a definition that no longer exists."""
    rows = conn.execute(
        "SELECT id, function_id, file, callee, condition FROM calls WHERE callee IS NOT NULL AND ("
        "file IN (SELECT value FROM json_each(?)) OR callee IN (SELECT value FROM json_each(?)) "
        "OR id IN (SELECT call_id FROM edges WHERE arch = ? AND callee_id NOT IN (SELECT id FROM functions)))",
        (json.dumps(sorted(paths)), json.dumps(sorted(names)), arch),
    )
    return list(map(DirectCall._make, rows))


def guards_test(conn: sqlite3.Connection, names: Iterable[str]) -> bool:
    """Whether a guard the link stage evaluates (of a call, a definition, a binding or a macro) may test one of
    `names` (a whole-word mention: conservative)."""
    for name in names:
        pattern = re.compile(rf"\b{re.escape(name)}\b")
        for table in ("calls", "functions", "bindings", "defines"):
            rows = conn.execute(f"SELECT DISTINCT condition FROM {table} WHERE instr(condition, ?) > 0", (name,))
            if any(pattern.search(condition) for (condition,) in rows):
                return True
    return False


def field_calls(conn: sqlite3.Connection) -> list[FieldCall]:
    rows = conn.execute(
        "SELECT id, function_id, file, callee_member, callee_base_type, condition FROM calls "
        "WHERE callee IS NULL AND callee_member IS NOT NULL"
    )
    return list(map(FieldCall._make, rows))


def bindings(conn: sqlite3.Connection) -> list[Binding]:
    rows = conn.execute("SELECT file, line, struct_type, field, target, condition FROM bindings")
    return list(map(Binding._make, rows))


def typedef_types(conn: sqlite3.Connection) -> dict[str, str]:
    """Typedef name → C text of its type ('struct _kdbtab'; 'struct' for an anonymous struct), first one wins."""
    types: dict[str, str] = {}
    for name, type_text in conn.execute("SELECT name, type FROM typedefs ORDER BY file, line"):
        types.setdefault(name, type_text)
    return types


def member_types(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    """(struct tag, member name) → the member's C type, for named structs; the first definition wins."""
    rows = conn.execute(
        "SELECT s.name, m.name, m.type FROM struct_members m JOIN structs s ON s.id = m.struct_id "
        "WHERE s.name IS NOT NULL AND m.name IS NOT NULL ORDER BY s.file, s.line, m.position"
    )
    types: dict[tuple[str, str], str] = {}
    for struct, member, type_text in rows:
        types.setdefault((struct, member), type_text)
    return types


def local_names(conn: sqlite3.Connection, functions: Iterable[int] | None = None) -> set[tuple[int, str]]:
    """(function_id, name) of every parameter and local variable (of `functions` when given): a call of such a
    name is a pointer call."""
    if functions is None:
        rows = conn.execute(
            "SELECT function_id, name FROM params WHERE name IS NOT NULL "
            "UNION SELECT function_id, name FROM variables WHERE function_id IS NOT NULL"
        )
        return set(rows)
    ids = json.dumps(sorted(functions))
    rows = conn.execute(
        "SELECT function_id, name FROM params WHERE name IS NOT NULL AND function_id IN "
        "(SELECT value FROM json_each(?)) "
        "UNION SELECT function_id, name FROM variables WHERE function_id IN (SELECT value FROM json_each(?))",
        (ids, ids),
    )
    return set(rows)


def latest_index_run(conn: sqlite3.Connection) -> IndexRun | None:
    row = conn.execute(
        "SELECT tree_path, kernel_version, query_hash, prefilter FROM runs "
        "WHERE stage = 'index' AND finished IS NOT NULL ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return IndexRun(*row) if row else None


def start_link_run(conn: sqlite3.Connection, index: IndexRun, tool_version: str, started: str) -> int:
    """Insert the link run's `runs` row (the index's tree, version and query hash: the facts it linked)."""
    cursor = conn.execute(
        "INSERT INTO runs (stage, tool_version, tree_path, kernel_version, started, query_hash, prefilter) "
        "VALUES ('link', ?, ?, ?, ?, ?, ?)",
        (tool_version, index.tree_path, index.kernel_version, started, index.query_hash, index.prefilter),
    )
    return int(cursor.lastrowid or 0)


def finish_link_run(conn: sqlite3.Connection, run_id: int, finished: str) -> None:
    conn.execute("UPDATE runs SET finished = ? WHERE id = ?", (finished, run_id))


@dataclass(frozen=True)
class LinkedArch:
    """An arch's `link_arches` row: the link run that wrote its edges and how many calls its program had."""

    run_id: int
    calls: int


def linked_arch(conn: sqlite3.Connection, arch: str) -> LinkedArch | None:
    """How `arch` was last linked, None when it never was."""
    row = conn.execute("SELECT run_id, calls FROM link_arches WHERE arch = ?", (arch,)).fetchone()
    return LinkedArch(*row) if row else None


def index_runs_since(conn: sqlite3.Connection, run_id: int) -> list[int]:
    """The index runs after run `run_id` that changed facts (parsed or removed a file), oldest first."""
    rows = conn.execute("SELECT id FROM runs WHERE stage = 'index' AND id > ? AND (files_parsed > 0 OR "
                        "files_removed > 0) ORDER BY id", (run_id,))
    return [run for (run,) in rows]


def update_edges(
    conn: sqlite3.Connection, run_id: int, arch: str, recomputed: Iterable[int], edges: Iterable[Edge], calls: int
) -> tuple[int, int]:
    """Patch `arch`'s edges in place: drop those of the `recomputed` calls and of calls that no longer exist,
    add `edges` (those calls' new ones), and record the arch's summary; returns (resolved calls, edges)."""
    conn.execute(
        "DELETE FROM edges WHERE arch = ? AND (call_id IN (SELECT value FROM json_each(?)) "
        "OR call_id NOT IN (SELECT id FROM calls))",
        (arch, json.dumps(sorted(recomputed))),
    )
    _insert_edges(conn, edges)
    count, resolved = conn.execute(
        "SELECT count(*), count(DISTINCT call_id) FROM edges WHERE arch = ?", (arch,)
    ).fetchone()
    return _record_summary(conn, run_id, arch, calls, resolved, count)


def replace_edges(
    conn: sqlite3.Connection, run_id: int, arch: str, edges: Sequence[Edge], calls: int
) -> tuple[int, int]:
    """Replace every edge of `arch` by `edges` and record the arch's summary; returns (resolved calls, edges).
    Counted from `edges`, not from the table: the link may have deferred its indexes."""
    conn.execute("DELETE FROM edges WHERE arch = ?", (arch,))
    _insert_edges(conn, edges)
    return _record_summary(conn, run_id, arch, calls, len({edge.call_id for edge in edges}), len(edges))


def _insert_edges(conn: sqlite3.Connection, edges: Iterable[Edge]) -> None:
    conn.executemany(
        "INSERT INTO edges (arch, call_id, caller_id, callee_id, kind, condition) VALUES (?, ?, ?, ?, ?, ?)",
        ((e.arch, e.call_id, e.caller_id, e.callee_id, e.kind, e.condition) for e in edges),
    )


def _record_summary(
    conn: sqlite3.Connection, run_id: int, arch: str, calls: int, resolved: int, count: int
) -> tuple[int, int]:
    conn.execute("DELETE FROM link_arches WHERE arch = ?", (arch,))
    conn.execute(
        "INSERT INTO link_arches (arch, run_id, calls, resolved_calls, edges) VALUES (?, ?, ?, ?, ?)",
        (arch, run_id, calls, resolved, count),
    )
    return int(resolved), int(count)


def edges_of(conn: sqlite3.Connection, arch: str) -> list[EdgeView]:
    """Every edge of `arch` with the names and places a reader checks it by, in call order."""
    rows = conn.execute(
        "SELECT e.arch, coalesce(caller.name, ''), c.file, c.line, callee.name, callee.file, callee.line, e.kind, "
        "e.condition FROM edges e JOIN calls c ON c.id = e.call_id JOIN functions callee ON callee.id = e.callee_id "
        "LEFT JOIN functions caller ON caller.id = e.caller_id WHERE e.arch = ? "
        "ORDER BY c.file, c.line, c.col, callee.file, callee.line",
        (arch,),
    )
    return [EdgeView(*row) for row in rows]


def current_links(conn: sqlite3.Connection) -> list[str]:
    """Arches whose edges are newer than the facts: linked after the last index run that changed any file.

    The index stage renumbers the calls of a file it re-parses, so edges linked before it are stale.
    """
    rows = conn.execute(
        "SELECT arch FROM link_arches WHERE run_id > (SELECT coalesce(max(id), 0) FROM runs "
        "WHERE stage = 'index' AND (files_parsed > 0 OR files_removed > 0)) ORDER BY arch"
    )
    return [arch for (arch,) in rows]
