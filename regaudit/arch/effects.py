"""What a C function or macro does to a frame, read from the fact database.

Owns a small abstract interpretation over the facts of one definition and of the direct callees it
passes the frame to. It tracks which pointers point at the trampoline's frame or at the caller's
pt_regs buffer (parameters, `afregs = arch_ftrace_regs(fregs)`, `regs = &arch_ftrace_regs(fregs)->regs`),
collects the stores made through them in source order (`regs->cs = __KERNEL_CS`,
`regs->flags |= X86_EFLAGS_FIXED`, `regs->sp = afregs->sp`, `memcpy(regs->regs, afregs->regs, ...)`),
and works out what the definition returns (NULL, the frame, the buffer) and which frame members it
tests before returning the frame. It stops at the first indirect call that receives the frame: that
is the handler, and later stores cannot change what the handler saw.

Frame member paths are given in the frame layout's names: through a wrapper that embeds a pt_regs
(`struct __arch_ftrace_regs { struct pt_regs regs; }`) `regs.ip` is reported as `ip`. This module
knows C (memcpy, memset, `|=`, casts), not which producer or architecture it is looking at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, TypeGuard

from regaudit.arch.config import BuildConfig
from regaudit.facts.arch_facts import Assignment, Body, Call, CallArg, Definition, MemberAccess


class Role(StrEnum):
    """What a pointer points at while interpreting."""

    FRAME = "frame"  # the trampoline's frame through its ftrace_regs wrapper (paths like `regs.ip`)
    FRAME_PT_REGS = "frame_pt_regs"  # the pt_regs inside (or that is) the frame (paths like `ip`)
    BUFFER = "buffer"  # the pt_regs a builder's caller supplies


Target = Literal["frame", "buffer"]
Result = Literal["frame", "buffer", "null"]

# Direct callees are followed this deep; the longest chain modelled is ftrace_return_to_handler ->
# __ftrace_return_to_handler -> ftrace_regs_set_instruction_pointer -> regs_set_return_ip (powerpc).
MAX_DEPTH = 6
_COPIES = frozenset({"memcpy", "__memcpy", "__builtin_memcpy"})
_FILLS = frozenset({"memset", "__memset", "__builtin_memset"})
_CAST_BODY = re.compile(r"^\(*\s*\(\s*(?:const\s+)?struct\s+\w+\s*\*\s*\)\s*\(?\s*\w+\s*\)?\s*\)*$")
_NULL_BODY = re.compile(r"^\(*\s*NULL\s*\)*$")


@dataclass(frozen=True)
class Copy:
    """The value a frame member holds (`source` in the frame layout)."""

    source: str


@dataclass(frozen=True)
class Constant:
    """A fixed value, as source text: `__KERNEL_CS`, `0`, `PSR_MODE_EL1h`."""

    text: str


@dataclass(frozen=True)
class Live:
    """A real value computed at run time (a register, a return address), described by its source text."""

    text: str


@dataclass(frozen=True)
class SetBits:
    """`|= mask`: afterwards the bits of `mask` are known to be set, the others are what they were."""

    mask: str


@dataclass(frozen=True)
class Zero:
    """Cleared by memset(..., 0, ...)."""


Value = Copy | Constant | Live | SetBits | Zero
Binding = Role | Value  # a Role for pointers, a Value for plain parameters


@dataclass(frozen=True)
class Store:
    target: Target
    member: str  # in the target's layout: a leaf, an array, an embedded struct, or '' for all of it
    value: Value
    at: str  # path:line of the store
    via: tuple[str, ...] = ()  # path:line of the calls that led to it, outermost first

    @property
    def chain(self) -> tuple[str, ...]:
        return (*self.via, self.at)


@dataclass(frozen=True)
class Guard:
    """The frame is returned only when `member` (under `mask`) is non-zero; NULL otherwise."""

    member: str
    mask: str | None
    at: str


@dataclass
class Effect:
    stores: list[Store] = field(default_factory=list)
    result: Result | None = None
    guards: list[Guard] = field(default_factory=list)
    handed_off: str | None = None  # path:line of the indirect call that passed the frame on
    trail: list[str] = field(default_factory=list)  # definitions followed and asm facts used, as path:line
    unresolved: list[str] = field(default_factory=list)
    asm_used: list[AsmStore] = field(default_factory=list)


@dataclass(frozen=True)
class FrameShape:
    """How C reaches the frame: `embedded_pt_regs` is 'regs' when the wrapper is `{ struct pt_regs regs; }`."""

    embedded_pt_regs: str | None

    def path(self, role: Role, member: str) -> str:
        """`member` as written after `->` on a pointer of `role`, in the target layout's names."""
        if role is Role.FRAME and self.embedded_pt_regs:
            return "" if member == self.embedded_pt_regs else member.removeprefix(f"{self.embedded_pt_regs}.")
        return member


@dataclass(frozen=True)
class AsmStore:
    """An asm output operand the index recorded as a read (rules/producers.toml [[asm_store]])."""

    function: str
    member: str
    value: str
    evidence: tuple[str, ...]


_Event = Assignment | MemberAccess | Call


@dataclass
class _Frame:
    """Interpretation state of one definition."""

    body: Body
    env: dict[str, Binding]
    via: tuple[str, ...] = ()  # the call sites that led here
    guards: list[Guard] = field(default_factory=list)

    def role(self, name: str | None) -> Role | None:
        bound = self.env.get(name or "")
        return bound if isinstance(bound, Role) else None

    def at(self, line: int) -> str:
        return f"{self.body.definition.file}:{line}"


@dataclass
class Interpreter:
    config: BuildConfig
    shape: FrameShape
    asm_stores: tuple[AsmStore, ...] = ()

    def run(self, definition: Definition, bindings: Mapping[int, Binding]) -> Effect:
        """The effect of `definition` with parameter positions bound to roles (pointers) or values."""
        effect = Effect()
        effect.result = self._interpret(definition, bindings, effect, (), ())
        return effect

    def _interpret(
        self,
        definition: Definition,
        bindings: Mapping[int, Binding],
        effect: Effect,
        active: tuple[int, ...],
        via: tuple[str, ...],
    ) -> Result | None:
        effect.trail.append(definition.at)
        if definition.kind == "macro" and _NULL_BODY.match(definition.macro_body or ""):
            return "null"
        body = self.config.facts.body(definition)
        frame = _Frame(
            body, {p.name: bindings[p.position] for p in body.params if p.name and p.position in bindings}, via
        )
        initial = dict(frame.env)
        returned: Result | None = None
        for event in self._events(body):
            if isinstance(event, Assignment):
                self._alias(event, frame, effect)
            elif isinstance(event, MemberAccess):
                self._access(event, frame, effect)
            else:
                result = self._call(event, frame, effect, (*active, definition.id))
                if effect.handed_off:
                    return None
                if event.result_use == "returned" and result is not None:
                    returned = result
        if returned is not None:
            return returned
        result = self._own_result(frame, initial)
        if result == "frame":
            effect.guards.extend(self._reads_tested(frame) + frame.guards)
        return result

    def _events(self, body: Body) -> list[_Event]:
        """Assignments, accesses and calls whose guard is not false, in source order."""
        events: list[_Event] = [*body.assignments, *body.accesses, *body.calls]
        return sorted((e for e in events if self.config.holds(e.condition) is not False), key=_position)

    # --- pointers ------------------------------------------------------------------------------------

    def _alias(self, assignment: Assignment, frame: _Frame, effect: Effect) -> None:
        """`p = arch_ftrace_regs(fregs)`, `p = &arch_ftrace_regs(fregs)->regs` and `p = q` move roles."""
        if assignment.lhs_var is None or assignment.lhs_member or assignment.lhs_deref:
            return
        role: Role | None = None
        if assignment.rhs_kind == "call" and assignment.rhs_callee and self._is_cast(assignment.rhs_callee):
            call = next(
                (
                    c
                    for c in frame.body.calls
                    if c.line == assignment.line and c.callee == assignment.rhs_callee and c.args
                ),
                None,
            )
            role = frame.role(call.args[0].var) if call else None
        elif assignment.rhs_kind == "address":
            if self._frame_address(_access_at(frame.body, assignment.line, assignment.rhs_member, "address"), frame):
                role = Role.FRAME_PT_REGS
        elif assignment.rhs_kind == "var":
            role = frame.role(assignment.rhs_var)
        if role is not None:
            frame.env[assignment.lhs_var] = role
            effect.trail.append(frame.at(assignment.line))  # e.g. where a builder starts working in place

    def _is_cast(self, name: str) -> bool:
        """A function-like macro that only casts its argument (`arch_ftrace_regs`): it keeps the role."""
        definition = self.config.choose(name)
        return bool(definition and definition.kind == "macro" and _CAST_BODY.match(definition.macro_body or ""))

    def _frame_address(self, access: MemberAccess | None, frame: _Frame) -> bool:
        """`&arch_ftrace_regs(fregs)->regs` (or `&fregs->regs`): the address of the frame's whole pt_regs."""
        return (
            access is not None
            and access.access == "address"
            and self._base_role(access, frame) is Role.FRAME
            and self.shape.path(Role.FRAME, access.member) == ""
        )

    def _base_role(self, access: MemberAccess, frame: _Frame) -> Role | None:
        if access.base_call and not self._is_cast(access.base_call):
            return None
        return frame.role(access.base_var)

    # --- stores --------------------------------------------------------------------------------------

    def _access(self, access: MemberAccess, frame: _Frame, effect: Effect) -> None:
        role = self._base_role(access, frame)
        if role is None:
            return
        target: Target = "buffer" if role is Role.BUFFER else "frame"
        member = self.shape.path(role, access.member)
        if access.access in ("write", "readwrite"):
            assignment = next(
                (a for a in frame.body.assignments if a.line == access.line and a.lhs_member == access.member), None
            )
            value = self._stored_value(assignment, frame) if assignment else Live(access.member)
            effect.stores.append(Store(target, member, value, frame.at(access.line), frame.via))
        elif access.access == "read" and (asm := self._asm_store(frame.body.definition, access)) is not None:
            effect.stores.append(Store(target, member, Live(asm.value), frame.at(access.line), frame.via))
            effect.trail.extend(asm.evidence)
            effect.asm_used.append(asm)

    def _asm_store(self, definition: Definition, access: MemberAccess) -> AsmStore | None:
        return next((s for s in self.asm_stores if s.function == definition.name and s.member == access.member), None)

    def _stored_value(self, assignment: Assignment, frame: _Frame) -> Value:
        if assignment.operator == "|=":
            return SetBits(assignment.rhs_expr)
        if assignment.operator != "=":
            return Live(f"{assignment.operator} {assignment.rhs_expr}")
        if assignment.rhs_kind == "member" and assignment.rhs_member:
            source = _access_at(frame.body, assignment.line, assignment.rhs_member, "read")
            role = self._base_role(source, frame) if source else None
            if _on_frame(role):
                return Copy(self.shape.path(role, assignment.rhs_member))
            return Live(assignment.rhs_expr)
        bound = frame.env.get(assignment.rhs_var or "") if assignment.rhs_var_kind == "param" else None
        if bound is not None and not isinstance(bound, Role):
            return bound
        if assignment.rhs_kind in ("constant", "address") or (
            assignment.rhs_var_kind is None and assignment.rhs_kind in ("var", "cast")
        ):
            return Constant(assignment.rhs_expr)
        return Live(assignment.rhs_expr)

    # --- calls ---------------------------------------------------------------------------------------

    def _call(self, call: Call, frame: _Frame, effect: Effect, active: tuple[int, ...]) -> Result | None:
        bound = {arg.position: self._argument(arg, call, frame) for arg in call.args}
        roles = {b for b in bound.values() if isinstance(b, Role)}
        carries_frame = any(_on_frame(role) for role in roles)
        if call.callee in _COPIES or call.callee in _FILLS:
            self._block_store(call, frame, effect)
            return None
        if call.callee is None or call.callee in frame.body.locals or call.callee in frame.env:
            if carries_frame:
                effect.handed_off = call.at  # through a pointer: the handler
            elif Role.BUFFER in roles:
                effect.unresolved.append(f"{call.at}: the buffer is passed through a pointer")
            return None
        if not roles and call.result_use != "returned":
            return None
        if self._is_cast(call.callee):
            return None  # `arch_ftrace_regs(fregs)`: the role moves with the access, see _base_role
        callee = self.config.choose(call.callee, frame.body.definition.file)
        if callee is None:
            if roles:
                effect.unresolved.append(f"{call.at}: {call.callee}() receives the frame; it has no definition")
            return None
        if callee.id in active or len(active) >= MAX_DEPTH:
            return None
        if call.result_use == "condition" and carries_frame:
            frame.guards.extend(self._helper_guards(callee, bound))
        return self._interpret(callee, bound, effect, active, (*frame.via, call.at))

    def _argument(self, arg: CallArg, call: Call, frame: _Frame) -> Binding:
        bound = frame.env.get(arg.var or "")
        if bound is not None and not arg.member and not arg.address_of:
            return bound
        # `&arch_ftrace_regs(fregs)->regs`: the index records no root variable for a call base, but it
        # records the address-of access itself on that line.
        address = _access_at(frame.body, call.line, arg.member, "address") if arg.address_of and not arg.var else None
        if self._frame_address(address, frame):
            return Role.FRAME_PT_REGS
        if arg.var_kind in ("local", "param") or arg.inner_call:
            return Live(arg.expr)
        return Constant(arg.expr)

    def _block_store(self, call: Call, frame: _Frame, effect: Effect) -> None:
        """memcpy(dst, src, n) copies the source member's storage; memset(dst, 0, n) clears."""
        if len(call.args) < 2 or (role := frame.role(call.args[0].var)) is None:
            return
        target: Target = "buffer" if role is Role.BUFFER else "frame"
        member = self.shape.path(role, call.args[0].member or "")
        source = call.args[1]
        if call.callee in _FILLS:
            if source.expr.strip() == "0":
                effect.stores.append(Store(target, member, Zero(), call.at, frame.via))
            return
        source_role = frame.role(source.var)
        value: Value = Live(source.expr)
        if _on_frame(source_role):
            value = Copy(self.shape.path(source_role, source.member or ""))
        effect.stores.append(Store(target, member, value, call.at, frame.via))

    def _helper_guards(self, callee: Definition, bound: Mapping[int, Binding]) -> list[Guard]:
        """What a condition helper (s390 `test_pt_regs_flag(regs, PIF_FTRACE_FULL_REGS)`) reads of the frame."""
        body = self.config.facts.body(callee)
        names = {p.name: bound[p.position] for p in body.params if p.name and p.position in bound}
        helper = _Frame(body, names)
        return [
            Guard(self.shape.path(role, access.member), _substitute(access.mask, names), helper.at(access.line))
            for access in body.accesses
            if access.access == "read" and _on_frame(role := self._base_role(access, helper))
        ]

    # --- results -------------------------------------------------------------------------------------

    def _own_result(self, frame: _Frame, initial: Mapping[str, Binding]) -> Result | None:
        """What a definition returns when it does not return a callee's result.

        The frame when it takes the frame's address outside an assignment (`return &...->regs;`), or
        returns through a local pointing at the frame; a pt_regs parameter the caller bound to its
        buffer is what a builder returns (`return regs;`), wherever it points by the end.
        """
        body = frame.body
        aliased = {a.line for a in body.assignments if a.rhs_kind == "address"}
        if any(self._frame_address(access, frame) for access in body.accesses if access.line not in aliased):
            return "frame"
        if body.definition.kind == "macro":
            return None
        buffer_params = [name for name, bound in initial.items() if bound is Role.BUFFER]
        if buffer_params:
            return "buffer" if frame.role(buffer_params[0]) is Role.BUFFER else "frame"
        returns_pointer = "*" in (body.definition.return_type or "")
        if returns_pointer and any(frame.role(name) is Role.FRAME_PT_REGS for name in body.locals):
            return "frame"
        return None

    def _reads_tested(self, frame: _Frame) -> list[Guard]:
        """Frame members read by a definition that returns the frame, other than values it copies."""
        copied = {(a.line, a.rhs_member) for a in frame.body.assignments if a.rhs_kind == "member"}
        return [
            Guard(self.shape.path(role, access.member), access.mask, frame.at(access.line))
            for access in frame.body.accesses
            if access.access == "read"
            and (access.line, access.member) not in copied
            and _on_frame(role := self._base_role(access, frame))
        ]


def _on_frame(role: Role | None) -> TypeGuard[Role]:
    return role in (Role.FRAME, Role.FRAME_PT_REGS)


def _position(event: _Event) -> tuple[int, int, int]:
    if isinstance(event, Assignment):
        return event.line, 0, 0
    return event.line, event.col, 1 if isinstance(event, MemberAccess) else 2


def _access_at(body: Body, line: int, member: str | None, access: str) -> MemberAccess | None:
    return next((a for a in body.accesses if a.line == line and a.member == member and a.access == access), None)


def _substitute(mask: str | None, names: Mapping[str, Binding]) -> str | None:
    """`(1UL << flag)` with the argument bound to `flag` written in: `(1UL << PIF_FTRACE_FULL_REGS)`."""
    if mask is None:
        return None

    def replace(match: re.Match[str]) -> str:
        bound = names.get(match[0])
        return bound.text if isinstance(bound, Constant | Live) else match[0]

    return re.sub(r"[A-Za-z_]\w*", replace, mask)
