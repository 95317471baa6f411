"""The text-fact tables of the fact database: `header_defines` and `bpf_proto_definitions` (schema
migration 6, rows from `regaudit.parse.text_scan`).

Owns every SQL statement on them: the index stage replaces all their rows (`clear`, then `insert` into its
workers' FactBuffers, which the store merges) or those of the files a patch touched (`replace_files`);
`TextFacts` answers the frame oracle (the values of a constant in an arch's and the generic headers) and the
BPF helper walk (the .c files defining a proto or a func_proto function). Rows cover every file of their
kind, parsed or not, and ignore `#if` guards.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from regaudit.facts.schema import TEXT_TABLES
from regaudit.facts.store import FactReader
from regaudit.parse.text_scan import TextScan


def clear(conn: sqlite3.Connection) -> None:
    """Drop every text fact: the index stage then adds the whole tree's (`insert`, through FactBuffers)."""
    for table in TEXT_TABLES:
        conn.execute(f"DELETE FROM {table}")


def replace_files(conn: sqlite3.Connection, paths: Iterable[str], scanned: TextScan) -> None:
    """Drop the rows of `paths` (touched or removed files), then add `scanned`, their new facts.

    One scan of each table for all paths: `header_defines` has no index on `file` (it would be half the
    table's size for the few files a patch touches)."""
    listed = json.dumps(list(paths))
    for table in TEXT_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE file IN (SELECT value FROM json_each(?))", (listed,))
    insert(conn, scanned)


def insert(conn: sqlite3.Connection, scanned: TextScan) -> None:
    """Add `scanned` (of files that have no rows in `conn`)."""
    conn.executemany("INSERT INTO header_defines (file, arch, line, name, value) VALUES (?, ?, ?, ?, ?)",
                     scanned.defines)
    conn.executemany("INSERT INTO bpf_proto_definitions (file, line, name, kind) VALUES (?, ?, ?, ?)",
                     scanned.protos)


class TextFacts(FactReader):
    """Read-only view of the text-fact tables of one database; header lookups are cached, so ask freely."""

    def __init__(self, db_path: Path) -> None:
        super().__init__(db_path)
        self._defines: dict[tuple[str, str], tuple[str, ...]] = {}

    def header_define_values(self, arch: str, name: str) -> tuple[str, ...]:
        """The distinct values of `#define name` in arch/<arch>/include/ then include/, first seen first."""
        key = (arch, name)
        if key not in self._defines:
            rows = self._conn.execute(
                "SELECT value FROM header_defines WHERE name = ? AND arch IN (?, 'generic') "
                "ORDER BY arch = 'generic', file, line",
                (name, arch),
            )
            self._defines[key] = tuple(dict.fromkeys(value for (value,) in rows))
        return self._defines[key]

    def proto_files(self, name: str, kind: str) -> tuple[str, ...]:
        """The .c files defining `name` as a proto ('variable') or func_proto ('function'), once per definition."""
        rows = self._conn.execute(
            "SELECT file FROM bpf_proto_definitions WHERE name = ? AND kind = ? ORDER BY file, line", (name, kind)
        )
        return tuple(file for (file,) in rows)
