"""Benchmark `regaudit index` on a real tree beside its floor: the raw tree-sitter parse of the
same files.

    python bench/index_bench.py TREE [--runs 3] [--jobs N]

Prints cold and warm index time (median of --runs, each cold run on a fresh database), files
parsed, facts per table, peak RSS of the largest process, and the floor: reading and parsing the
files the index selected with tree-sitter alone, with the same number of processes and with one.

It also prints a lower bound for *any* cold index that selects its files soundly, parses them, runs
tree-sitter queries over them and stores these facts, measured on the same machine: the parse with
the index's queries run over each tree (captures counted, not looked at), plus one read of every
walked .c/.h file (GNU grep looking for a string no file holds, the cheapest full read there is: a
sound prefilter must look at every file), plus SQLite copying the index's rows into an empty
database in C (no Python per row), that copy's CPU spread over the processes. Turning captures into
rows counts zero in it. No thresholds here: the figures go into issue notes, and tests never time anything.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import TypeVar

import tree_sitter
import tree_sitter_c

from regaudit.parse import parser
from regaudit.parse.text_scan import GREP_ENV
from regaudit.tree import open_tree, walk_sources


def timed_index(tree: Path, db: Path, jobs: int, arches: str | None = None) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "regaudit", "index", str(tree), "--db", str(db), "-j", str(jobs),
                    *(["--arch", arches] if arches else [])], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


@functools.cache
def c_parser() -> tree_sitter.Parser:
    """One parser per process, as the index's workers have."""
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_c.language()))


def parse_file(path: str) -> int:
    with open(path, "rb") as handle:
        return c_parser().parse(handle.read()).root_node.end_byte


def parse_and_query_file(path: str) -> int:
    """The parse, then the index's queries run over the tree: what any query-based extraction pays before
    it looks at a single capture."""
    with open(path, "rb") as handle:
        root = c_parser().parse(handle.read()).root_node
    found = tree_sitter.QueryCursor(parser.query(parser.QUERY_NAMES)).captures(root)
    return sum(len(nodes) for nodes in found.values())


def floor_seconds(files: list[str], jobs: int, work: Callable[[str], int] = parse_file) -> float:
    started = time.monotonic()
    if jobs == 1:
        for path in files:
            work(path)
    else:
        with Pool(jobs) as pool:
            for _ in pool.imap_unordered(work, files, chunksize=8):
                pass
    return time.monotonic() - started


def read_seconds(tree: Path, jobs: int, arches: list[str] | None = None) -> float:
    """One read of every .c/.h file the index walks for `arches` (None: every arch): grep -l for a string none
    holds, over `jobs` processes."""
    paths = [source.path for source in walk_sources(open_tree(tree), arches).sources]
    chunks = [paths[i:i + 2000] for i in range(0, len(paths), 2000)]
    started = time.monotonic()
    with Pool(jobs) as pool:
        pool.map(functools.partial(_grep_absent, tree), chunks)
    return time.monotonic() - started


def _grep_absent(tree: Path, paths: list[str]) -> None:
    command = ["grep", "-a", "-l", "-F", "-e", "regaudit-bench: no file holds this", "--", *paths]
    subprocess.run(command, cwd=tree, env=GREP_ENV, stdout=subprocess.DEVNULL, check=False)


def insert_seconds(db: Path, scratch: Path) -> float:
    """CPU time of SQLite copying every table of `db` into an empty database of the same tables."""
    copy = scratch / "copy.db"
    copy.unlink(missing_ok=True)
    conn = sqlite3.connect(copy, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("ATTACH DATABASE ? AS source", (str(db),))
    tables = conn.execute("SELECT name, sql FROM source.sqlite_master WHERE type = 'table'").fetchall()
    for _name, sql in tables:
        conn.execute(sql)
    started = time.process_time()
    conn.execute("BEGIN")
    for name, _sql in tables:
        conn.execute(f"INSERT INTO main.{name} SELECT * FROM source.{name}")
    conn.execute("COMMIT")
    seconds = time.process_time() - started
    conn.close()
    return seconds


@dataclass(frozen=True)
class LowerBound:
    """What any sound cold index of the same files costs at least on this machine (medians, seconds)."""

    queried: float  # parse and run the index's queries, captures counted, not looked at; wall, `jobs` processes
    read: float  # one read of every walked .c/.h file; wall, `jobs` processes
    insert_cpu: float  # SQLite copying the database's rows in C
    jobs: int

    @property
    def seconds(self) -> float:
        return self.queried + self.read + self.insert_cpu / self.jobs

    def describe(self, floor: float) -> str:
        return (f"parse and run the index's queries {self.queried:.2f} s + one read of the tree {self.read:.2f} s "
                f"+ SQLite copy of the database's rows {self.insert_cpu:.2f} s CPU / {self.jobs} "
                f"= {self.seconds:.2f} s = {self.seconds / floor:.2f}x the floor")


def lower_bound(tree: Path, arches: list[str] | None, files: list[str], db: Path, jobs: int, runs: int) \
        -> LowerBound:
    """`LowerBound` of indexing `files` (absolute paths) of `tree` for `arches` (None: every arch), whose facts
    `db` holds."""
    with tempfile.TemporaryDirectory(prefix="regaudit-bench-") as scratch:
        return LowerBound(
            queried=statistics.median(floor_seconds(files, jobs, parse_and_query_file) for _ in range(runs)),
            read=statistics.median(read_seconds(tree, jobs, arches) for _ in range(runs)),
            insert_cpu=statistics.median(insert_seconds(db, Path(scratch)) for _ in range(runs)),
            jobs=jobs)


_Timing = TypeVar("_Timing")


def cold_and_warm(db: Path, runs: int, timed: Callable[[], _Timing]) -> tuple[list[_Timing], list[_Timing]]:
    """`runs` timings of `timed` on a fresh database each, then `runs` on the database the last one left."""
    cold = []
    for _ in range(runs):
        db.unlink(missing_ok=True)
        cold.append(timed())
    return cold, [timed() for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regaudit-bench-") as scratch:
        db = Path(scratch) / "bench.db"
        cold, warm = cold_and_warm(db, args.runs, lambda: timed_index(args.tree, db, args.jobs))
        conn = sqlite3.connect(db)
        files = [str(args.tree / path) for (path,) in conn.execute("SELECT path FROM files")]
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        counts = {name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in tables}
        conn.close()
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        floor_parallel = [floor_seconds(files, args.jobs) for _ in range(args.runs)]
        floor_serial = [floor_seconds(files, 1) for _ in range(args.runs)]
        bound = lower_bound(args.tree, None, files, db, args.jobs, args.runs)
    cold_median, floor_median = statistics.median(cold), statistics.median(floor_parallel)
    print(f"tree: {args.tree}   runs: {args.runs}   jobs: {args.jobs}")
    print(f"cold index: median {cold_median:.1f} s  (runs: {', '.join(f'{t:.1f}' for t in cold)})")
    print(f"warm index: median {statistics.median(warm):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in warm)})")
    print(f"floor, raw tree-sitter parse of the same {len(files)} files: {floor_median:.1f} s with {args.jobs} "
          f"processes, {statistics.median(floor_serial):.1f} s with 1")
    print(f"cold / floor: {cold_median / floor_median:.2f}x")
    print(f"lower bound of a sound cold index: {bound.describe(floor_median)}")
    print(f"peak RSS (largest process): {peak_mb:.0f} MB")
    print("facts per table: " + ", ".join(f"{name} {count}" for name, count in counts.items()))


if __name__ == "__main__":
    main()
