"""Terminal output for the CLI: rich on a TTY, plain lines for logs and pipes.

Owns how results look on a terminal; it computes nothing. Progress bars only appear when stderr
is a terminal, so CI logs stay quiet and machine-friendly.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import rich.console
import rich.progress
import rich.table
import rich.text

if TYPE_CHECKING:
    from regaudit.index import IndexResult, Progress


class Console:
    """stdout for results; rich markup only when stdout is a TTY."""

    def __init__(self) -> None:
        self.rich = rich.console.Console(highlight=False, soft_wrap=True)

    def index_summary(self, result: IndexResult, counts: dict[str, int]) -> None:
        tree = result.tree
        state = "unchanged, nothing reparsed" if result.unchanged else \
            f"{result.files_parsed} parsed, {result.files_reused} reused, {result.files_removed} removed"
        lines = [
            f"tree: {tree.root} (Linux {tree.version})",
            f"database: {result.db}",
            f"files: {counts.get('files', 0)} indexed ({state}) in {result.seconds:.1f} s",
            "arches: every arch/ directory" if result.arches is None else
            f"arches: {', '.join(result.arches)} (and generic code; `--arch` adds more)",
        ]
        if not result.unchanged:
            passes = f"{result.scans} pass{'es' if result.scans != 1 else ''} over the tree"
            lines.append(f"prefilter: {result.tokens} tokens after {result.rounds} rounds ({passes}); "
                         f"{result.parse_errors} parse-error nodes in parsed files")
        warned = counts.get("warnings", 0)
        lines.append(f"warnings: {warned}" + (" (see the `warnings` table)" if warned else ""))
        for line in lines:
            self.rich.print(line, markup=False)
        table = rich.table.Table(title="facts", show_header=True, box=None if not self.rich.is_terminal else
                                 rich.box.SIMPLE)
        table.add_column("table")
        table.add_column("rows", justify="right")
        for name, count in counts.items():
            table.add_row(name, str(count))
        self.rich.print(table)


    def stage(self, message: str) -> None:
        """A step of a long command, on stderr (the CLI only passes this on a terminal)."""
        rich.console.Console(stderr=True, highlight=False).print(f"[dim]{message}[/dim]")


class _RateColumn(rich.progress.ProgressColumn):
    """Items per second (files for parsing, chunks of files for scanning)."""

    def render(self, task: rich.progress.Task) -> rich.text.Text:
        return rich.text.Text(f"{task.speed:.0f}/s" if task.speed else "")


@contextmanager
def progress_reporter(console: Console) -> Iterator[Progress | None]:
    """A progress callback drawing files/s and ETA on a terminal; None (silent) otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    bar = rich.progress.Progress(
        rich.progress.TextColumn("{task.description}"), rich.progress.BarColumn(),
        rich.progress.MofNCompleteColumn(), rich.progress.TaskProgressColumn(),
        _RateColumn(),
        rich.progress.TimeRemainingColumn(), console=rich.console.Console(stderr=True), transient=True)
    tasks: dict[str, rich.progress.TaskID] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    with bar:
        yield report
