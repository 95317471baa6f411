"""How long `regaudit check` takes on a one-file patch with a warm database, and where the time goes.

Usage: .venv/bin/python bench/check_bench.py [--series 7.3] [--patch P ...] [--arch x86,arm64] [--runs 3]
       [--regaudit "path/to/regaudit"]

Works on a scratch copy of the test database of the real tree (tests/kernel_trees.py), audits the unpatched
tree once (what a warm database holds), then for each patch prints the median of `--runs` runs of the whole
command as a user runs it (`regaudit check PATCH --tree T --db DB --arch A`: interpreter start-up and
imports included), and of each stage of the same check run in-process: reading and applying the patch,
the incremental index check, reusing the tree's audit, the re-index of the touched files, the comparison
of the facts (`impact`), waiting for the scratch view (links into the tree, made during the re-index) and
the patched audit, with how many seeds were checked again and how many kept the base audit's findings.
By default: one patch of each kind from tests/fixtures/patches (`DEFAULT_PATCHES`), on all six arches.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
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

PATCHES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "patches"
# One-file patches of each kind: an arch header, generic tracing code, perf core (a function most walks cross,
# the heavy case), comments only, and a driver no stage reads.
DEFAULT_PATCHES = [PATCHES / name for name in (
    "x86-partial-regs-drops-cs.patch", "arm64-kprobe-multi-reads-x19.patch", "perf-core-regs-intr-guard.patch",
    "x86-ftrace-comment-and-whitespace.patch", "leds-gpio-unrelated-driver.patch")]
ALL_ARCHES = "x86,arm64,riscv,loongarch,powerpc,s390"


def one_run(tree: Path, db: Path, patch: Path, arches: list[str]) -> tuple[dict[str, float], str]:
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
    selection = result.selection
    seeds = ", ".join(f"{arch} {len(selection.run[arch])} rechecked / {len(selection.kept[arch])} kept"
                      for arch in sorted(selection.run)) if selection else "no seed checked again"
    return seconds, seeds


def command_seconds(regaudit: list[str], tree: Path, db: Path, patch: Path, arches: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([*regaudit, "check", str(patch), "--tree", str(tree), "--db", str(db), "--arch", ",".join(arches)],
                   stdout=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default="7.3")
    parser.add_argument("--patch", type=Path, nargs="+", default=DEFAULT_PATCHES)
    parser.add_argument("--arch", default=ALL_ARCHES)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--regaudit", default=f"{sys.executable} -m regaudit",
                        help="the command to time, e.g. an installed `regaudit` (`pip install .` byte-compiles the "
                             "package; an editable install compiles it at every start when PYTHONDONTWRITEBYTECODE "
                             "is set) [default: this interpreter's -m regaudit]")
    args = parser.parse_args()
    tree, arches = kernel_tree(args.series), args.arch.split(",")
    with tempfile.TemporaryDirectory(prefix="regaudit-check-bench-") as scratch:
        db = Path(scratch) / "facts.db"
        shutil.copyfile(indexed_db(args.series), db)
        clock = time.perf_counter()
        audit_database(db, tree, arches)
        print(f"base audit (once, {','.join(arches)}): {time.perf_counter() - clock:.1f} s")
        for patch in args.patch:
            commands = [command_seconds(args.regaudit.split(), tree, db, patch, arches) for _ in range(args.runs)]
            runs = [one_run(tree, db, patch, arches) for _ in range(args.runs)]
            print(f"{patch.name} on linux-{args.series}, --arch {args.arch}, median of {args.runs} runs:")
            print(f"  {'command':<14} {statistics.median(commands):6.2f} s   (regaudit check, as run by a user)")
            for stage in runs[0][0]:
                print(f"  {stage:<14} {statistics.median(run[stage] for run, _seeds in runs):6.2f} s")
            print(f"  seeds: {runs[0][1]}")


if __name__ == "__main__":
    main()
