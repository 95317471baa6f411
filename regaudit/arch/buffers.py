"""Where the pt_regs a builder fills comes from, and so what the members it leaves alone hold.

Owns following a builder's buffer argument back through its callers in the fact database: a helper
that returns a per-cpu pt_regs (`bpf_kprobe_multi_pt_regs_ptr()` is `this_cpu_ptr(&...)`), or a
function that stores one through an out-parameter (perf_trace_buf_alloc's
`*regs = this_cpu_ptr(&__perf_regs[rctx])`). A per-cpu pt_regs is reused by every call on that
CPU, so what the builder does not write is stale, unless the builder is the buffer's only writer:
then those members were never written by anyone and hold the zero of per-cpu storage. That is so
when the variable is named only in the helper that hands it out, and every call of the helper hands
it to the builder or to a function that writes nothing through it and keeps no pointer to it
(`ftrace_partial_regs_update(fregs, bpf_kprobe_multi_pt_regs_ptr())` reads ip and the return value
back). A consumer of the frame writing one of those members would break that; the verdict reports
such a write. A buffer whose origin is not traced, or a builder nobody calls, is "the caller's
buffer" and counted stale too: the builder leaves it as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from regaudit.arch.config import BuildConfig
from regaudit.arch.effects import Interpreter, Role
from regaudit.arch.frames import MemberState
from regaudit.facts.arch_facts import Call, CallArg


@dataclass(frozen=True)
class BufferOrigin:
    state: MemberState  # what the members the builder does not write hold
    storage: str  # 'per-cpu __perf_regs (kernel/events/core.c:11081)'
    evidence: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class PerCpu:
    name: str
    at: str  # path:line of its DEFINE_PER_CPU
    helper: str | None = None  # the function or macro returning it (`bpf_kprobe_multi_pt_regs_ptr`)


def buffer_origin(config: BuildConfig, interpreter: Interpreter, function: str, buffer_param: int) -> BufferOrigin:
    """The origin of the buffer every caller of `function` passes as argument `buffer_param`."""
    sites = [
        call
        for call in config.facts.call_sites(function)
        if config.in_scope(call.file) and config.holds(call.condition) is not False and len(call.args) > buffer_param
    ]
    if not sites:
        note = f"no caller of {function}() in this tree: members it does not write keep what the caller's buffer held"
        return BufferOrigin("stale", "the caller's buffer", (), (note,))
    evidence: list[str] = []
    variables: dict[PerCpu | None, None] = {}  # each site's per-cpu variable (None: not traced), once
    for call in sites:
        evidence.append(call.at)
        variable = _per_cpu_source(config, call, call.args[buffer_param])
        variables[variable] = None
        if variable is not None:
            evidence.append(variable.at)
    per_cpu = [variable for variable in variables if variable is not None]
    if not per_cpu:
        note = f"callers of {function}() pass a buffer whose origin was not traced; taken as left as it was"
        return BufferOrigin("stale", "the caller's buffer", tuple(evidence), (note,))
    storage = "; ".join(f"per-cpu {v.name} ({v.at})" for v in per_cpu)
    uses = [_only_written_by(config, interpreter, function, buffer_param, v) for v in per_cpu]
    if None not in variables and all(use is not None for use in uses):
        note = (f"{function}() is the only writer of {', '.join(v.name for v in per_cpu)}: what it does not write "
                "was never written and holds the zero of per-cpu storage (a consumer's write to it is reported)")
        evidence += [at for use in uses for at in use or ()]
        return BufferOrigin("zero", f"{storage}, written only by {function}()", tuple(dict.fromkeys(evidence)), (note,))
    return BufferOrigin("stale", storage, tuple(dict.fromkeys(evidence)), ())


def _only_written_by(config: BuildConfig, interpreter: Interpreter, function: str, buffer_param: int,
                     variable: PerCpu) -> tuple[str, ...] | None:
    """Where `variable` is handed out and used (path:line), when `function` is the only code writing it: it
    is named only in its helper, and every call of the helper is an argument that is `function`'s buffer
    or that a callee takes, writes nothing through, and does not return. None when that is not shown."""
    if variable.helper is None:
        return None
    named = [use for use in config.facts.variable_uses(variable.name)
             if config.in_scope(use.file) and config.holds(use.condition) is not False]
    if any(use.function != variable.helper for use in named):
        return None
    evidence = [use.at for use in named]
    for site in config.facts.call_sites(variable.helper):
        if not config.in_scope(site.file) or config.holds(site.condition) is False:
            continue
        takers = _takers(config, site, variable.helper)
        if not takers:
            return None
        for call, position in takers:
            if (call.callee, position) != (function, buffer_param) and not _only_reads(config, interpreter, call,
                                                                                      position):
                return None
            evidence.append(call.at)
    return tuple(evidence)


def _takers(config: BuildConfig, site: Call, helper: str) -> list[tuple[Call, int]]:
    """The calls on `site`'s line taking a call of `helper` as a direct argument, with its position; none when
    the result goes anywhere else (a local, a return, a field)."""
    caller = config.facts.caller_of(site)
    return [(call, arg.position) for call in (config.facts.body(caller).calls if caller else ())
            if call.line == site.line for arg in call.args if arg.inner_call == helper]


def _only_reads(config: BuildConfig, interpreter: Interpreter, call: Call, position: int) -> bool:
    """Whether `call` neither writes through its argument `position` nor hands it back or on."""
    callee = config.choose(call.callee, call.file) if call.callee else None
    if callee is None or call.result_use != "discarded":
        return False
    effect = interpreter.run(callee, {position: Role.BUFFER})
    return not effect.unresolved and not any(store.target == "buffer" for store in effect.stores)


def _per_cpu_source(config: BuildConfig, call: Call, arg: CallArg) -> PerCpu | None:
    """The per-cpu pt_regs an argument comes from: a helper's result or an earlier out-parameter store."""
    if arg.inner_call:
        helper = config.choose(arg.inner_call, call.file)
        found = _per_cpu_argument(config, config.facts.body(helper).calls) if helper else None
        return replace(found, helper=arg.inner_call) if found else None
    if not (arg.var and arg.var_kind == "local" and call.function_id is not None):
        return None
    caller = config.facts.caller_of(call)
    for earlier in config.facts.body(caller).calls if caller else ():
        out = next((a for a in earlier.args if a.address_of and a.var == arg.var and not a.member), None)
        if out is not None and earlier.callee and earlier.line < call.line:
            found = _stored_per_cpu(config, earlier.callee, out.position, call.file)
            if found:
                return found
    return None


def _stored_per_cpu(config: BuildConfig, function: str, position: int, caller_file: str) -> PerCpu | None:
    """A per-cpu pt_regs `function` stores through its out-parameter `position`."""
    definition = config.choose(function, caller_file)
    if definition is None:
        return None
    body = config.facts.body(definition)
    name = next((p.name for p in body.params if p.position == position), None)
    lines = {a.line for a in body.assignments if a.lhs_deref and a.lhs_var == name and a.rhs_kind == "call"}
    return _per_cpu_argument(config, [c for c in body.calls if c.line in lines])


def _per_cpu_argument(config: BuildConfig, calls: Iterable[Call]) -> PerCpu | None:
    """The first per-cpu `struct pt_regs` variable passed to one of `calls` (`this_cpu_ptr(&v)`)."""
    for call in calls:
        for arg in call.args:
            variables = [
                v
                for v in config.facts.file_scope_variables(arg.var or "")
                if v.storage == "percpu"
                and "pt_regs" in v.type
                and config.in_scope(v.file)
                and config.holds(v.condition) is not False
            ]
            # The DEFINE_PER_CPU in a .c file is the storage; a header only declares it.
            variables.sort(key=lambda v: not v.file.endswith(".c"))
            if variables:
                return PerCpu(variables[0].name, f"{variables[0].file}:{variables[0].line}")
    return None
