"""Whether one access through a frame pointer touches what the frame model left unpopulated.

Owns the comparison of an access (member path as the index records it, read or write, tested
bits) with one `FrameModel`: which of the model's members the access can touch (`regs[*]` every
`regs[i]`, `*` all of them, `stackframe` everything inside it), whether the bits it tests were set
by the producer (x86 `flags` after `arch_ftrace_partial_regs` holds only X86_EFLAGS_FIXED), and
what the untouched members hold. Reads are findings when they touch an unpopulated member; writes
are findings when the frame is the live ftrace frame (later callbacks see the change), or when they
touch a member the model takes as never written (a per-cpu buffer only the producer writes).

Masks are compared by name: a read of `flags & X86_EFLAGS_FIXED` is covered by a producer mask
`X86_EFLAGS_FIXED`; a read that tests other bits, or bits given as a number the producer did not
name, is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from regaudit.arch.frames import FrameModel, MemberValue

# The state reported for an access touching several unpopulated members, most telling first.
_STATE_ORDER = ("uninitialised", "stale", "zero")


@dataclass(frozen=True)
class Verdict:
    """An access that is a finding against one model."""

    member: str  # the member as the consumer names it ('regs[*]', '*', 'cs')
    reaches: tuple[str, ...]  # the model's members it touches that make it a finding
    access: str  # 'read' or 'write'
    state: str  # what those members hold; for a write what they held before it ('mixed' when they differ)


def judge(model: FrameModel, member: str, access: str, mask: str | None,
          within: tuple[str, ...] | None = None) -> list[Verdict]:
    """The findings one access makes against `model` (none when it reads only populated bits).

    `within` narrows what the access can touch to those members (a derived read's known set).
    """
    touched = [name for name in touched_members(model, member) if within is None or name in within]
    verdicts = []
    # `flags |= BIT` sets bits: its read half is not a use of the old value. `x++` is a read.
    if access == "read" or (access == "readwrite" and mask is None):
        unpopulated = [name for name in touched if _unpopulated_bits_read(model.members[name], mask)]
        if unpopulated:
            verdicts.append(Verdict(member, tuple(unpopulated), "read", _state(model, unpopulated)))
    # A write into the live frame changes what later callbacks see; one into a member the model takes as
    # never written makes that member stale for the next run, against the model.
    written = touched if model.live else [name for name in touched if name in model.never_written]
    if access in ("write", "readwrite") and written:
        states = [model.members[name].state for name in written]
        verdicts.append(Verdict(member, tuple(written), "write", states[0] if len(set(states)) == 1 else "mixed"))
    return verdicts


def touched_members(model: FrameModel, member: str) -> list[str]:
    """The model's members an access of `member` can touch, in layout order."""
    if member == "*":
        return list(model.members)
    if member in model.members:
        return [member]
    pattern = re.compile(re.escape(member).replace(r"\[\*\]", r"\[\d+\]") + r"(?:[.\[].*)?")
    return [name for name in model.members if pattern.fullmatch(name)]


def _unpopulated_bits_read(value: MemberValue, mask: str | None) -> bool:
    if not value.unpopulated:
        return False
    if value.mask is None or mask is None:
        return True
    return not set(_bit_names(mask)) <= set(_bit_names(value.mask))


def _bit_names(mask: str) -> list[str]:
    return re.findall(r"\w+", mask)


def _state(model: FrameModel, members: list[str]) -> str:
    states = {model.members[name].state for name in members}
    return next(state for state in _STATE_ORDER if state in states)
