"""Branch conditions decided from frame models on Linux 7.3.4 (each cited line read in the tree).

- arch/x86/include/asm/ftrace.h:59-62 `arch_ftrace_partial_regs`: `regs->flags |= X86_EFLAGS_FIXED;`
  `regs->cs = __KERNEL_CS;` — :64-69 `arch_ftrace_fill_perf_regs`: ip, sp, `cs = __KERNEL_CS`, `flags = 0`.
- arch/x86/events/core.c:2874-2877 `perf_hw_regs(regs)` is `return regs->flags & X86_EFLAGS_FIXED;`: true
  on the partial frame (the producer set that bit), false on the perf frame (flags is 0).
- arch/x86/include/asm/ptrace.h:209-216 `user_mode(regs)` is `return !!(regs->cs & 3);` on x86_64 (the
  CONFIG_X86_32 arm is compiled out); `__KERNEL_CS` is `(GDT_ENTRY_KERNEL_CS*8)` with
  GDT_ENTRY_KERNEL_CS 12 (32-bit arm, arch/x86/include/asm/segment.h:107) or 2 (64-bit, :170): RPL 0
  either way, so a kernel frame is never user mode.
- arch/arm64/include/asm/ptrace.h:196-197 `user_mode(regs)` is `(((regs)->pstate & PSR_MODE_MASK) ==
  PSR_MODE_EL0t)`; arch/arm64/include/asm/ftrace.h:156 sets `regs->pstate = PSR_MODE_EL1h` in the partial
  frame, and arch/arm64/include/uapi/asm/ptrace.h:32/34/39 give EL0t 0, EL1h 5, MASK 0xf: never user mode.
  An unwritten member (regs[19]) is garbage: a test of it stays open.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_trees import kernel_tree, private_db

from regaudit.arch.frames import FrameModel
from regaudit.arch.producers import build_frame_models
from regaudit.audit.decide import FrameOracle
from regaudit.flow.link import link_database
from regaudit.flow.propagate import FlowProgram, arch_program

REGS = frozenset({"regs"})


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = private_db("7.3", tmp_path_factory)
    link_database(copy, kernel_tree("7.3"), ["x86", "arm64"])
    return copy


@pytest.fixture(scope="module")
def models(db: Path) -> dict[tuple[str, str], FrameModel]:
    return {(m.arch, m.producer): m for m in build_frame_models(kernel_tree("7.3"), db, ["x86", "arm64"])
            if m.context == "entry" and m.result == "frame"}


@pytest.fixture(scope="module")
def x86(db: Path) -> Iterator[FlowProgram]:
    with arch_program(db, "x86") as program:
        yield program


def test_perf_hw_regs_follows_the_bits_each_producer_set(x86: FlowProgram, models: dict) -> None:
    assert FrameOracle(x86, models[("x86", "ftrace_partial_regs")]).decide("perf_hw_regs(regs)", REGS) is True
    assert FrameOracle(x86, models[("x86", "ftrace_fill_perf_regs")]).decide("perf_hw_regs(regs)", REGS) is False


def test_a_kernel_cs_constant_is_never_user_mode_whichever_segment_arm_applies(x86: FlowProgram,
                                                                              models: dict) -> None:
    oracle = FrameOracle(x86, models[("x86", "ftrace_fill_perf_regs")])
    assert oracle.decide("user_mode(regs)", REGS) is False
    assert oracle.decide("!user_mode(regs)", REGS) is True
    assert oracle.decide("kernel && !user_mode(regs)", REGS) is None  # `kernel` is a parameter: open


def test_conditions_not_about_the_frame_stay_open(x86: FlowProgram, models: dict) -> None:
    oracle = FrameOracle(x86, models[("x86", "ftrace_partial_regs")])
    assert oracle.decide("user_mode(regs)", frozenset()) is None  # `regs` is not the frame here
    assert oracle.decide("perf_guest_state()", REGS) is None
    assert oracle.decide("regs->bx == 0", REGS) is None  # an unwritten member is garbage, not 0


def test_arm64_mode_is_decided_from_the_pstate_the_builder_writes(db: Path, models: dict) -> None:
    with arch_program(db, "arm64") as arm64:
        oracle = FrameOracle(arm64, models[("arm64", "ftrace_partial_regs")])
        assert oracle.decide("user_mode(regs)", REGS) is False
        assert oracle.decide("regs->regs[19] != 0", REGS) is None
