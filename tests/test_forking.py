"""fork_map: per-arch work in forked processes, results in item order, serial when forking cannot help."""

from __future__ import annotations

import os

import pytest

from regaudit.forking import fork_map


def test_a_closure_runs_in_forked_workers_and_results_keep_the_item_order() -> None:
    parent = os.getpid()
    offset = {"x86": 1, "arm64": 2, "riscv": 3}  # captured, never pickled
    results = list(fork_map(lambda arch: (arch, offset[arch], os.getpid() != parent), list(offset), jobs=2))
    assert [(arch, value) for arch, value, _forked in results] == [("x86", 1), ("arm64", 2), ("riscv", 3)]
    assert all(forked for _arch, _value, forked in results)


@pytest.mark.parametrize(("items", "jobs"), [(["x86"], 2), (["x86", "arm64"], 1)])
def test_one_item_or_one_job_runs_here(items: list[str], jobs: int) -> None:
    assert list(fork_map(lambda _arch: os.getpid(), items, jobs)) == [os.getpid()] * len(items)
