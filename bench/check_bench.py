"""How long `regaudit check` takes on a one-file patch with a warm database, and where the time goes.

Usage: .venv/bin/python bench/check_bench.py [--series 7.3] [--patch P] [--arch x86] [--runs 3]

Works on a scratch copy of the test database of the real tree (tests/kernel_trees.py), audits the unpatched
tree once (what a warm database holds), then runs the whole command `--runs` times and prints the median of
each stage: reading and applying the patch, the incremental index check, reusing the tree's audit, the
re-index of the touched files (database copy included), the scratch view (links into the tree) and the
patched audit.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from kernel_trees import indexed_db, kernel_tree

from regaudit.audit.run import audit_database
from regaudit.index import index_tree
from regaudit.patch.diffs import parse_patch
from regaudit.patch.overlay import apply_changes
from regaudit.patch.run import check_patch

DEFAULT_PATCH = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "patches" / \
    "x86-partial-regs-drops-cs.patch"


def one_run(tree: Path, db: Path, patch: Path, arches: list[str]) -> dict[str, float]:
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    patched = apply_changes(tree, parse_patch(patch.read_bytes(), patch.name))
    seconds["patch"] = time.perf_counter() - started
    clock = time.perf_counter()
    index_tree(tree, db)
    seconds["index check"] = time.perf_counter() - clock
    result = check_patch(tree, db, patched, arches)
    seconds.update(result.seconds)
    total = time.perf_counter() - started
    seconds["rest"] = total - sum(seconds.values())  # opening the tree, removing the scratch directory
    seconds["total"] = total
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default="7.3")
    parser.add_argument("--patch", type=Path, default=DEFAULT_PATCH)
    parser.add_argument("--arch", default="x86")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tree, arches = kernel_tree(args.series), args.arch.split(",")
    with tempfile.TemporaryDirectory(prefix="regaudit-check-bench-") as scratch:
        db = Path(scratch) / "facts.db"
        shutil.copyfile(indexed_db(args.series), db)
        clock = time.perf_counter()
        audit_database(db, tree, arches)
        print(f"base audit (once, {','.join(arches)}): {time.perf_counter() - clock:.1f} s")
        runs = [one_run(tree, db, args.patch, arches) for _ in range(args.runs)]
    print(f"{args.patch.name} on linux-{args.series}, --arch {args.arch}, median of {args.runs} runs:")
    for stage in runs[0]:
        print(f"  {stage:<14} {statistics.median(run[stage] for run in runs):6.2f} s")


if __name__ == "__main__":
    main()
