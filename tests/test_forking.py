"""fork_map: per-arch work in forked processes, results in item order, serial when forking cannot help.
fork_call: one piece of work forked beside the parent's, its outcome (value or exception) asked for later."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from regaudit.errors import BadInput
from regaudit.forking import WorkerTraceback, fork_call, fork_map


def test_a_closure_runs_in_forked_workers_and_results_keep_the_item_order() -> None:
    parent = os.getpid()
    offset = {"x86": 1, "arm64": 2, "riscv": 3}  # captured, never pickled
    results = list(fork_map(lambda arch: (arch, offset[arch], os.getpid() != parent), list(offset), jobs=2))
    assert [(arch, value) for arch, value, _forked in results] == [("x86", 1), ("arm64", 2), ("riscv", 3)]
    assert all(forked for _arch, _value, forked in results)


@pytest.mark.parametrize(("items", "jobs"), [(["x86"], 2), (["x86", "arm64"], 1)])
def test_one_item_or_one_job_runs_here(items: list[str], jobs: int) -> None:
    assert list(fork_map(lambda _arch: os.getpid(), items, jobs)) == [os.getpid()] * len(items)


def test_a_call_beside_runs_in_a_forked_process_while_the_parent_goes_on() -> None:
    parent = os.getpid()
    held = {"arch": "x86"}  # captured, never pickled
    with fork_call(lambda: (held["arch"], os.getpid())) as pending:
        arch, worker = pending.result()
    assert arch == "x86"
    assert worker != parent


def test_what_the_call_raises_is_raised_by_result_with_the_worker_traceback() -> None:
    def fails() -> None:
        raise BadInput("no frame rules for arch vax")

    with fork_call(fails) as pending, pytest.raises(BadInput, match="vax") as raised:
        pending.result()
    assert isinstance(raised.value.__cause__, WorkerTraceback)
    assert "fails" in str(raised.value.__cause__)


@pytest.mark.parametrize(("jobs", "beside"), [(2, False), (1, True)])
def test_a_call_not_beside_or_with_one_job_runs_here_when_its_result_is_asked_for(jobs: int, beside: bool) -> None:
    calls: list[int] = []
    with fork_call(lambda: calls.append(os.getpid()) or len(calls), jobs, beside=beside) as pending:
        assert calls == []
        assert pending.result() == 1
    assert calls == [os.getpid()]


def test_leaving_the_block_without_the_result_stops_the_worker(tmp_path: Path) -> None:
    marker = tmp_path / "finished"
    with fork_call(lambda: time.sleep(30) or marker.touch()) as pending:
        worker = pending._process
        assert worker is not None and worker.is_alive()
    assert not worker.is_alive()
    assert not marker.exists()


def test_forked_workers_leave_ctrl_c_to_the_parent() -> None:
    def ignores_interrupts(_item: object = None) -> bool:
        return signal.getsignal(signal.SIGINT) is signal.SIG_IGN

    handler = signal.getsignal(signal.SIGINT)
    assert list(fork_map(ignores_interrupts, ["x86", "arm64"], jobs=2)) == [True, True]
    with fork_call(ignores_interrupts) as pending:
        assert pending.result()
    assert signal.getsignal(signal.SIGINT) is handler  # the parent's own Ctrl-C handling is untouched
