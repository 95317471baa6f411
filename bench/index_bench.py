"""Benchmark `regaudit index` on a real tree beside its floor: the raw tree-sitter parse of the
same files.

    python bench/index_bench.py TREE [--runs 3] [--jobs N]

Prints cold and warm index time (median of --runs, each cold run on a fresh database), files
parsed, facts per table, peak RSS of the largest process, and the floor: reading and parsing the
files the index selected with tree-sitter alone, with the same number of processes and with one.
No thresholds here: the figures go into issue notes, and tests never time anything.
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
from multiprocessing import Pool
from pathlib import Path

import tree_sitter
import tree_sitter_c


def timed_index(tree: Path, db: Path, jobs: int) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "regaudit", "index", str(tree), "--db", str(db), "-j", str(jobs)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


@functools.cache
def c_parser() -> tree_sitter.Parser:
    """One parser per process, as the index's workers have."""
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_c.language()))


def parse_file(path: str) -> int:
    with open(path, "rb") as handle:
        return c_parser().parse(handle.read()).root_node.end_byte


def floor_seconds(files: list[str], jobs: int) -> float:
    started = time.monotonic()
    if jobs == 1:
        for path in files:
            parse_file(path)
    else:
        with Pool(jobs) as pool:
            for _ in pool.imap_unordered(parse_file, files, chunksize=8):
                pass
    return time.monotonic() - started


def cold_and_warm(db: Path, runs: int, timed: Callable[[], float]) -> tuple[list[float], list[float]]:
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
    cold_median, floor_median = statistics.median(cold), statistics.median(floor_parallel)
    print(f"tree: {args.tree}   runs: {args.runs}   jobs: {args.jobs}")
    print(f"cold index: median {cold_median:.1f} s  (runs: {', '.join(f'{t:.1f}' for t in cold)})")
    print(f"warm index: median {statistics.median(warm):.2f} s  (runs: {', '.join(f'{t:.2f}' for t in warm)})")
    print(f"floor, raw tree-sitter parse of the same {len(files)} files: {floor_median:.1f} s with {args.jobs} "
          f"processes, {statistics.median(floor_serial):.1f} s with 1")
    print(f"cold / floor: {cold_median / floor_median:.2f}x")
    print(f"peak RSS (largest process): {peak_mb:.0f} MB")
    print("facts per table: " + ", ".join(f"{name} {count}" for name, count in counts.items()))


if __name__ == "__main__":
    main()
