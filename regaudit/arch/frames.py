"""The frame model: for one (architecture, producer, context), what each member of the frame holds.

Owns the records every consumer of frame models sees (`FrameModel`, `MemberValue`), their canonical
JSON form, and the plain-text rendering. It computes nothing about C or assembly: models are built
by `regaudit.arch.producers` and rendered by `regaudit.arch.frames_report`. JSON only ever gains keys.

Member states: `populated` (a real value), `constant` (a fixed or sentinel value, `value` holds its
source text), and three ways of holding nothing meaningful: `stale` (left over in a reused buffer,
e.g. perf's per-cpu regs), `uninitialised` (a stack slot the trampoline never wrote) and `zero`.
A member whose `mask` is set had only those bits set by the producer (x86 `flags |= X86_EFLAGS_FIXED`);
its state says what the other bits hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

MemberState = Literal["populated", "constant", "stale", "uninitialised", "zero"]
FrameResult = Literal["frame", "null", "undetermined"]
UNPOPULATED: tuple[MemberState, ...] = ("stale", "uninitialised", "zero")
TRAMPOLINE_FRAME = "the trampoline's stack frame"  # `storage` of a frame that is the live ftrace frame


def is_live(storage: str) -> bool:
    """Whether a model's `storage` is the live ftrace frame, so that a write changes what later callbacks see (else
    it is a buffer the producer fills: a per-cpu copy)."""
    return storage.startswith(TRAMPOLINE_FRAME)


@dataclass(frozen=True)
class MemberValue:
    state: MemberState
    value: str | None = None  # source text of a constant
    mask: str | None = None  # only these bits were set; the others are in `state`
    evidence: tuple[str, ...] = ()  # path:line of the stores that produced it

    @property
    def unpopulated(self) -> bool:
        return self.state in UNPOPULATED


@dataclass(frozen=True)
class FrameModel:
    """What one producer hands its consumers on one architecture and kernel series."""

    arch: str
    kernel: str  # series, '7.3'
    producer: str  # 'ftrace_regs', 'save_regs', 'ftrace_get_regs', 'ftrace_partial_regs', ...
    context: str  # 'entry' or 'exit'
    trampoline: str  # the rules/frames entry the frame starts from
    mode: str  # its mode: args, regs, rethook, kretprobe, kprobe
    layout: str  # 'pt_regs', or '__arch_ftrace_regs' for a raw arm64/riscv ftrace_regs
    result: FrameResult  # what the consumer gets: the frame, NULL, or either (a guard reads an unwritten slot)
    members: dict[str, MemberValue] = field(default_factory=dict)  # layout order; empty when result is null
    storage: str = ""  # where the members live: the trampoline's frame or the caller's buffer
    evidence: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()  # Kconfig selects and #if guards the modelled build leaves open
    drift: tuple[str, ...] = ()  # rule evidence the tree no longer matches (format_drift lines)
    notes: tuple[str, ...] = ()
    rule_notes: str = ""  # the rules/frames entry's own notes on the trampoline
    unresolved: tuple[str, ...] = ()  # stores or rule members the model could not place
    # Members of a buffer only the producer writes that it leaves alone: zero since boot, as long as no
    # consumer writes them (such a write is a finding, see audit.verdict)
    never_written: tuple[str, ...] = ()

    @property
    def populated(self) -> list[str]:
        return [name for name, value in self.members.items() if value.state == "populated"]

    @property
    def constants(self) -> dict[str, str]:
        return {name: value.value or "" for name, value in self.members.items() if value.state == "constant"}

    @property
    def unpopulated(self) -> list[str]:
        return [name for name, value in self.members.items() if value.unpopulated]

    @property
    def written(self) -> list[str]:
        """Members the producer wrote with a real or constant value."""
        return [name for name, value in self.members.items() if not value.unpopulated]

    @property
    def states(self) -> dict[str, MemberState]:
        return {name: value.state for name, value in self.members.items()}

    @property
    def masks(self) -> dict[str, str]:
        return {name: value.mask for name, value in self.members.items() if value.mask}

    @property
    def live(self) -> bool:
        """True when the members are the live ftrace frame, so a write changes what later callbacks see."""
        return is_live(self.storage)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.arch, self.producer, self.context, self.trampoline

    def to_json(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "kernel": self.kernel,
            "producer": self.producer,
            "context": self.context,
            "trampoline": self.trampoline,
            "mode": self.mode,
            "layout": self.layout,
            "result": self.result,
            "storage": self.storage,
            "populated": self.populated,
            "constants": self.constants,
            "unpopulated": self.unpopulated,
            "states": self.states,
            "masks": self.masks,
            "member_evidence": {name: list(value.evidence) for name, value in self.members.items() if value.evidence},
            "evidence": list(self.evidence),
            "conditions": list(self.conditions),
            "drift": list(self.drift),
            "notes": list(self.notes),
            "rule_notes": self.rule_notes,
            "unresolved": list(self.unresolved),
            "never_written": list(self.never_written),
        }
