"""The check stage for one architecture: every source's frame pointer, propagated and joined with the frame models.

Owns turning propagation results into findings and clean entries (the JSON contract's shapes, README
"Audit JSON"). For each seed of rules/sources.toml it runs the arch's propagation, then:
- every member access reached is a `direct` consumer access;
- a reached call of a `reads_any` bridge (a BPF program run on the frame) reads any member
  (`bpf-program`), and the helpers a kprobe program may call with its ctx (derived from the
  `calls_helpers` bridges' func_proto switch) are propagated from their ctx parameter (`bpf-helper`);
- a reached `reads_by_table` / `dynamic_read` bridge function reads the members derived from its C
  (`perf-register-table`, `dynamic`), as one access with that member set.
Each consumer access is judged against every frame model of the source's producer and contexts on
the arch (`regaudit.audit.verdict`). A finding keeps the shortest path found for it. Each seed's scope
(the functions its walks analysed, the names they call, the cells they filled, the names the frame
oracle read) is kept so `regaudit check` re-runs only the seeds a patch can change, and so is each walk of
a helper body (`HelperWalk`), which `regaudit check` takes over when the patch leaves it alone.

Limits, stated so a missing finding is explained: the walk is flow-insensitive per function (see
`regaudit.flow.propagate`); every BPF runner is taken to run a kprobe-type program (true for every
source in rules/sources.toml: kprobe_multi links and kprobe/fprobe trace events); helpers are
followed one level (a helper that runs another program is not re-entered); frame models come from
the modelled build even with --config, which decides guards on paths, accesses and models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from regaudit.arch.frames import FrameModel
from regaudit.audit.decide import FrameOracle
from regaudit.audit.seeds import SourceSeed
from regaudit.audit.verdict import Verdict, judge
from regaudit.flow import bpf_helpers, register_reads
from regaudit.flow.propagate import FlowProgram, Hop, Propagation, Scope, Seed
from regaudit.ruleset.flow_rules import Bridge
from regaudit.subsystems import Maintainers

_READING_KINDS = frozenset({"reads_any", "reads_by_table", "dynamic_read"})
SeedKey = tuple[str, str, str, int]  # a seed as findings cite it: source rule, function, file, line
SOURCE_FIELDS = ("rule", "function", "file", "line")  # the JSON contract's `source` object, in SeedKey order


@dataclass(frozen=True)
class ArchOutcome:
    """One arch's findings and clean entries, and what each seed's result depended on (`Scope`)."""

    findings: list[dict[str, Any]]
    cleans: list[dict[str, Any]]
    scopes: dict[SeedKey, Scope]
    walks: list[HelperWalk] = field(default_factory=list)  # every helper walk the check holds, in walk order


@dataclass(frozen=True)
class ConsumerAccess:
    """An access to the frame a reviewer can point at: the last hop of `path` is its line."""

    function: str
    file: str
    line: int
    member: str
    access: str
    mask: str | None
    via: str
    path: tuple[Hop, ...]
    within: tuple[str, ...] | None = None  # the members a derived read can touch

    def to_json(self) -> dict[str, Any]:
        shallow = {name: getattr(self, name) for name in self.__dataclass_fields__}  # asdict would deep-copy
        return {**shallow, "path": [[hop.function, hop.file, hop.line, hop.condition] for hop in self.path]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConsumerAccess:
        within = data["within"]
        return cls(**{**data, "path": tuple(Hop(*hop) for hop in data["path"]),
                      "within": None if within is None else tuple(within)})

    def moved(self, place: Callable[[str, int], int | None]) -> ConsumerAccess | None:
        """The access with every line moved by `place` (file, line → new line); None when one has no place."""
        hops = [(hop, place(hop.file, hop.line)) for hop in self.path]
        line = place(self.file, self.line)
        if line is None or any(new is None for _hop, new in hops):
            return None
        return replace(self, line=line, path=tuple(replace(hop, line=new) for hop, new in hops))


@dataclass(frozen=True)
class _Arrival:
    """The frame handed to a named function (an escape or an entered definition)."""

    function: str
    positions: tuple[int, ...]
    path: tuple[Hop, ...]  # ends with the call


_Answers = dict[tuple[str, frozenset[str]], bool | None]


@dataclass(frozen=True)
class HelperWalk:
    """One walk of a BPF helper's body from its ctx parameter: what the frame oracle answered to each question
    it asked (a frame model giving the same answers takes the walk over), the accesses found and its scope."""

    function: str
    position: int
    answers: _Answers
    accesses: list[ConsumerAccess]
    scope: Scope

    def to_json(self) -> dict[str, Any]:
        return {"function": self.function, "position": self.position,
                "answers": [[condition, sorted(frame_vars), answer]
                            for (condition, frame_vars), answer in self.answers.items()],
                "accesses": [access.to_json() for access in self.accesses], "scope": self.scope.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HelperWalk:
        return cls(data["function"], data["position"],
                   {(condition, frozenset(frame_vars)): answer for condition, frame_vars, answer in data["answers"]},
                   [ConsumerAccess.from_json(access) for access in data["accesses"]], Scope.from_json(data["scope"]))

    def moved(self, place: Callable[[str, int], int | None]) -> HelperWalk | None:
        """The walk with its lines moved by `place` (see `ConsumerAccess.moved`); None when one has no place."""
        accesses = [access.moved(place) for access in self.accesses]
        if any(access is None for access in accesses):
            return None
        return replace(self, accesses=[access for access in accesses if access is not None])


class _RecordingOracle:
    """A branch oracle that remembers every question a walk asked it and its answer."""

    def __init__(self, oracle: FrameOracle) -> None:
        self.oracle = oracle
        self.answers: _Answers = {}

    def decide(self, condition: str, frame_vars: frozenset[str]) -> bool | None:
        question = (condition, frame_vars)
        if question not in self.answers:
            self.answers[question] = self.oracle.decide(condition, frame_vars)
        return self.answers[question]


class ArchCheck:
    """One architecture's check: the compiled program, its frame models and its bridges."""

    def __init__(self, program: FlowProgram, tree: Path, models: list[FrameModel], bridges: list[Bridge],
                 maintainers: Maintainers,
                 helper_lists: dict[str, list[bpf_helpers.HelperEntry]] | None = None,
                 helper_walks: list[HelperWalk] | None = None) -> None:
        """`helper_lists`: BPF helper lists by bridge name, shared between the arches of one audit;
        `helper_walks`: walks of helper bodies known to hold for this arch's program (`regaudit check`
        takes over those of the base audit its patch cannot change)."""
        self.program, self.tree, self.maintainers = program, tree, maintainers
        self.helper_lists = {} if helper_lists is None else helper_lists
        self.arch = program.config.arch
        self.models: dict[tuple[str, str], list[FrameModel]] = {}
        for model in models:
            if model.arch == self.arch and model.result != "null":
                self.models.setdefault((model.producer, model.context), []).append(model)
        self.bridges = [b for b in bridges if b.arch in (None, self.arch)]
        self._model_walks: dict[tuple[str, int, tuple[str, ...]], HelperWalk] = {}  # (helper, position, model)
        self._oracles: dict[tuple[str, ...], FrameOracle] = {}
        self._derived: dict[str, tuple[str, ...] | None] = {}
        # per (helper, ctx position): each distinct walk, with the oracle's answers it depended on
        self._helper_walks: dict[tuple[str, int], list[HelperWalk]] = {}
        for walk in helper_walks or ():
            self._helper_walks.setdefault((walk.function, walk.position), []).append(walk)
        self._used = Scope()  # what the seed being checked depended on so far

    def run(self, seeds: list[SourceSeed], only: set[SeedKey] | None = None) -> ArchOutcome:
        """Findings and clean entries of every seed (of those in `only` when given), in the JSON contract's
        shape, and what each seed's result depended on."""
        findings: dict[tuple[Any, ...], dict[str, Any]] = {}
        cleans = []
        scopes: dict[SeedKey, Scope] = {}
        for source_seed in seeds:
            key = seed_key(source_seed)
            if only is not None and key not in only:
                continue
            models = [m for context in source_seed.contexts
                      for m in self.models.get((source_seed.source.producer, context), [])]
            self._used = Scope()
            for model in models:  # none: the producer builds no frame on this arch (or returns NULL)
                oracle = self._oracle(model)
                propagation = self.program.run(source_seed.seed, oracle)
                accesses = self._accesses(propagation, model, follow_programs=True)
                self._used |= propagation.scope | Scope(names=frozenset(oracle.consulted))
                if not accesses and not self.program.has(source_seed.seed):
                    break  # the seed's function is not part of this arch's program
                found = 0
                for access in accesses:
                    for verdict in judge(model, access.member, access.access, access.mask, access.within):
                        finding = self._finding(source_seed, model, access, verdict)
                        if finding is None:
                            continue
                        found += verdict.access == "read"
                        place = (finding["fingerprint"], source_seed.source.name, source_seed.file,
                                 source_seed.line, access.file, access.line)
                        if place not in findings or len(finding["path"]) < len(findings[place]["path"]):
                            findings[place] = finding
                if not found:
                    cleans.append(self._clean(source_seed, model, accesses))
            scopes[key] = scopes.get(key, Scope()) | self._used
        return ArchOutcome(list(findings.values()), cleans, scopes,
                           [walk for walks in self._helper_walks.values() for walk in walks])

    # --- consumer accesses ------------------------------------------------------------------------------

    def _oracle(self, model: FrameModel) -> FrameOracle:
        if model.key not in self._oracles:
            self._oracles[model.key] = FrameOracle(self.program, model)
        return self._oracles[model.key]

    def _accesses(self, propagation: Propagation, model: FrameModel, follow_programs: bool) -> list[ConsumerAccess]:
        accesses = [
            ConsumerAccess(r.function, r.file, r.line, r.member, r.access, r.mask, "direct",
                           (*r.path, Hop(r.function, r.file, r.line, r.condition)))
            for r in propagation.reaches if r.access != "address"
        ]
        arrivals = [_Arrival(e.callee_expr, (e.position,),
                             (*e.path[:-1], _with_guard(e.path[-1], e.condition)))
                    for e in propagation.escapes]
        arrivals += [_Arrival(e.function, e.positions, e.path) for e in propagation.entered]
        readers = {bridge.function for bridge in self.bridges if bridge.kind in _READING_KINDS}
        for arrival in sorted(arrivals, key=lambda a: len(a.path)):
            if arrival.function in readers and readers & {hop.function for hop in arrival.path}:
                # inside a bridge that already accounts for the read: trace_call_bpf -> bpf_prog_run_array
                # is one program run, perf_reg_value's table is narrower than its regs_get_register
                continue
            for bridge in self.bridges:
                if bridge.function == arrival.function and bridge.position in arrival.positions:
                    accesses += self._bridged(bridge, arrival, model, follow_programs)
        return accesses

    def _bridged(self, bridge: Bridge, arrival: _Arrival, model: FrameModel,
                 follow_programs: bool) -> list[ConsumerAccess]:
        call = arrival.path[-1]
        if bridge.kind == "reads_any":
            if not follow_programs:
                return []
            program = ConsumerAccess(bridge.function, call.file, call.line, "*", "read", None, "bpf-program",
                                     arrival.path)
            return [program, *self._helpers(arrival.path, model)]
        if bridge.kind in ("reads_by_table", "dynamic_read"):
            members = self._derived_members(bridge)
            if not members:
                return []
            via = "perf-register-table" if bridge.kind == "reads_by_table" else "dynamic"
            return [ConsumerAccess(bridge.function, call.file, call.line, "*", "read", None, via, arrival.path,
                                   members)]
        return []  # calls_helpers bridges are applied with the program run they belong to

    def _helpers(self, path: tuple[Hop, ...], model: FrameModel) -> list[ConsumerAccess]:
        accesses = []
        for bridge in self.bridges:
            if bridge.kind != "calls_helpers":
                continue
            for helper in self._helper_list(bridge):
                offer = Hop(helper.via[-1] if helper.via else bridge.proto_function or "", helper.file, helper.line,
                            helper.condition)
                for position in helper.ctx_positions:
                    for access in self._helper_body(helper.function, position, model):
                        accesses.append(ConsumerAccess(access.function, access.file, access.line, access.member,
                                                       access.access, access.mask, "bpf-helper",
                                                       (*path, offer, *access.path), access.within))
        return accesses

    def _helper_list(self, bridge: Bridge) -> list[bpf_helpers.HelperEntry]:
        """The helpers of the bridge's program type: generic C, derived once per audit (shared by the arches)."""
        if bridge.name not in self.helper_lists:
            self.helper_lists[bridge.name] = bpf_helpers.bpf_helpers(self.program.db_path, self.tree, bridge)
        return self.helper_lists[bridge.name]

    def _helper_body(self, function: str, position: int, model: FrameModel) -> list[ConsumerAccess]:
        """What a helper does with its ctx parameter, cached per frame model. A model's frame enters the walk
        only through the branch conditions its oracle decides, so a walk is taken over from another model whose
        oracle answered each question this walk asked in the same way."""
        key = (function, position, model.key)
        if key not in self._model_walks:
            oracle = self._oracle(model)
            walks = self._helper_walks.setdefault((function, position), [])
            walk = next((walk for walk in walks if all(oracle.decide(*question) == answer
                                                      for question, answer in walk.answers.items())), None)
            if walk is None:
                recording = _RecordingOracle(oracle)
                found, scope = [], Scope(names=frozenset({function}))
                for function_id in self.program.functions_named(function):
                    propagation = self.program.run(Seed(f"helper:{function}", function_id, param=position),
                                                   recording)
                    found += self._accesses(propagation, model, follow_programs=False)
                    scope |= propagation.scope
                walk = HelperWalk(function, position, recording.answers, found, scope)
                walks.append(walk)
            self._model_walks[key] = walk
        self._used |= self._model_walks[key].scope
        return self._model_walks[key].accesses

    def _derived_members(self, bridge: Bridge) -> tuple[str, ...] | None:
        if bridge.name not in self._derived:
            derive: Callable[..., list[register_reads.DerivedRead]] = (
                register_reads.table_reads if bridge.kind == "reads_by_table" else register_reads.dynamic_reads)
            reads = derive(self.program.db_path, self.tree, self.arch, bridge)
            self._derived[bridge.name] = tuple(dict.fromkeys(read.member for read in reads)) or None
        return self._derived[bridge.name]

    # --- records ------------------------------------------------------------------------------------------

    def _finding(self, source_seed: SourceSeed, model: FrameModel, access: ConsumerAccess,
                 verdict: Verdict) -> dict[str, Any] | None:
        conditions = self._open_conditions([hop.condition for hop in access.path] + list(model.conditions))
        if conditions is None:
            return None  # the build the user gave compiles a hop, the access or the frame out
        subsystem = self.maintainers.classify(access.file)
        path = [{"function": h.function, "file": h.file, "line": h.line, "condition": h.condition}
                for h in access.path]
        return {
            "fingerprint": fingerprint(self.arch, model, verdict, access),
            "arch": self.arch,
            "subsystem": subsystem.coarse,
            "maintainers": subsystem.section,
            "member": verdict.member,
            "reaches": list(verdict.reaches),
            "access": verdict.access,
            "via": access.via,
            "mask": access.mask,
            "state": verdict.state,
            "producer": _producer(model),
            "source": _source(source_seed),
            "consumer": {"function": access.function, "file": access.file, "line": access.line},
            "path": path,
            "conditions": conditions,
        }

    def _clean(self, source_seed: SourceSeed, model: FrameModel, accesses: list[ConsumerAccess]) -> dict[str, Any]:
        reads = [a for a in accesses if a.access in ("read", "readwrite")]
        return {"arch": self.arch, "source": _source(source_seed), "producer": _producer(model),
                "accesses": len(reads), "members": sorted({a.member for a in reads})}

    def _open_conditions(self, conditions: list[str]) -> list[str] | None:
        """The guards still open, in order; None when one is false in the build."""
        kept: list[str] = []
        for condition in dict.fromkeys(c for c in conditions if c):
            value = self.program.config.holds(condition)
            if value is False:
                return None
            if value is None:
                kept.append(condition)
        return kept


def seed_key(source_seed: SourceSeed) -> SeedKey:
    return source_seed.source.name, source_seed.function, source_seed.file, source_seed.line


def source_json(key: SeedKey) -> dict[str, Any]:
    """The `source` object findings, clean entries and seed scopes cite a seed by."""
    return dict(zip(SOURCE_FIELDS, key, strict=True))


def source_key(source: dict[str, Any]) -> SeedKey:
    """The seed a `source` object cites (`source_json` read back)."""
    rule, function, file, line = (source[name] for name in SOURCE_FIELDS)
    return rule, function, file, line


def fingerprint(arch: str, model: FrameModel, verdict: Verdict, access: ConsumerAccess) -> str:
    """16 hex digits over what identifies a finding, never a line number."""
    parts = [arch, model.producer, model.context, model.trampoline, verdict.member, verdict.access, access.via,
             access.function, *(hop.function for hop in access.path)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _with_guard(hop: Hop, condition: str) -> Hop:
    return hop if hop.condition or not condition else Hop(hop.function, hop.file, hop.line, condition)


def _producer(model: FrameModel) -> dict[str, Any]:
    file, _, line = (model.evidence[0] if model.evidence else ":0").rpartition(":")
    return {"api": model.producer, "context": model.context, "trampoline": model.trampoline, "file": file,
            "line": int(line or 0)}


def _source(source_seed: SourceSeed) -> dict[str, Any]:
    return source_json(seed_key(source_seed))
