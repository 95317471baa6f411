"""Benchmark `regaudit audit` (all arches) on a real tree beside the raw parse floor of the same files.

    python bench/audit_bench.py TREE [--runs 3] [--jobs N] [--arch A,B]

Cold: a fresh database (index of generic code and the audited arches' arch/ directories, link, frame models,
check). After the index: the same on a database that holds a fresh index of the same arches and nothing else
(link, frame models, check: what the audit adds to the index). Warm: the same database again (the index finds
nothing changed, so the stored audit is the answer). Warm --fresh: the same with `--fresh` (the links are
reused; models and the check run again). Medians of --runs, wall and CPU (user + system of the whole process
tree: on N cores no run can take less wall time than its CPU / N), peak RSS of the largest process, and the
floor: tree-sitter alone parsing the files the index selected (bench/index_bench.py's), with the lower bound
index_bench.py measures for any sound index of the same files and arches (the parse with the index's queries, one
read of the tree's files in scope, SQLite copying the rows in C): what the stages after the index and the Python
turning captures into rows add to it is the cold audit's margin over it. No thresholds: the figures go into issue
notes.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from index_bench import cold_and_warm, floor_seconds, lower_bound, timed_index

from regaudit.arch.catalogue import modelled_arches
from regaudit.cli import split_arches


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float  # user + system seconds of the whole process tree (the index's and the stages' workers included)


def timed_audit(tree: Path, db: Path, arches: str | None, *options: str) -> Timing:
    command = [sys.executable, "-m", "regaudit", "audit", str(tree), "--db", str(db), "--format", "json",
               "-o", os.devnull, *options]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run([*command, *(["--arch", arches] if arches else [])], check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Timing(wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)


def _after_index(tree: Path, db: Path, arches: str | None, audited: list[str], jobs: int) -> Timing:
    """A cold audit (`--arch arches`) of a database a cold index of the `audited` arches just wrote: the time the
    stages after the index take."""
    db.unlink(missing_ok=True)
    timed_index(tree, db, jobs, ",".join(audited))
    return timed_audit(tree, db, arches)


def _summary(timings: list[Timing]) -> str:
    walls = [timing.wall for timing in timings]
    return (f"median {statistics.median(walls):.1f} s, CPU {statistics.median(t.cpu for t in timings):.1f} s  "
            f"(runs: {', '.join(f'{wall:.1f}' for wall in walls)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--arch", default=None, help="A,B [default: every arch with frame rules]")
    args = parser.parse_args()
    audited = split_arches(args.arch) or modelled_arches(args.tree)  # what the audit indexes and checks
    with tempfile.TemporaryDirectory(prefix="regaudit-bench-") as scratch:
        db = Path(scratch) / "bench.db"
        cold, warm = cold_and_warm(db, args.runs, lambda: timed_audit(args.tree, db, args.arch))
        fresh = [timed_audit(args.tree, db, args.arch, "--fresh") for _ in range(args.runs)]
        after_index = [_after_index(args.tree, Path(scratch) / "indexed.db", args.arch, audited, args.jobs)
                       for _ in range(args.runs)]
        conn = sqlite3.connect(db)
        files = [str(args.tree / path) for (path,) in conn.execute("SELECT path FROM files")]
        findings = conn.execute("SELECT count(*) FROM findings").fetchone()[0]
        conn.close()
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        floor = [floor_seconds(files, args.jobs) for _ in range(args.runs)]
        bound = lower_bound(args.tree, audited, files, db, args.jobs, args.runs)
    cold_median, floor_median = statistics.median(t.wall for t in cold), statistics.median(floor)
    print(f"tree: {args.tree}   arches: {args.arch or 'all'}   runs: {args.runs}   jobs: {args.jobs}")
    print(f"cold audit: {_summary(cold)})")
    print(f"after the index: {_summary(after_index)}; link, frame models and check of a fresh index)")
    print(f"warm audit: {_summary(warm)}; nothing changed, the stored audit is the answer)")
    print(f"warm --fresh: {_summary(fresh)}; link reused, models and check run again)")
    print(f"floor, raw tree-sitter parse of the same {len(files)} files: {floor_median:.1f} s "
          f"with {args.jobs} processes")
    print(f"cold / floor: {cold_median / floor_median:.1f}x   findings: {findings}")
    print(f"lower bound of the cold audit's index alone: {bound.describe(floor_median)}")
    print(f"peak RSS (largest process): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
