"""Work in forked processes for the stages after the index, the one place that forks for them: `fork_map`, a
pool for per-architecture work (link, check), and `fork_call`, one piece of work done beside the parent's own
(the frame models and BPF helper lists, while the parent links). Every forked worker, the index's too, calls
`ignore_interrupts`: Ctrl-C is the parent's to handle.

The work is a closure inherited through `fork` (never pickled): it may hold anything the parent built,
except an open SQLite connection, which must not cross a fork — each call opens its own. Results, and an
exception the work raised, travel back pickled. Serial, in this process, for a single item, a single job, or
where `fork` does not exist.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Generic, TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

_WORK: Callable[[Any], Any] | None = None  # set in the parent before forking; the workers inherit it


def fork_map(work: Callable[[_Item], _Result], items: list[_Item], jobs: int | None = None) -> Iterator[_Result]:
    """`work(item)` for every item, in item order, in up to `jobs` processes (default: one per core)."""
    global _WORK
    workers = min(_processes(jobs), len(items))
    if workers <= 1 or not _can_fork():
        yield from map(work, items)
        return
    if _WORK is not None:
        raise RuntimeError("fork_map is not reentrant")
    _WORK = work
    try:
        with multiprocessing.get_context("fork").Pool(workers, initializer=ignore_interrupts) as pool:
            yield from pool.imap(_call_inherited, items)
    finally:
        _WORK = None


def ignore_interrupts() -> None:
    """In a forked worker: leave Ctrl-C (SIGINT, which a terminal sends the whole foreground process group) to the
    parent, which stops its workers itself and says so in one line; a worker would print a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _call_inherited(item: Any) -> Any:
    assert _WORK is not None, "set before the fork"
    return _WORK(item)


class Pending(Generic[_Result]):
    """`work()` running in a forked process from the moment this is made; `result()` waits for it. Leaving the
    `with` block stops the process if its result was never asked for (the parent failed meanwhile)."""

    def __init__(self, work: Callable[[], _Result], forked: bool) -> None:
        self._work = work
        self._process: multiprocessing.process.BaseProcess | None = None
        if forked:
            context = multiprocessing.get_context("fork")
            self._receive, send = context.Pipe(duplex=False)
            self._process = context.Process(target=_send_outcome, args=(work, send), daemon=True)
            self._process.start()
            send.close()

    def result(self) -> _Result:
        """What `work()` returned; what it raised is raised here, caused by the worker's traceback. Asked once."""
        if self._process is None:
            return self._work()
        try:
            succeeded, value, trace = self._receive.recv()
        except EOFError:
            raise RuntimeError(f"a forked worker died (exit status {self._process.exitcode})") from None
        finally:
            self._receive.close()
            self._process.join()
            self._process = None
        if not succeeded:
            raise value from WorkerTraceback(trace)
        return value

    def __enter__(self) -> Pending[_Result]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.join()
            self._receive.close()


def fork_call(work: Callable[[], _Result], jobs: int | None = None, *, beside: bool = True) -> Pending[_Result]:
    """`work()` in a forked process while the parent goes on; in this process, when its result is asked for, if not
    `beside`, or if `jobs` (default: one per core) allows a single process."""
    return Pending(work, beside and _processes(jobs) > 1 and _can_fork())


def _processes(jobs: int | None) -> int:
    return jobs or os.cpu_count() or 1


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


class WorkerTraceback(Exception):
    """Where in the forked worker an exception `Pending.result` raises came from."""


def _send_outcome(work: Callable[[], Any], send: Connection) -> None:
    ignore_interrupts()
    try:
        outcome: tuple[bool, Any, str] = (True, work(), "")
    except BaseException as err:  # the parent raises it
        outcome = (False, err, "".join(traceback.format_exception(err)))
    try:
        send.send(outcome)
    except Exception as err:  # an unpicklable result or exception
        send.send((False, RuntimeError(f"a forked worker's outcome cannot be pickled: {err}"), outcome[2]))
    finally:
        send.close()
