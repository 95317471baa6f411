"""Read side of the fact database for the index stage: the previous run's state and prefilter input.

Later stages get their own intent-level facades; this module only answers what `index` needs to
decide what to reuse, and writes the small bookkeeping tables it owns (`sources`, `build_files`,
`prefilter_tokens`). It also owns the index's scope (`runs.arches`), which later stages check before they read
an arch's facts (`require_indexed`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from regaudit.errors import BadInput
from regaudit.facts.schema import SCHEMA_VERSION, schema_version
from regaudit.facts.store import open_existing
from regaudit.prefilter import TokenCandidate
from regaudit.tree import KernelTree, SourceFile, in_scope


@dataclass(frozen=True)
class PreviousIndex:
    """What the last index run of a database saw."""

    tree_path: str
    query_hash: str
    prefilter: str
    token_count: int
    stats: dict[str, tuple[int, int]]  # path -> (size, mtime_ns) of every source looked at
    build_stats: dict[str, tuple[int, int]]  # the same of every build file (`tree.is_build_file`)
    files: dict[str, str]  # parsed path -> sha256
    tokens: frozenset[str]  # the prefilter tokens it derived
    arches: tuple[str, ...] | None  # its scope (`index_scope`)
    schema: int  # the database's schema version

    @property
    def file_count(self) -> int:
        return len(self.files)

    def matches(self, tree: KernelTree, query_hash: str, prefilter: str, arches: tuple[str, ...] | None,
                sources: list[SourceFile], build_files: list[SourceFile]) -> bool:
        """True when nothing that could change a fact, or what later stages read besides them, has changed, and the
        database's schema is current (a changed run migrates it): a warm run has nothing to do."""
        return (self.tree_path == str(tree.root) and self.query_hash == query_hash and self.schema == SCHEMA_VERSION
                and self.prefilter == prefilter and self.arches == arches and _same_stats(self.stats, sources)
                and _same_stats(self.build_stats, build_files))

    def reusable(self, tree: KernelTree, query_hash: str) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, sha256) of parsed files whose facts may be kept.

        Nothing is reusable across trees (same path, other content) or rule/query changes."""
        if query_hash != self.query_hash or self.tree_path != str(tree.root):
            return {}
        return {path: (*self.stats.get(path, (-1, -1)), sha) for path, sha in self.files.items()}


def _same_stats(stats: dict[str, tuple[int, int]], files: list[SourceFile]) -> bool:
    return len(files) == len(stats) and all(stats.get(f.path) == (f.size, f.mtime_ns) for f in files)


def previous_index(db_path: Path) -> PreviousIndex | None:
    db = open_existing(db_path)
    run = db.execute("SELECT tree_path, query_hash, prefilter, prefilter_tokens FROM runs "
                     "WHERE stage = 'index' AND finished IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()
    if run is None:
        return None
    stats = {path: (size, mtime) for path, size, mtime in db.execute("SELECT path, size, mtime_ns FROM sources")}
    # none in a database from before schema 10: the run is then a changed one, which migrates it
    build_stats = {path: (size, mtime) for path, size, mtime in db.execute(
        "SELECT path, size, mtime_ns FROM build_files")} if db["build_files"].exists() else {}
    files = dict(db.execute("SELECT path, sha256 FROM files"))
    tokens = frozenset(token for (token,) in db.execute("SELECT token FROM prefilter_tokens"))
    scope, schema = index_scope(db.conn), schema_version(db.conn)
    db.conn.close()
    return PreviousIndex(run[0], run[1], run[2], run[3] or 0, stats, build_stats, files, tokens, scope, schema)


def index_scope(conn: sqlite3.Connection) -> tuple[str, ...] | None:
    """The arches whose arch/<arch>/ C files the last finished index run holds besides generic code (`runs.arches`);
    None: every arch's, as in a database from before schema 11."""
    if "arches" not in {column for _cid, column, *_rest in conn.execute("PRAGMA table_info(runs)")}:
        return None
    row = conn.execute("SELECT arches FROM runs WHERE stage = 'index' AND finished IS NOT NULL "
                       "ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None or row[0] is None else tuple(json.loads(row[0]))


def require_indexed(conn: sqlite3.Connection, db_path: Path, arches: Collection[str]) -> None:
    """BadInput unless the last index run of `conn` (the database at `db_path`) holds the C files of `arches`."""
    scope = index_scope(conn)
    missing = sorted(arch for arch in arches if not in_scope(arch, scope))
    if scope is not None and missing:
        raise BadInput(f"{db_path}: indexed without the C files of {', '.join(missing)} (it holds generic code and "
                       f"{', '.join(scope) or 'no arch'}); add them with `regaudit index --arch {','.join(missing)}`")


def record_unchanged_run(db_path: Path, run: dict[str, object]) -> None:
    """Append a run row to an unchanged database: one INSERT, atomic by itself."""
    conn = sqlite3.connect(db_path)
    with conn:
        columns = ", ".join(run)
        conn.execute(f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' for _ in run)})", list(run.values()))
    conn.close()


def replace_sources(conn: sqlite3.Connection, sources: list[SourceFile], build_files: list[SourceFile]) -> None:
    """Every walked file as not selected (`record_selection` then marks the selected ones), and the build files."""
    conn.execute("DELETE FROM build_files")
    conn.executemany("INSERT INTO build_files (path, size, mtime_ns) VALUES (?, ?, ?)", build_files)
    conn.execute("DELETE FROM sources")
    conn.executemany("INSERT INTO sources (path, size, mtime_ns, selected) VALUES (?, ?, ?, 0)",
                     ((s.path, s.size, s.mtime_ns) for s in sources))


def record_selection(conn: sqlite3.Connection, selected: dict[str, str], tokens: dict[str, tuple[int, str]]) -> None:
    """The prefilter's answer: the selected files (path -> the token they were selected for) and the tokens."""
    conn.executemany("UPDATE sources SET selected = 1, reason = ? WHERE path = ?",
                     ((reason, path) for path, reason in selected.items()))
    conn.execute("DELETE FROM prefilter_tokens")
    conn.executemany("INSERT INTO prefilter_tokens (token, round, origin) VALUES (?, ?, ?)",
                     ((token, round_, origin) for token, (round_, origin) in tokens.items()))


_IN_FILES = "IN (SELECT value FROM json_each(?))"
_CANDIDATE_QUERIES = (
    # Function-pointer members/typedefs ('(' in the type) do not carry data: see prefilter.py.
    ("struct member", "SELECT s.name, m.type, s.kind FROM structs s JOIN struct_members m ON m.struct_id = s.id "
                      f"WHERE s.name IS NOT NULL AND m.type NOT LIKE '%(%' AND s.file {_IN_FILES}"),
    ("typedef", f"SELECT name, type FROM typedefs WHERE type NOT LIKE '%(%' AND file {_IN_FILES}"),
    ("macro body", f"SELECT name, macro_body FROM functions WHERE kind = 'macro' AND file LIKE '%.h' "
                   f"AND file {_IN_FILES}"),
    ("macro body", f"SELECT name, value FROM defines WHERE file LIKE '%.h' AND file {_IN_FILES}"),
    ("return type", "SELECT name, return_type FROM functions WHERE kind != 'macro' AND return_type IS NOT NULL "
                    f"AND file {_IN_FILES}"),
)
# new_tokens keeps the first origin a token is found with: candidates are offered in this order
CANDIDATE_ORIGINS = tuple(dict.fromkeys(origin for origin, _sql in _CANDIDATE_QUERIES))


def layout_tokens(conn: sqlite3.Connection, frames: tuple[str, ...]) -> set[str]:
    """`struct user_pt_regs` for arm64's pt_regs: struct/union types embedded by value in a frame
    struct, whose definitions the frame's layout needs (they may live in files naming no token)."""
    marks = ", ".join("?" for _ in frames)
    found = set()
    for (member_type,) in conn.execute(
            f"SELECT DISTINCT m.type FROM structs s JOIN struct_members m ON m.struct_id = s.id "
            f"WHERE s.name IN ({marks}) AND (m.type LIKE 'struct %' OR m.type LIKE 'union %') "
            f"AND m.type NOT LIKE '%*%'", frames):
        keyword, _, tag = member_type.partition(" ")
        if tag.isidentifier():
            found.add(f"{keyword} {tag}")
    return found


def token_candidates(conn: sqlite3.Connection, files: Collection[str]) -> Iterator[TokenCandidate]:
    """The names defined in `files` that may become prefilter tokens, with the text that decides it."""
    listed = json.dumps(sorted(files))
    for origin, sql in _CANDIDATE_QUERIES:
        for name, text, *keyword in conn.execute(sql, (listed,)):
            if name and text:
                yield TokenCandidate(name, text, origin, keyword[0] if keyword else "")


def table_counts(db_path: Path) -> dict[str, int]:
    """Rows per fact table, for summaries."""
    db = open_existing(db_path)
    tables = ("files", "functions", "params", "variables", "defines", "calls", "call_args", "accesses",
              "assignments", "bindings", "structs", "struct_members", "typedefs", "header_defines",
              "bpf_proto_definitions", "warnings")
    counts = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}
    db.conn.close()
    return counts
