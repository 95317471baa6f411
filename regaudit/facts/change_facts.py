"""Every SQL statement of `regaudit check`'s comparison: a file's facts in a form two databases can compare.

Owns reading, for one file, its functions' facts with line numbers made relative to each function (a line
shift alone compares equal), the words their member paths and variables name, its bindings, and the
file-wide facts (structs, typedefs, defines, file-scope variables) as sets of rows without lines. It
decides nothing about which seeds a difference affects (that is `regaudit.patch.impact`).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from typing import Any

from regaudit.facts.cell_names import member_words

_FUNCTION_TABLES = ("params", "variables", "accesses", "assignments")
FILE_TABLES = {  # the facts of a file that matter to every seed, compared as sets of rows without lines
    "structs": "SELECT s.name, s.kind, s.condition, m.position, m.name, m.type, m.array_len, m.bits, m.anon_path, "
               "m.condition FROM structs s LEFT JOIN struct_members m ON m.struct_id = s.id WHERE s.file = ?",
    "typedefs": "SELECT name, type, condition FROM typedefs WHERE file = ?",
    "defines": "SELECT name, value, condition FROM defines WHERE file = ?",
    "globals": "SELECT name, type, storage, condition FROM variables WHERE file = ? AND function_id IS NULL",
}
_DROPPED_COLUMNS = frozenset({"id", "function_id", "call_id", "file", "col"})



Signature = tuple[str, set[str], int, int]  # a function's facts as text, the words they name, its first and last line


def has_file(conn: sqlite3.Connection, path: str) -> bool:
    return conn.execute("SELECT 1 FROM files WHERE path = ?", (path,)).fetchone() is not None


def file_rows(conn: sqlite3.Connection, table: str, path: str) -> list[tuple[Any, ...]]:
    """The rows of one of FILE_TABLES for the file, in a canonical order."""
    return sorted(conn.execute(FILE_TABLES[table], (path,)), key=repr)


def binding_rows(conn: sqlite3.Connection, path: str) -> set[tuple[Any, ...]]:
    """(field, struct type, target, holder, condition) of the file's function-pointer bindings."""
    sql = "SELECT field, struct_type, target, holder, condition FROM bindings WHERE file = ?"
    return set(conn.execute(sql, (path,)))


def function_signatures(conn: sqlite3.Connection, path: str) -> dict[tuple[str, int], Signature]:
    """(name, n-th definition of that name in the file) -> (its facts as text, each line number replaced by its
    rank among the function's lines, so lines added or removed elsewhere in it compare equal while the order
    of its facts (which a reassignment kill reads) does not; the words its member paths and variables name;
    its first and last line)."""
    signatures: dict[tuple[str, int], Signature] = {}
    seen: dict[str, int] = defaultdict(int)
    functions = conn.execute(
        "SELECT id, name, kind, line, end_line, storage, inline, weak, return_type, macro_body, condition "
        "FROM functions WHERE file = ? ORDER BY line", (path,))
    owned = {table: _file_rows(conn, table, path) for table in (*_FUNCTION_TABLES, "calls")}
    arguments = _file_rows(conn, "call_args", path)
    for function_id, name, kind, line, end_line, *rest in list(functions):
        tables = {table: owned[table].get(function_id, []) for table in _FUNCTION_TABLES}
        calls = owned["calls"].get(function_id, [])
        for call in calls:
            call["args"] = arguments.get(call.pop("id"), [])
        rows = [row for table_rows in (*tables.values(), calls) for row in table_rows]
        _rank_lines(rows, line)
        declared = {row["name"]: row["type"] for row in (*tables["params"], *tables["variables"])}
        words = _named_words([*rows, *(arg for call in calls for arg in call["args"])], declared)
        ordinal = seen[name]
        seen[name] += 1
        text = json.dumps([kind, *rest, tables, calls], sort_keys=True, default=str)
        signatures[(name, ordinal)] = (text, words, line, end_line)
    return signatures


def _file_rows(conn: sqlite3.Connection, table: str, path: str) -> dict[int, list[dict[str, Any]]]:
    """The rows of `table` owned by the functions of the file (call_args: by their calls), by owner id, in
    rowid order, without the columns that differ between two indexes of the same text (but a call's id)."""
    if table == "call_args":
        key, owners = "call_id", "SELECT c.id FROM calls c JOIN functions f ON f.id = c.function_id WHERE f.file = ?"
    else:
        key, owners = "function_id", "SELECT id FROM functions WHERE file = ?"
    cursor = conn.execute(f"SELECT * FROM {table} WHERE {key} IN ({owners}) ORDER BY rowid", (path,))
    columns = [description[0] for description in cursor.description]
    kept = [(index, column) for index, column in enumerate(columns)
            if column not in _DROPPED_COLUMNS or (table == "calls" and column == "id")]
    owner = columns.index(key)
    rows: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for values in cursor:
        row = {column: values[index] for index, column in kept}
        if "branches" in row:
            row["branches"] = json.loads(row["branches"])
        rows[values[owner]].append(row)
    return rows


def _rank_lines(rows: list[dict[str, Any]], start: int) -> None:
    """Replace the line numbers of the rows (and the jump targets of their guard clauses) by their rank."""
    lines = {start} | {row["line"] for row in rows if "line" in row}
    lines |= {exit_line for row in rows for _c, _h, *exits in row.get("branches", ()) for exit_line in exits
              if exit_line and exit_line > 0}
    rank = {line: index for index, line in enumerate(sorted(lines))}
    for row in rows:
        if "line" in row:
            row["line"] = rank[row["line"]]
        if "branches" in row:
            row["branches"] = [[c, h, *(rank[e] if e and e > 0 else e for e in exits)]
                               for c, h, *exits in row["branches"]]


def _named_words(rows: list[dict[str, Any]], declared: dict[str, str | None]) -> set[str]:
    """The cells the rows may read, as `regaudit.facts.cell_names` names them: the fields of their member paths
    (of `struct T *` variables the function declares, typed), and the variables they name that the function
    does not declare."""
    words: set[str] = set()
    for row in rows:
        for column, var in (("member", row.get("base_var") or row.get("var")), ("lhs_member", row.get("lhs_var")),
                            ("rhs_member", row.get("rhs_var"))):
            if row.get(column):
                words |= member_words(row[column], declared.get(var or ""))
        for column in ("var", "base_var", "lhs_var", "rhs_var"):
            if row.get(column) and row[column] not in declared:
                words.add(row[column])
    return words
