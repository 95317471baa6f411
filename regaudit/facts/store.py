"""Writing the fact database: atomic replacement, per-file fact replacement, id allocation, fact buffers.

`FactStore` opens a *working copy* of the database (a fresh file, or a copy of the existing one)
next to the target; the caller commits with `publish()`, which fsyncs and renames it over the
target. A killed run leaves the previous database untouched (at worst a stray `.tmp-*` file, which
the next run removes). Inside `disposable_databases(directory)` (`regaudit check`'s scratch directory)
a database under that directory is written in place instead: it is removed with the directory, so
neither the copy nor the fsyncs that protect a database the user keeps are worth their time. A stage
that reads facts while it writes reads them through its FactStore's connection (`FactReader`), never
through a second connection to the target, which an in-place writer may hold locked.

`amended(target)` is the other way to write: one transaction on the database itself, for a stage that adds a
few rows (an audit's results) and would spend more copying the database than writing them. SQLite's rollback
journal makes it all or nothing; the transaction of a killed writer is rolled back by the next `open_existing`
or FactStore, before anything reads or copies the file.

Parsed files' facts do not go through the store's connection: each process that parses writes them into its
own `FactBuffer` (a scratch SQLite file beside the working copy, numbering ids on its own), and the store
takes every buffer's rows over in SQL (`merge_buffers`), renumbering the ids past its own.

Only this module, `facts.read` (the index's bookkeeping) and `facts.text_facts` (the text facts) write
fact tables.

It also owns opening a database for reading: `open_existing` refuses what regaudit did not write, and
`FactReader` is the connection the read views of later stages (`facts.*_facts`) hold.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import operator
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TextIO

import sqlite_utils

from regaudit.errors import BadInput
from regaudit.facts.schema import (
    CHILD_TABLES,
    DERIVED_TABLES,
    PER_FILE_TABLES,
    SCHEMA_VERSION,
    TEXT_TABLES,
    apply_migrations,
    schema_version,
)
from regaudit.parse.extract import FileFacts

_ID_TABLES = {"functions": "function_id", "calls": "call_id", "structs": "struct_id"}
# FileFacts' tables in insertion order: a row's referenced ids are in tables written before it
_FACT_TABLES = (*_ID_TABLES, "params", "variables", "defines", "call_args", "accesses", "assignments", "bindings",
                "struct_members", "typedefs", "warnings")
# What a FactBuffer holds: parsed files' facts and `files` rows, and text facts
_BUFFERED_TABLES = (*_FACT_TABLES, "files", *TEXT_TABLES)
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


def written_in_place(target: Path) -> bool:
    """Whether a FactStore of `target` writes it in place (inside `disposable_databases`) instead of a working copy."""
    scratch = _DISPOSABLE.get()
    return scratch is not None and target.resolve().is_relative_to(scratch)


@contextlib.contextmanager
def amended(target: Path) -> Iterator[sqlite3.Connection]:
    """One transaction on the database `target` itself, for a stage that adds a few rows to it (an audit's results):
    SQLite's rollback journal makes it all or nothing even if the process is killed, where a FactStore's copy of
    the whole database would cost more than the rows. Waits for any FactStore or amendment of `target` to end."""
    if not target.is_file():
        raise BadInput(f"{target}: no such database")
    with _writer_lock(target):
        _check_readable(target)
        conn = sqlite3.connect(target, isolation_level=None)
        try:
            _migrate(conn, target)
            if written_in_place(target):  # a disposable database: rollback is all it needs from the journal
                conn.execute("PRAGMA journal_mode = MEMORY")
                conn.execute("PRAGMA synchronous = OFF")
            with _immediate_transaction(conn):
                yield conn
        finally:
            conn.close()


@contextlib.contextmanager
def _immediate_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`conn` inside one transaction that takes the write lock first (IMMEDIATE): two transactions that read before
    they write would deadlock, each holding the read lock the other's write waits for. Rolled back if the block
    raises (Ctrl-C too)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _migrate(conn: sqlite3.Connection, target: Path) -> None:
    """Bring a database this regaudit writes to its schema; BadInput for one a newer regaudit wrote."""
    if schema_version(conn) > SCHEMA_VERSION:
        raise BadInput(f"{target}: written by a newer regaudit")
    apply_migrations(conn)


def _writer_lock(target: Path) -> TextIO:
    """The lock file every writer of `target` holds (FactStore until it publishes, `amended` for its transaction):
    a second writer waits, so it neither removes the first one's working copy as a stray nor writes over it."""
    lock = open(target.parent / f".regaudit-lock-{target.name}", "w")  # noqa: SIM115 - the caller closes it
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def _roll_back_interrupted(path: Path) -> None:
    """Roll back the transaction of a writer killed inside `amended` (its journal is left beside the database): a
    read-only connection cannot, and a copy of the file alone would hold half of that transaction."""
    if Path(f"{path}-journal").exists():
        conn = sqlite3.connect(path)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()


def open_existing(path: Path) -> sqlite_utils.Database:
    """Open a database regaudit wrote, refusing anything else with one line."""
    if not path.is_file():
        raise BadInput(f"{path}: no such database")
    try:
        _roll_back_interrupted(path)
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


def _tuples(facts: FileFacts) -> dict[str, tuple[tuple[str, ...], list[tuple[object, ...]]]]:
    """One file's facts in the writer's form: per table, the column names and a tuple per row."""
    tables = {}
    for table in _FACT_TABLES:
        rows = getattr(facts, table)
        if rows:
            columns = tuple(rows[0])
            values = operator.itemgetter(*columns)  # a tuple per row, built in C (one column: wrap the value)
            tables[table] = (columns, list(map(values, rows)) if len(columns) > 1 else [(values(r),) for r in rows])
    return tables


@dataclass(frozen=True)
class BufferSpec:
    """Where a process opens its FactBuffer for a FactStore, and the fact tables to create there: picklable, so
    the index hands it to its worker processes."""

    prefix: str  # a buffer's path is the prefix and the process id
    tables: tuple[str, ...]  # CREATE TABLE statements

    def open(self) -> FactBuffer:
        return FactBuffer(Path(f"{self.prefix}{os.getpid()}"), self.tables)


class FactBuffer:
    """One process's scratch database of the facts of the files it parsed, which `FactStore.merge_buffers` moves
    into the working copy with one INSERT ... SELECT per table, in SQLite's C.

    The index's worker processes write their files' rows here themselves. Pickling the rows to the one
    writing process and inserting them there through `executemany` costs that process more CPU than the
    workers spend writing them here (measured on 7.3: ~3.5 s against ~2 s, and the merge ~0.5 s)."""

    def __init__(self, path: Path, tables: tuple[str, ...]) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = OFF")  # scratch: the working copy is what gets published
        self.conn.execute("PRAGMA synchronous = OFF")
        for sql in tables:
            self.conn.execute(sql)
        self._next_id = dict.fromkeys(_ID_TABLES, 0)

    def add(self, facts: FileFacts, sha256: str, size: int, arch: str) -> None:
        """One file's facts and `files` row, their ids (and the ids they refer to) moved past this buffer's
        rows; committed, so that the writer can merge the buffer between any two files."""
        tables = _tuples(facts)
        offsets = {}
        for table in _ID_TABLES:
            offsets[table] = self._next_id[table]
            self._next_id[table] += len(tables[table][1]) if table in tables else 0
        ref_offsets = {column: offsets[table] for table, column in _ID_TABLES.items()}
        with self.transaction():
            for table, (columns, rows) in tables.items():
                shifts = {column: ref_offsets[column] for column in columns if column in ref_offsets}
                if table in _ID_TABLES:
                    shifts["id"] = offsets[table]
                self._insert(table, columns, rows, shifts)
            self._insert("files", ("path", "sha256", "size", "arch", "parse_errors", "rewrites"),
                         [(facts.path, sha256, size, arch, facts.parse_errors, facts.rewrites)], {})

    def _insert(self, table: str, columns: tuple[str, ...], rows: list[tuple[object, ...]],
                shifts: dict[str, int]) -> None:
        """Bulk insert through one statement per table (sqlite3 caches it prepared by its text); `shifts`
        adds an offset to id columns in SQL (NULL stays NULL), bound after the row's own values. sqlite-utils'
        insert_all inspects every value (JSON detection) and rebuilds its query per batch: 20x slower on the
        ~700k fact rows of a tree, whose rows have fixed, plain columns."""
        extra = {column: len(columns) + number for number, column in enumerate(shifts, start=1)}
        values = [f"?{i} + ?{extra[column]}" if column in extra else f"?{i}"
                  for i, column in enumerate(columns, start=1)]
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(values)})"
        offsets = tuple(shifts.values())
        self.conn.executemany(sql, [(*row, *offsets) for row in rows] if offsets else rows)

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """The buffer's connection inside one transaction (also for rows other modules own: text facts), which
        takes the write lock first, as `merge_buffers` does (see `_immediate_transaction`)."""
        return _immediate_transaction(self.conn)

    def close(self) -> None:
        self.conn.close()


class FactStore:
    """A working copy of the fact database, published atomically."""

    def __init__(self, target: Path, *, bulk: bool = False) -> None:
        """`bulk`: the caller will insert most of the database anew (a cold index); secondary
        indexes are dropped now and rebuilt once at publish, instead of being updated row by row."""
        self.target = target
        self._buffer_name = f"{_TEMP_PREFIX}{target.name}.buffer-"  # and the process id (BufferSpec)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _writer_lock(target)  # held until publish or discard
        for stray in target.parent.glob(f"{_TEMP_PREFIX}{target.name}.*"):
            stray.unlink(missing_ok=True)  # left by a killed run
        self.durable = not written_in_place(target)
        if self.durable:
            fd, name = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{target.name}.", dir=target.parent)
            os.close(fd)
            self.path = Path(name)
        else:
            self.path = target  # written in place
        # What the working copy started from, for other processes to read while this store writes it.
        self.snapshot: Path | None = None
        if target.exists() and self.durable:
            _check_readable(target)  # and a transaction a killed `amended` left is rolled back: the copy is whole
            shutil.copyfile(target, self.path)
            self.snapshot = target
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        # The working copy is disposable until published, so durability is bought once, at publish.
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.db = sqlite_utils.Database(self.conn)
        _migrate(self.conn, target)
        self.conn.execute("BEGIN")
        self._next_id = {table: self._max_id(table) + 1 for table in _ID_TABLES}
        self._deferred_indexes: list[str] = []
        self.bulk = bulk
        if bulk:
            # Nothing is reused: empty every fact table at once (the run history in `runs` stays),
            # so no per-file delete is needed, then drop the secondary indexes until publish.
            for table in (*PER_FILE_TABLES, *CHILD_TABLES, *DERIVED_TABLES, "files", "warnings"):
                self.conn.execute(f"DELETE FROM {table}")
            self.defer_indexes()

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

    @property
    def buffers(self) -> BufferSpec:
        """Where processes writing facts for this store open their FactBuffer."""
        tables = tuple(sql for (sql,) in self.conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name IN (SELECT value FROM json_each(?))",
            (json.dumps([*_BUFFERED_TABLES]),)))
        return BufferSpec(str(self.target.parent / self._buffer_name), tables)

    def merge_buffers(self) -> None:
        """Move every row of this store's FactBuffers into the working copy, ids shifted past the rows already
        stored, and leave the buffers empty. Facts that replace a file's must come after `forget_file`. The
        buffers' processes may go on writing meanwhile: a file's rows are one transaction, which a merge waits for
        or precedes."""
        for buffer in self._buffer_paths():
            self.conn.execute("COMMIT")  # a database cannot be detached inside a transaction
            self.conn.execute("ATTACH DATABASE ? AS buffer", (str(buffer),))
            self.conn.execute("PRAGMA buffer.journal_mode = OFF")
            self.conn.execute("BEGIN IMMEDIATE")  # waits while the buffer's process writes a file (see transaction)
            shifts = {}  # by id column ('function_id', ...): what to add to the buffer's ids
            for table, column in _ID_TABLES.items():
                low, high = self.conn.execute(f"SELECT min(id), max(id) FROM buffer.{table}").fetchone()
                if low is not None:
                    shifts[column] = self._next_id[table] - low
                    self._next_id[table] += high - low + 1
            for table in _BUFFERED_TABLES:
                columns = [column for (column,) in self.conn.execute("SELECT name FROM pragma_table_info(?)", (table,))
                           if column != "id" or table in _ID_TABLES]  # other tables number their rows anew
                values = []
                for column in columns:
                    id_column = _ID_TABLES[table] if column == "id" else column
                    values.append(f"{column} + {shifts[id_column]}" if id_column in shifts else column)
                self.conn.execute(f"INSERT INTO main.{table} ({', '.join(columns)}) "
                                  f"SELECT {', '.join(values)} FROM buffer.{table}")
                self.conn.execute(f"DELETE FROM buffer.{table}")
            self.conn.execute("COMMIT")
            self.conn.execute("DETACH DATABASE buffer")
            self.conn.execute("BEGIN")

    def defer_indexes(self, table: str | None = None) -> None:
        """Drop the secondary indexes of `table` (default: of every table) until `build_indexes`, for a caller about
        to insert most of its rows: one sort builds an index faster than row-by-row updates."""
        for name, sql in self.conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT "
                                           "NULL AND tbl_name = coalesce(?, tbl_name)", (table,)).fetchall():
            self._deferred_indexes.append(sql)
            self.conn.execute(f"DROP INDEX {name}")

    def build_indexes(self) -> None:
        """Build the secondary indexes a bulk store dropped (publish does it at the latest): the rows added after
        this update them one by one."""
        for sql in self._deferred_indexes:
            self.conn.execute(sql)
        self._deferred_indexes.clear()

    def _buffer_paths(self) -> list[Path]:
        return sorted(self.target.parent.glob(f"{self._buffer_name}*"))

    def _remove_buffers(self) -> None:
        for buffer in self._buffer_paths():
            buffer.unlink(missing_ok=True)  # a worker still holding it open keeps an unlinked file

    def add_warning(self, path: str, kind: str, message: str) -> None:
        self.conn.execute("INSERT INTO warnings (path, kind, message) VALUES (?, ?, ?)", (path, kind, message))

    def publish(self) -> None:
        """Commit, make the working copy durable (unless disposable), and rename it over the target."""
        self.merge_buffers()
        self._remove_buffers()
        self.build_indexes()
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
        self._remove_buffers()
        self._lock.close()


def _check_readable(path: Path) -> None:
    try:
        _roll_back_interrupted(path)
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        conn.close()
    except sqlite3.DatabaseError as err:
        raise BadInput(f"{path}: exists but is not a SQLite database ({err}); refusing to overwrite it") from err
    if tables and "runs" not in tables:
        raise BadInput(f"{path}: is a SQLite database regaudit did not write; refusing to overwrite it")
