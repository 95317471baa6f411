"""Per-architecture work in forked processes: `fork_map`, the one place that starts a pool for the stages
after the index (frame models, link, check).

The work is a closure inherited through `fork` (never pickled): it may hold anything the parent built,
except an open SQLite connection, which must not cross a fork — each call opens its own. Results travel
back pickled. Serial, in this process, for a single item, a single job, or where `fork` does not exist.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

_WORK: Callable[[Any], Any] | None = None  # set in the parent before forking; the workers inherit it


def fork_map(work: Callable[[_Item], _Result], items: list[_Item], jobs: int | None = None) -> Iterator[_Result]:
    """`work(item)` for every item, in item order, in up to `jobs` processes (default: one per core)."""
    global _WORK
    workers = min(jobs or os.cpu_count() or 1, len(items))
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield from map(work, items)
        return
    if _WORK is not None:
        raise RuntimeError("fork_map is not reentrant")
    _WORK = work
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield from pool.imap(_call_inherited, items)
    finally:
        _WORK = None


def _call_inherited(item: Any) -> Any:
    assert _WORK is not None, "set before the fork"
    return _WORK(item)
