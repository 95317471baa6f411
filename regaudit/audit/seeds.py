"""Where each rules/sources.toml entry puts a frame pointer in this tree: the seeds of the propagation.

Owns the translation of a `Source` (a builder call's result or buffer argument, or a handler
parameter of a function-pointer field) into concrete `Seed`s, one per place: a call site in its
caller, or a function bound to the field. An entry restricted to one `caller` wins there over the
unrestricted entry for the same builder, so each call site is seeded once, by the most precise rule.
A buffer argument that is not a plain variable (`bpf_kprobe_multi_pt_regs_ptr()`), or that the call's
result is assigned back to (`regs = ftrace_fill_perf_regs(fregs, regs)`), is not seeded: the
call-result entry of the same builder covers what the caller uses.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from regaudit.facts import audit_facts
from regaudit.facts.link_facts import bindings, member_types, typedef_types
from regaudit.flow.link import StructNames
from regaudit.flow.propagate import Seed
from regaudit.ruleset.flow_rules import Source


@dataclass(frozen=True)
class SourceSeed:
    """One place a source's frame pointer is born, as the findings cite it."""

    source: Source
    seed: Seed
    function: str
    file: str
    line: int

    @property
    def contexts(self) -> tuple[str, ...]:
        return ("entry", "exit") if self.source.context == "both" else (self.source.context,)


def source_seeds(conn: sqlite3.Connection, sources: list[Source]) -> list[SourceSeed]:
    """Every seed of `sources` in the indexed tree, in rule order then file order."""
    restricted = {(s.function, s.caller) for s in sources if s.kind == "call_result" and s.caller}
    # A builder called inside another builder (arch_ftrace_get_regs in ftrace_get_regs) reaches its
    # consumers through the outer builder's callers, each seeded with the context of its own entry.
    restricted |= {(s.function, outer.function) for s in sources for outer in sources
                   if s.kind == outer.kind == "call_result" and outer.function}
    seeds: list[SourceSeed] = []
    structs: StructNames | None = None
    for source in sources:
        if source.kind == "parameter":
            structs = structs or StructNames(typedef_types(conn), member_types(conn))
            seeds += _parameter_seeds(conn, source, structs)
        else:
            seeds += _call_seeds(conn, source, restricted)
    return seeds


def _call_seeds(conn: sqlite3.Connection, source: Source, restricted: set[tuple[str | None, str]]) -> list[SourceSeed]:
    seeds = []
    for call in audit_facts.builder_calls(conn, source.function or ""):
        if source.caller is not None and call.caller != source.caller:
            continue
        if source.kind == "call_result":
            if source.caller is None and (source.function, call.caller) in restricted:
                continue  # a caller-specific entry, or an outer builder, describes this site
            seed = Seed(source.name, call.caller_id, returned_by=source.function, line=call.line)
        else:
            var = call.arg_vars.get(source.position or 0)
            if var is None or var == call.result_var:
                continue
            seed = Seed(source.name, call.caller_id, var=var, line=call.line)
        seeds.append(SourceSeed(source, seed, call.caller, call.file, call.line))
    return seeds


def _parameter_seeds(conn: sqlite3.Connection, source: Source, structs: StructNames) -> list[SourceSeed]:
    targets = sorted({b.target for b in bindings(conn)
                      if re.split(r"\.|->", b.field)[-1] == source.field and structs.holding(b) == source.struct})
    return [SourceSeed(source, Seed(source.name, function.id, param=source.position, line=function.line),
                       function.name, function.file, function.line)
            for target in targets for function in audit_facts.functions_by_name(conn, target)]
