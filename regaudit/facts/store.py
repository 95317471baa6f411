"""Writing the fact database: atomic replacement, per-file fact replacement, id allocation.

`FactStore` opens a *working copy* of the database (a fresh file, or a copy of the existing one)
next to the target; the caller commits with `publish()`, which fsyncs and renames it over the
target. A killed run leaves the previous database untouched (at worst a stray `.tmp-*` file, which
the next run removes). Inside `disposable_databases(directory)` (`regaudit check`'s scratch directory)
a database under that directory is written in place instead: it is removed with the directory, so
neither the copy nor the fsyncs that protect a database the user keeps are worth their time. A stage
that reads facts while it writes reads them through its FactStore's connection (`FactReader`), never
through a second connection to the target, which an in-place writer may hold locked.

Only this module, `facts.read` (the index's bookkeeping) and `facts.text_facts` (the text facts) write
fact tables.

It also owns opening a database for reading: `open_existing` refuses what regaudit did not write, and
`FactReader` is the connection the read views of later stages (`facts.*_facts`) hold.
"""

from __future__ import annotations

import contextlib
import fcntl
import operator
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import sqlite_utils

from regaudit.errors import BadInput
from regaudit.facts.schema import (
    CHILD_TABLES,
    DERIVED_TABLES,
    PER_FILE_TABLES,
    SCHEMA_VERSION,
    apply_migrations,
    schema_version,
)
from regaudit.parse.extract import FileFacts, Row

_ID_TABLES = {"functions": "function_id", "calls": "call_id", "structs": "struct_id"}
# FileFacts' tables in insertion order: a row's referenced ids are in tables written before it
_FACT_TABLES = (*_ID_TABLES, "params", "variables", "defines", "call_args", "accesses", "assignments", "bindings",
                "struct_members", "typedefs", "warnings")
_TEMP_PREFIX = ".regaudit-tmp-"
_LINK_TABLES = ("edges", "link_arches")
_DISPOSABLE: ContextVar[Path | None] = ContextVar("disposable_databases", default=None)


@contextlib.contextmanager
def disposable_databases(directory: Path) -> Iterator[None]:
    """Within the block, FactStore writes databases under `directory` in place (see the module docstring)."""
    token = _DISPOSABLE.set(directory.resolve())
    try:
        yield
    finally:
        _DISPOSABLE.reset(token)


def open_existing(path: Path) -> sqlite_utils.Database:
    """Open a database regaudit wrote, refusing anything else with one line."""
    if not path.is_file():
        raise BadInput(f"{path}: no such database")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        version = schema_version(conn)
        conn.execute("SELECT count(*) FROM runs").fetchone()
    except sqlite3.DatabaseError as err:
        raise BadInput(f"{path}: not a regaudit database ({err})") from err
    if version > SCHEMA_VERSION:
        raise BadInput(f"{path}: written by a newer regaudit (schema {version} > {SCHEMA_VERSION})")
    return sqlite_utils.Database(conn)


class FactReader:
    """A read-only connection to a fact database (`open_existing`), closed at the end of a `with` block: the
    base of the intent-level read views (ArchFacts, BridgeFacts, TextFacts). Given a connection instead (a
    FactStore's, to read the facts it is about to add to), it reads through that one and leaves it open."""

    def __init__(self, db: Path | sqlite3.Connection) -> None:
        self._owned = not isinstance(db, sqlite3.Connection)
        self._conn: sqlite3.Connection = open_existing(db).conn if not isinstance(db, sqlite3.Connection) else db

    def close(self) -> None:
        if self._owned:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class PackedFacts:
    """One file's facts in the writer's form: per table, the column names and a tuple per row. Built in
    the worker that parsed the file, because tuples cross the process boundary ~4x faster than dicts."""

    path: str
    parse_errors: int
    rewrites: int
    tables: dict[str, tuple[tuple[str, ...], list[tuple[object, ...]]]]

    def rows(self, table: str) -> list[Row]:
        """The rows of `table` as dicts, as extraction produced them."""
        columns, rows = self.tables.get(table, ((), []))
        return [dict(zip(columns, row, strict=True)) for row in rows]


def pack(facts: FileFacts) -> PackedFacts:
    tables = {}
    for table in _FACT_TABLES:
        rows = getattr(facts, table)
        if rows:
            columns = tuple(rows[0])
            values = operator.itemgetter(*columns)  # a tuple per row, built in C (one column: wrap the value)
            tables[table] = (columns, list(map(values, rows)) if len(columns) > 1 else [(values(r),) for r in rows])
    return PackedFacts(facts.path, facts.parse_errors, facts.rewrites, tables)


class FactStore:
    """A working copy of the fact database, published atomically."""

    def __init__(self, target: Path, *, bulk: bool = False) -> None:
        """`bulk`: the caller will insert most of the database anew (a cold index); secondary
        indexes are dropped now and rebuilt once at publish, instead of being updated row by row."""
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        # One writer per database: a second run waits, so it neither removes the first run's
        # working copy as a stray nor publishes over it.
        self._lock = open(target.parent / f".regaudit-lock-{target.name}", "w")  # noqa: SIM115 - held until publish
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        for stray in target.parent.glob(f"{_TEMP_PREFIX}{target.name}.*"):
            stray.unlink(missing_ok=True)  # left by a killed run
        scratch = _DISPOSABLE.get()
        self.durable = scratch is None or not target.resolve().is_relative_to(scratch)
        if self.durable:
            fd, name = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{target.name}.", dir=target.parent)
            os.close(fd)
            self.path = Path(name)
        else:
            self.path = target  # written in place
        if target.exists() and self.durable:
            _check_readable(target)
            shutil.copyfile(target, self.path)
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        # The working copy is disposable until published, so durability is bought once, at publish.
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.db = sqlite_utils.Database(self.conn)
        if schema_version(self.conn) > SCHEMA_VERSION:
            raise BadInput(f"{target}: written by a newer regaudit")
        apply_migrations(self.conn)
        self.conn.execute("BEGIN")
        self._next_id = {table: self._max_id(table) + 1 for table in _ID_TABLES}
        self._deferred_indexes: list[str] = []
        self.bulk = bulk
        if bulk:
            # Nothing is reused: empty every fact table at once (the run history in `runs` stays),
            # so no per-file delete is needed, then drop the secondary indexes until publish.
            for table in (*PER_FILE_TABLES, *CHILD_TABLES, *DERIVED_TABLES, "files", "warnings"):
                self.conn.execute(f"DELETE FROM {table}")
            for name, sql in self.conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                               "AND sql IS NOT NULL").fetchall():
                self._deferred_indexes.append(sql)
                self.conn.execute(f"DROP INDEX {name}")

    def _max_id(self, table: str) -> int:
        return self.conn.execute(f"SELECT coalesce(max(id), -1) FROM {table}").fetchone()[0]

    def forget_file(self, path: str) -> None:
        """Delete every fact of `path` (before re-inserting it, or when it left the tree)."""
        if self.bulk:
            return  # every fact table was emptied when the working copy was opened
        for child, (column, parent) in CHILD_TABLES.items():
            self.conn.execute(f"DELETE FROM {child} WHERE {column} IN (SELECT id FROM {parent} WHERE file = ?)",
                              (path,))
        for table in PER_FILE_TABLES:
            self.conn.execute(f"DELETE FROM {table} WHERE file = ?", (path,))
        self.conn.execute("DELETE FROM files WHERE path = ?", (path,))
        self.conn.execute("DELETE FROM warnings WHERE path = ?", (path,))

    def add_file(self, facts: PackedFacts, sha256: str, size: int, arch: str) -> None:
        """Insert one file's facts, their ids (and the ids they refer to) moved past the rows already stored."""
        self.forget_file(facts.path)
        offsets = {}
        for table in _ID_TABLES:
            offsets[table] = self._next_id[table]
            self._next_id[table] += len(facts.tables[table][1]) if table in facts.tables else 0
        ref_offsets = {column: offsets[table] for table, column in _ID_TABLES.items()}
        for table, (columns, rows) in facts.tables.items():
            shifts = {column: ref_offsets[column] for column in columns if column in ref_offsets}
            if table in _ID_TABLES:
                shifts["id"] = offsets[table]
            self._insert(table, columns, rows, shifts)
        self._insert("files", ("path", "sha256", "size", "arch", "parse_errors", "rewrites"),
                     [(facts.path, sha256, size, arch, facts.parse_errors, facts.rewrites)])

    def _insert(self, table: str, columns: tuple[str, ...], rows: list[tuple[object, ...]],
                shifts: dict[str, int] | None = None) -> None:
        """Bulk insert through one statement per table (sqlite3 caches it prepared by its text); `shifts`
        adds an offset to id columns in SQL (NULL stays NULL), bound after the row's own values. sqlite-utils'
        insert_all inspects every value (JSON detection) and rebuilds its query per batch: 20x slower on the
        ~700k fact rows of a tree, whose rows have fixed, plain columns."""
        shifts = shifts or {}
        extra = {column: len(columns) + number for number, column in enumerate(shifts, start=1)}
        values = [f"?{i} + ?{extra[column]}" if column in extra else f"?{i}"
                  for i, column in enumerate(columns, start=1)]
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(values)})"
        offsets = tuple(shifts.values())
        self.conn.executemany(sql, [(*row, *offsets) for row in rows] if offsets else rows)

    def add_warning(self, path: str, kind: str, message: str) -> None:
        self.conn.execute("INSERT INTO warnings (path, kind, message) VALUES (?, ?, ?)", (path, kind, message))

    def publish(self) -> None:
        """Commit, make the working copy durable (unless disposable), and rename it over the target."""
        for sql in self._deferred_indexes:
            self.conn.execute(sql)
        self.conn.execute("COMMIT")
        self.conn.execute("PRAGMA journal_mode = DELETE")
        self.conn.close()
        if not self.durable:
            self._lock.close()
            return
        with open(self.path, "rb+") as handle:
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.path, 0o666 & ~umask)  # mkstemp made it private; a database is an ordinary file
        os.replace(self.path, self.target)
        self._lock.close()
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.target.parent, os.O_RDONLY)
            os.fsync(dir_fd)
            os.close(dir_fd)

    def __enter__(self) -> FactStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        """Publish when the block finished, discard the working copy when it raised (Ctrl-C too)."""
        if exc_type is None:
            self.publish()
        else:
            self.discard()

    def invalidate_derived(self, *, keep_links: bool = False) -> None:
        """Facts changed: results of later stages (link edges) refer to rows that no longer exist.

        `keep_links` keeps the edges and their `link_arches` rows for an incremental link: the run the caller
        records then makes them stale (`link_facts.current_links`)."""
        kept = _LINK_TABLES if keep_links else ()
        for table in DERIVED_TABLES:  # created by the migrations applied when the copy was opened
            if table not in kept:
                self.conn.execute(f"DELETE FROM {table}")

    def discard(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()
        self.path.unlink(missing_ok=True)
        self._lock.close()


def _check_readable(path: Path) -> None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        conn.close()
    except sqlite3.DatabaseError as err:
        raise BadInput(f"{path}: exists but is not a SQLite database ({err}); refusing to overwrite it") from err
    if tables and "runs" not in tables:
        raise BadInput(f"{path}: is a SQLite database regaudit did not write; refusing to overwrite it")
