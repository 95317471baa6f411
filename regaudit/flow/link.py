"""The link stage: per-architecture call resolution, fact database → `edges` (entry point `link_database`).

Owns what each architecture's program is (generic code, its own arch/<A>/ directory, and the
include/asm-generic/ headers it does not override), the order in which a call's candidate
definitions win (static or macro in the caller's file, then the arch's strong definition, then the
generic strong one, then a __weak one), and the resolution of calls through function-pointer fields
to the functions bound to those fields. `#if` guards are evaluated by `regaudit.arch.config.BuildConfig`;
guards it leaves open stay on the edge as its condition. All SQL is in `regaudit.facts.link_facts`;
this module does not interpret what a callee does.

Also owns which edges an index run of a few files can alter (`relink_scope`): given that run's
`IndexChanges`, an arch linked just before it has only those edges resolved again (the calls in the
changed files, the calls of the names they define or defined, the calls through a field they bind or
bound, or bound elsewhere to such a name) instead of all of them; anything that can change the whole
resolution relinks the arch anew.

Approximations, each erring towards an extra edge rather than a missed one: a definition in a
header (static inline or macro) is visible to every file of the program, as if included; a macro
and a function of the same name are ranked alike (the preprocessor would always pick the macro);
a call through a field reaches every function bound to a field of that name in the program.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, cached_property
from pathlib import Path

from regaudit import __version__
from regaudit.arch.catalogue import load_catalogue, modelled_arches
from regaudit.arch.config import BuildConfig, ConfigRules
from regaudit.arch.kconfig import Truth, require_arches
from regaudit.errors import BadInput
from regaudit.facts import link_facts, read
from regaudit.facts.arch_facts import ArchFacts
from regaudit.facts.link_facts import (
    Binding,
    DefinitionRow,
    DirectCall,
    Edge,
    FieldCall,
    IndexChanges,
    LinkedArch,
    TouchedFacts,
)
from regaudit.facts.store import FactStore, open_existing
from regaudit.forking import fork_map
from regaudit.ruleset.load import kernel_series
from regaudit.tree import open_tree

_ASM_GENERIC = "include/asm-generic/"
# Candidate tiers, best first (see `_tier`).
_SAME_FILE, _ARCH, _GENERIC, _WEAK = range(4)
_TYPEDEF_HOPS = 8
# More touched files than this relink every arch anew: a large patch reaches most calls anyway.
_MAX_RELINKED_FILES = 16
_BUILD_FILE = re.compile(r"(?:^|/)(?:Kconfig|Makefile|Kbuild)[^/]*$")


@dataclass(frozen=True)
class ArchLink:
    """What linking one architecture produced."""

    arch: str
    calls: int  # call sites in the arch's program whose guard is not false
    resolved_calls: int  # of those, calls with at least one edge
    edges: int
    seconds: float
    incremental: bool  # only the edges the last index run's changes can reach were resolved again


@dataclass
class LinkResult:
    db: Path
    run_id: int
    arches: list[ArchLink] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class Program:
    """The files one architecture's build can see."""

    arch: str
    overridden: frozenset[str]  # include/asm-generic/ headers replaced by arch/<arch>/include/asm/

    def sees(self, path: str) -> bool:
        if path.startswith("arch/"):
            # arch/x86/um/ belongs to ARCH=um (SUBARCH=x86), not to the x86 build.
            return path.startswith(f"arch/{self.arch}/") and not path.startswith(f"arch/{self.arch}/um/")
        return path not in self.overridden


def program_for(tree: Path, arch: str, generic_headers: list[str]) -> Program:
    """`arch`'s program: asm-generic/X.h is overridden when arch/<arch>/include/asm/X.h exists and does not
    itself include asm-generic/X.h (the wrapper idiom). Headers Kbuild lists as `generic-y` have no arch
    file in the source tree, so they stay visible."""
    overridden = set()
    for header in generic_headers:
        name = header.removeprefix(_ASM_GENERIC)
        own = tree / "arch" / arch / "include" / "asm" / name
        if own.is_file() and not _includes(own, f"asm-generic/{name}"):
            overridden.add(header)
    return Program(arch, frozenset(overridden))


def _includes(path: Path, header: str) -> bool:
    text = path.read_text(encoding="utf-8", errors="replace")
    return re.search(rf'#\s*include\s*[<"]{re.escape(header)}[>"]', text) is not None


def link_database(db_path: Path, tree_path: str | Path, arches: list[str] | None = None,
                  changes: IndexChanges | None = None, jobs: int | None = None) -> LinkResult:
    """Resolve the calls of the indexed tree for `arches` (default: the tree's arches with frame rules).

    Replaces the edges of the arches linked, keeps the others, and publishes atomically. With `changes`, the
    `IndexChanges` of the database's last index run, an arch linked just before that run is relinked only where
    the changed files can reach (see `relink_scope`). Arches linked anew are resolved in `jobs` processes
    (default: one per core). BadInput when the database is not an indexed one or was built from another kernel
    version.
    """
    started = time.perf_counter()
    db_path = Path(db_path)
    tree = open_tree(tree_path)
    open_existing(db_path).conn.close()
    require_arches(tree.root, arches or ())
    chosen = sorted(set(arches)) if arches else modelled_arches(tree.root)
    with FactStore(db_path) as store:
        index = link_facts.latest_index_run(store.conn)
        if index is None:
            raise BadInput(f"{db_path}: no finished index run; run `regaudit index` first")
        if index.kernel_version != tree.version:
            raise BadInput(f"{db_path}: indexed from Linux {index.kernel_version}, but {tree.root} is {tree.version}")
        read.require_indexed(store.conn, db_path, chosen)
        with ArchFacts(store.conn) as facts:
            linker = _Linker(store.conn, tree.root, facts, kernel_series(tree.version), changes)
            run_id = link_facts.start_link_run(store.conn, index, __version__, _now())
            result = LinkResult(db_path, run_id)
            # Each arch's edges are written as its worker returns them, while the others still read the facts
            # from the database the working copy was made from; a database written in place is read by the
            # workers themselves, and the edges would lock them out: they wait for the last worker.
            resolved = linker.resolve(chosen, store.snapshot or store.path, jobs)
            for arch in resolved if store.snapshot else list(resolved):
                if arch.recomputed is None:  # linked anew, after every incremental relink: edges replaced wholesale
                    store.defer_indexes("edges")
                result.arches.append(linker.record(run_id, arch))
        link_facts.finish_link_run(store.conn, run_id, _now())
    result.seconds = time.perf_counter() - started
    return result


@dataclass(frozen=True)
class RelinkScope:
    """What an index run changed that edges depend on: the calls located in `paths` and the calls of `names`
    (defined in those files before or after the run) are resolved again, with the calls through the fields the
    files bind (`_Linker._field_calls_reaching`)."""

    paths: frozenset[str]
    names: frozenset[str]
    before: TouchedFacts  # what the files held before the run
    after: TouchedFacts  # and after it


def relink_scope(conn: sqlite3.Connection, changes: IndexChanges, generic_headers: list[str]) -> RelinkScope | None:
    """The part of every arch's edges `changes` can alter; None when they can alter the whole resolution: many
    files, a Kconfig file or a Makefile (they decide the build), a header deciding which include/asm-generic/
    headers an arch overrides, or a macro a guard may test defined or undefined anew."""
    touched = changes.touched
    if len(touched) > _MAX_RELINKED_FILES or not all(_resolves_locally(path, generic_headers) for path in touched):
        return None
    after = link_facts.touched_facts(conn, touched)
    if link_facts.guards_test(conn, {name for name, _file, _condition in changes.before.macros ^ after.macros}):
        return None
    return RelinkScope(touched, changes.before.names | after.names, changes.before, after)


def _resolves_locally(path: str, generic_headers: list[str]) -> bool:
    """Whether a change of `path` leaves every arch's program (`program_for`) and build as they were. Besides
    facts, linking reads Kconfig files (`BuildConfig`), the top Makefile (the kernel version) and arch headers."""
    if _BUILD_FILE.search(path) or path.startswith(_ASM_GENERIC):
        return False
    arch_header = re.fullmatch(r"arch/[^/]+/include/asm/(.+)", path)
    return arch_header is None or f"{_ASM_GENERIC}{arch_header[1]}" not in generic_headers


class _Linker:
    """The facts every arch resolves against, read once in bulk (the calls by name only when an arch is linked
    anew)."""

    def __init__(self, conn: sqlite3.Connection, tree: Path, facts: ArchFacts, series: str,
                 changes: IndexChanges | None) -> None:
        self.conn = conn
        self.tree = tree
        self.facts = facts
        self.changes = changes
        self.config_rules = load_catalogue(series).config
        self.by_name: dict[str, list[DefinitionRow]] = defaultdict(list)
        for definition in link_facts.definitions(conn):
            self.by_name[definition.name].append(definition)
        self.files_defining = defining_files(self.by_name)
        self.generic_headers = sorted(
            {d.file for group in self.by_name.values() for d in group if d.file.startswith(_ASM_GENERIC)}
        )
        self.field_calls = link_facts.field_calls(conn)
        self.bindings = link_facts.bindings(conn)
        self.structs = StructNames(link_facts.typedef_types(conn), link_facts.member_types(conn))

    @cached_property
    def direct_calls(self) -> dict[tuple[str, str], list[DirectCall]]:
        """Every `name(...)` call, by (file, guard): each arch decides a guard once for all the calls under it."""
        return _by_guard(link_facts.direct_calls(self.conn))

    @cached_property
    def shadowed(self) -> set[tuple[int, str]]:
        return link_facts.local_names(self.conn)

    @cached_property
    def scope(self) -> RelinkScope | None:
        return None if self.changes is None else relink_scope(self.conn, self.changes, self.generic_headers)

    def resolve(self, arches: list[str], db_path: Path, jobs: int | None) -> Iterator[_Resolved]:
        """The edges of each arch: all of them for an arch linked anew, else those of the calls its relink scope
        reaches; the arches relinked come first. Several arches are resolved in forked processes that read the facts
        at `db_path` (the database the working copy was made from, or the working copy while the link run writes no
        edge)."""
        plans = {arch: self._relink_plan(arch) for arch in arches}
        anew = [arch for arch, plan in plans.items() if plan is None]
        # A relink resolves a few calls: cheaper here than the fork of a process holding every definition.
        yield from (self._resolve(arch, plan, self.conn, self.facts) for arch, plan in plans.items() if plan)
        if len(anew) <= 1:
            yield from (self._resolve(arch, None, self.conn, self.facts) for arch in anew)
            return
        # Read here, once (not in an assert, which -O drops): a forked worker must not use the parent's connection.
        _ = self.direct_calls, self.shadowed
        yield from fork_map(lambda arch: self._resolve_forked(arch, db_path), anew, jobs)

    def _relink_plan(self, arch: str) -> tuple[RelinkScope, LinkedArch] | None:
        """What to resolve again for an arch that can be relinked incrementally; None to link it anew."""
        linked = link_facts.linked_arch(self.conn, arch)
        scope = self._scope_after(linked)
        return None if scope is None or linked is None else (scope, linked)

    def _resolve_forked(self, arch: str, db_path: Path) -> _Resolved:
        conn = open_existing(db_path).conn  # the parent's connection must not cross the fork
        try:
            return self._resolve(arch, None, conn, ArchFacts(conn))
        finally:
            conn.close()

    def _resolve(self, arch: str, plan: tuple[RelinkScope, LinkedArch] | None, conn: sqlite3.Connection,
                 facts: ArchFacts) -> _Resolved:
        started = time.perf_counter()
        resolver = self._resolver(arch, facts)
        edges: list[Edge] = []
        if plan is None:
            calls = self._direct_edges(resolver, self.direct_calls, self.shadowed, edges)
            calls += self._pointer_edges(resolver, self.field_calls, edges)
            return _Resolved(arch, edges, calls, None, time.perf_counter() - started)
        scope, linked = plan
        recomputed = link_facts.calls_reaching(conn, arch, scope.paths, scope.names)
        shadowed = link_facts.local_names(conn, {call.function_id for call in recomputed if call.function_id})
        self._direct_edges(resolver, _by_guard(recomputed), shadowed, edges)
        through_fields = self._field_calls_reaching(scope)
        self._pointer_edges(resolver, through_fields, edges)
        calls = linked.calls - _visible(resolver, scope.before) + _visible(resolver, scope.after)
        return _Resolved(arch, edges, calls, [call.id for call in (*recomputed, *through_fields)],
                         time.perf_counter() - started)

    def record(self, run_id: int, resolved: _Resolved) -> ArchLink:
        """Write what `resolve` found: every edge of the arch, or those of the calls resolved again (and of every
        call through a field)."""
        started = time.perf_counter()
        if resolved.recomputed is None:
            counts = link_facts.replace_edges(self.conn, run_id, resolved.arch, resolved.edges, resolved.calls)
        else:
            counts = link_facts.update_edges(self.conn, run_id, resolved.arch, resolved.recomputed, resolved.edges,
                                             resolved.calls)
        return ArchLink(resolved.arch, resolved.calls, *counts, resolved.seconds + time.perf_counter() - started,
                        incremental=resolved.recomputed is not None)

    def _resolver(self, arch: str, facts: ArchFacts) -> Resolver:
        config = BuildConfig.load(self.tree, arch, facts, ConfigRules.for_arch(self.config_rules, arch))
        return Resolver(program_for(self.tree, arch, self.generic_headers), config, self.by_name, self.files_defining)

    def _scope_after(self, linked: LinkedArch | None) -> RelinkScope | None:
        """`scope` for an arch whose edges (written by the link `linked`) were current until the index run of
        `changes`, the only one to change facts since; None for any other arch."""
        if linked is None or self.changes is None:
            return None
        return self.scope if link_facts.index_runs_since(self.conn, linked.run_id) == [self.changes.run_id] else None

    def _direct_edges(self, resolver: Resolver, direct_calls: dict[tuple[str, str], list[DirectCall]],
                      shadowed: set[tuple[int, str]], edges: list[Edge]) -> int:
        """Append the edges of the `name(...)` calls `direct_calls` (by file and guard), but of those naming a
        parameter or local of their function (`shadowed`); returns how many of them the program has."""
        calls = 0
        arch, defined = resolver.program.arch, resolver.by_name
        for (file, condition), guarded in direct_calls.items():
            call_guard = resolver.open_guard(file, condition)
            if call_guard is None:
                continue
            calls += len(guarded)
            for call in guarded:
                if call.callee not in defined or (call.function_id, call.callee) in shadowed:
                    continue  # no definition indexed; or a parameter or local of that name: a function pointer
                edges.extend(
                    Edge(arch, call.id, call.function_id, target.definition.id, target.kind,
                         _conjoin(call_guard, *target.guards) if target.guards else call_guard)
                    for target in resolver.resolve(call.callee, file)
                )
        return calls

    def _field_calls_reaching(self, scope: RelinkScope) -> list[FieldCall]:
        """The calls through fields whose edges a change of `scope.paths` can alter: those in the files, and those
        through a field the files bind or bound, or bound elsewhere to a name they define or defined; all of them
        when the files' types changed (they name the struct holding a called field)."""
        if scope.before.types != scope.after.types:
            return self.field_calls
        fields = {_last_component(path) for path in scope.before.bound_fields | scope.after.bound_fields}
        fields |= {_last_component(binding.field) for binding in self.bindings if binding.target in scope.names}
        return [call for call in self.field_calls if call.file in scope.paths or _last_component(call.member) in fields]

    def _pointer_edges(self, resolver: Resolver, field_calls: list[FieldCall], edges: list[Edge]) -> int:
        """Append the edges of `field_calls`, calls through fields; returns how many of them the program has."""
        calls = 0
        called = {_last_component(call.member) for call in field_calls}
        bindings = [binding for binding in self.bindings if _last_component(binding.field) in called]
        targets = _bound_targets(resolver, bindings, self.structs)
        for call in field_calls:
            call_guard = resolver.open_guard(call.file, call.condition)
            if call_guard is not None:
                calls += 1
                call_struct = self.structs.of_type(call.base_type)
                edges.extend(_pointer_edges(resolver.program.arch, call, call_struct, call_guard, targets))
        return calls


@dataclass(frozen=True)
class _Resolved:
    """The edges `_Linker.resolve` found for one arch, before they are written."""

    arch: str
    edges: list[Edge]
    calls: int  # call sites in the arch's program whose guard is not false
    recomputed: list[int] | None  # the calls resolved again by an incremental relink; None: all, anew
    seconds: float


def _by_guard(calls: list[DirectCall]) -> dict[tuple[str, str], list[DirectCall]]:
    grouped: dict[tuple[str, str], list[DirectCall]] = defaultdict(list)
    for call in calls:
        grouped[(call.file, call.condition)].append(call)
    return grouped


def _visible(resolver: Resolver, facts: TouchedFacts) -> int:
    """Call sites of `facts` in the arch's program whose guard is not false."""
    return sum(count for path, condition, count in facts.call_sites if resolver.open_guard(path, condition) is not None)


@dataclass(frozen=True)
class Target:
    """A definition a name resolves to on one arch, with the guards left open on the way."""

    definition: DefinitionRow
    guards: tuple[str, ...]

    @property
    def kind(self) -> str:
        if self.definition.kind == "macro":
            return "macro"
        return "weak" if self.definition.weak else "direct"


class Resolver:
    """Name → definitions for one arch's program, memoised per (name, caller file when it matters), and the
    guard of a fact memoised per (file, condition)."""

    def __init__(self, program: Program, config: BuildConfig, by_name: dict[str, list[DefinitionRow]],
                 files_defining: dict[str, frozenset[str]]) -> None:
        """`files_defining`: the files of each name's definitions (`defining_files(by_name)`)."""
        self.program = program
        self.config = config
        self.by_name = by_name
        self.files_defining = files_defining
        self._memo: dict[tuple[str, str | None], tuple[Target, ...]] = {}
        self._guards: dict[tuple[str, str], str | None] = {}

    def open_guard(self, path: str, condition: str) -> str | None:
        """None when a fact at `path` under `condition` is not in the program; else the guard left open ('')."""
        key = (path, condition)
        if key not in self._guards:
            holds: Truth = self.config.holds(condition) if self.program.sees(path) else False
            self._guards[key] = None if holds is False else "" if holds else condition
        return self._guards[key]

    def resolve(self, name: str, caller_file: str) -> tuple[Target, ...]:
        """The definitions a call of `name` from `caller_file` may reach: every candidate of the best tier,
        and of the following tiers while no candidate so far is known to be compiled in."""
        # Only a definition in the caller's own file makes the answer depend on the file.
        key = (name, caller_file if caller_file in self.files_defining.get(name, ()) else None)
        if key not in self._memo:
            self._memo[key] = self._resolve(self.by_name.get(name, ()), caller_file)
        return self._memo[key]

    def _resolve(self, candidates: Sequence[DefinitionRow], caller_file: str) -> tuple[Target, ...]:
        tiers: dict[int, list[Target]] = defaultdict(list)
        for definition in candidates:
            tier = _tier(definition, caller_file)
            guard = None if tier is None else self.open_guard(definition.file, definition.condition)
            if tier is not None and guard is not None:
                tiers[tier].append(Target(definition, (guard,) if guard else ()))
        chosen: list[Target] = []
        for tier in sorted(tiers):
            chosen += tiers[tier]
            if any(not target.guards for target in tiers[tier]):
                break
        return tuple(chosen)


def defining_files(by_name: dict[str, list[DefinitionRow]]) -> dict[str, frozenset[str]]:
    """The files each name is defined in."""
    return {name: frozenset(definition.file for definition in group) for name, group in by_name.items()}


def _tier(definition: DefinitionRow, caller_file: str) -> int | None:
    """Rank of a candidate for a call from `caller_file`; None when the caller cannot see it at all."""
    if definition.file == caller_file and definition.storage in ("static", "macro"):
        return _SAME_FILE
    if definition.storage in ("static", "macro") and not definition.file.endswith(".h"):
        return None  # file-local to another .c file
    if definition.weak:
        return _WEAK
    return _ARCH if definition.file.startswith("arch/") else _GENERIC


@dataclass(frozen=True)
class _BoundTarget:
    binding: Binding
    holder: str | None  # the struct holding the bound field, when known
    target: Target
    guard: str  # the binding's own open guard


def _bound_targets(
    resolver: Resolver, bindings: list[Binding], structs: StructNames
) -> dict[str, list[_BoundTarget]]:
    """Functions bound to each field name (the last component of the binding's field path) on this arch."""
    by_field: dict[str, list[_BoundTarget]] = defaultdict(list)
    for binding in bindings:
        guard = resolver.open_guard(binding.file, binding.condition)
        if guard is None:
            continue
        for target in resolver.resolve(binding.target, binding.file):
            by_field[_last_component(binding.field)].append(
                _BoundTarget(binding, structs.holding(binding), target, guard)
            )
    return by_field


def _pointer_edges(arch: str, call: FieldCall, call_struct: str | None, call_guard: str,
                   targets: dict[str, list[_BoundTarget]]) -> Iterator[Edge]:
    """One edge per function bound to the called field; the least guarded binding of a function wins."""
    best: dict[int, str] = {}
    for bound in targets.get(_last_component(call.member), ()):
        if not _may_hold(call_struct, bound.holder):
            continue
        condition = _conjoin(call_guard, bound.guard, *bound.target.guards)
        callee = bound.target.definition.id
        if callee not in best or len(condition) < len(best[callee]):
            best[callee] = condition
    for callee, condition in best.items():
        yield Edge(arch, call.id, call.function_id, callee, "pointer", condition)


@dataclass(frozen=True)
class StructNames:
    """Names the struct that holds a field on both sides of a pointer call, through typedefs and nesting."""

    typedefs: dict[str, str]
    members: dict[tuple[str, str], str]
    # answers kept across arches (neither depends on the arch)
    _types: dict[str | None, str | None] = field(default_factory=dict, compare=False, repr=False)
    _holders: dict[tuple[str | None, str], str | None] = field(default_factory=dict, compare=False, repr=False)

    def of_type(self, type_text: str | None) -> str | None:
        """'fprobe' for 'const struct fprobe *'; a typedef of an anonymous struct names itself; else None."""
        if type_text not in self._types:
            self._types[type_text] = self._named(type_text)
        return self._types[type_text]

    def _named(self, type_text: str | None) -> str | None:
        for _ in range(_TYPEDEF_HOPS):
            text = re.sub(r"\b(?:const|volatile)\b|\*", " ", type_text or "").strip()
            match = re.fullmatch(r"(?:struct|union)\s+(\w+)", text)
            if match:
                return match.group(1)
            if text not in self.typedefs:
                return None
            type_text = self.typedefs[text]
            if type_text in ("struct", "union"):
                return text
        return None  # a typedef chain this long is a cycle between per-arch typedefs

    def holding(self, binding: Binding) -> str | None:
        """The struct holding the bound field's last component: `fp.entry_handler` of a
        `struct bpf_kprobe_multi_link` is held by the type of its member `fp` (`struct fprobe`)."""
        key = (binding.struct_type, binding.field)
        if key not in self._holders:
            holder = self.of_type(binding.struct_type)
            for component in re.split(r"\.|->", binding.field)[:-1]:
                if holder is None:
                    break
                holder = self.of_type(self.members.get((holder, component.split("[")[0])))
            self._holders[key] = holder
        return self._holders[key]


def _may_hold(call_struct: str | None, bound_struct: str | None) -> bool:
    """A binding reaches a call unless both sides name the struct holding the field, and they differ."""
    return call_struct is None or bound_struct is None or call_struct == bound_struct


@cache
def _last_component(member: str) -> str:
    return re.split(r"\.|->", member)[-1]


def _conjoin(*guards: str) -> str:
    parts = list(dict.fromkeys(guard for guard in guards if guard))
    return parts[0] if len(parts) == 1 else " && ".join(f"({part})" for part in parts)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
