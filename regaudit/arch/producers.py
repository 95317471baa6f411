"""Builds the frame models of a kernel tree: every (arch, producer, context) the tree supports.

Owns the composition. A model starts from what a trampoline stores (rules/frames/<arch>.toml, the
only hand data about assembly), adds the C stores made before a handler runs (fgraph's IP on exit,
rethook's return address), then, for the pt_regs builders consumers call (`ftrace_get_regs`,
`ftrace_partial_regs`, `ftrace_fill_perf_regs`), what the arch's definition of that builder does as
`regaudit.arch.effects` reads it from the fact database: in place in the trampoline's frame, or in a
buffer the caller supplies (`regaudit.arch.buffers`). Which trampolines exist comes from the arch's
Kconfig; entry points and the modelled build from rules/producers.toml (`regaudit.arch.catalogue`).
Each model carries the drift of the rule entries it used, so stale hand data shows in the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

from regaudit.arch.buffers import buffer_origin
from regaudit.arch.catalogue import (
    BuilderSpec,
    Catalogue,
    RuleEntry,
    Trampoline,
    TrampolineKind,
    load_catalogue,
    trampolines_for,
)
from regaudit.arch.config import BuildConfig, ConfigRules
from regaudit.arch.effects import (
    Binding,
    Constant,
    Copy,
    Effect,
    FrameShape,
    Guard,
    Interpreter,
    Live,
    Role,
    SetBits,
    Store,
    Zero,
)
from regaudit.arch.frames import TRAMPOLINE_FRAME, FrameModel, FrameResult, MemberValue
from regaudit.arch.kconfig import list_arches
from regaudit.arch.layout import Layout, ReadLines, choose_struct, struct_layout
from regaudit.errors import BadInput
from regaudit.facts.arch_facts import ArchFacts
from regaudit.ruleset.evidence import check_evidence, format_drift
from regaudit.ruleset.load import RuleFile, kernel_series, load_rules
from regaudit.tree import open_tree

Members = dict[str, MemberValue]
Drift = dict[tuple[Path, str], list[str]]  # (rules file, entry key) -> format_drift lines

PRODUCERS = (
    "ftrace_regs",
    "save_regs",
    "ftrace_get_regs",
    "ftrace_partial_regs",
    "ftrace_fill_perf_regs",
    "rethook",
    "kretprobe",
    "kprobe",
)
_ZERO_TEXTS = frozenset({"0", "0UL", "0ul", "(0)", "NULL"})


def build_frame_models(
    tree_path: str | Path,
    db_path: Path,
    arches: Sequence[str] | None = None,
    *,
    frame_rules: Sequence[RuleFile] | None = None,
) -> list[FrameModel]:
    """Every frame model of the tree for `arches` (default: each arch of the tree with frame rules).

    `db_path` is the tree's fact database (`regaudit index`); `frame_rules` defaults to
    rules/frames/*.toml. BadInput when the database was built from another kernel version or an
    arch has no frame rules.
    """
    tree = open_tree(tree_path)
    rules = {rule.data["arch"]: rule for rule in (load_rules("frames") if frame_rules is None else frame_rules)}
    unknown = sorted(set(arches or ()) - set(rules))
    if unknown:
        raise BadInput(f"no frame rules for arch {', '.join(unknown)} (known: {', '.join(sorted(rules))})")
    with ArchFacts(db_path) as facts:
        indexed = facts.kernel_version()
        if indexed and indexed != tree.version:
            raise BadInput(f"{db_path}: indexed from Linux {indexed}, but {tree.root} is {tree.version}")
        chosen = sorted(arches or set(rules) & set(list_arches(tree.root)))
        facts.require_arches(db_path, chosen)
        series = kernel_series(tree.version)
        catalogue = load_catalogue(series)
        drift = _drift_by_entry(tree.root, tree.version, [*rules.values(), *load_rules("producers")])
        read_lines = _line_reader(tree.root)
        models: list[FrameModel] = []
        for arch in chosen:
            site = _ArchSite.load(tree.root, arch, facts, catalogue, read_lines)
            models += _arch_models(site, rules[arch], series, catalogue, drift)
    return sorted(models, key=lambda m: (m.arch, m.context, PRODUCERS.index(m.producer), m.trampoline))


def _drift_by_entry(tree: Path, version: str, rules: list[RuleFile]) -> Drift:
    drifts: Drift = {}
    for drift in check_evidence(tree, version, rules):
        drifts.setdefault((drift.rule_file, drift.entry.split(".evidence")[0]), []).append(format_drift(drift))
    return drifts


def _line_reader(tree: Path) -> ReadLines:
    @cache
    def read(relative: str) -> list[str] | None:
        path = tree / relative
        return path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else None

    return read


@dataclass
class _ArchSite:
    """One arch's modelled build, its layouts and the interpreter over its facts."""

    arch: str
    config: BuildConfig
    catalogue: Catalogue
    pt_regs: Layout | None
    ftrace_regs: Layout | None  # the arch's own __arch_ftrace_regs, when it is not a pt_regs wrapper
    interpreter: Interpreter

    @classmethod
    def load(
        cls,
        tree: Path,
        arch: str,
        facts: ArchFacts,
        catalogue: Catalogue,
        read_lines: ReadLines,
    ) -> _ArchSite:
        config = BuildConfig.load(tree, arch, facts, ConfigRules.for_arch(catalogue.config, arch))
        groups = catalogue.struct_groups.get(arch, ())
        embedded, wrapper = _ftrace_regs_wrapper(config)
        ftrace_regs = None if embedded or wrapper is None else struct_layout(wrapper, config, read_lines, groups)
        interpreter = Interpreter(config, FrameShape(embedded), catalogue.asm_stores.get(arch, ()))
        pt_regs = struct_layout("pt_regs", config, read_lines, groups)
        return cls(arch, config, catalogue, pt_regs, ftrace_regs, interpreter)

    def layout(self, name: str) -> Layout | None:
        return self.pt_regs if name == "pt_regs" else self.ftrace_regs


def _ftrace_regs_wrapper(config: BuildConfig) -> tuple[str | None, str | None]:
    """(member, struct) when the arch's ftrace_regs wraps a pt_regs, else (None, its own struct).

    7.3's generic `struct __arch_ftrace_regs { struct pt_regs regs; }` (include/linux/ftrace_regs.h)
    and 6.1's `struct ftrace_regs { struct pt_regs regs; }` wrap one; arm64 and riscv (6.12+) do not.
    """
    for name in ("__arch_ftrace_regs", "ftrace_regs"):
        definition = choose_struct(name, config)
        if definition is not None:
            rows = [r for r in config.facts.struct_members(definition.id) if config.holds(r.condition) is not False]
            if len(rows) == 1 and rows[0].name and rows[0].type.split() == ["struct", "pt_regs"]:
                return rows[0].name, name
            return None, name
    return None, None


# --- models of one arch ------------------------------------------------------------------------------


@dataclass
class _Provenance:
    """Why a model says what it says: cited lines, open guards, notes, what could not be placed."""

    evidence: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    entries: list[RuleEntry] = field(default_factory=list)  # rule data used, for drift

    def add_effect(self, effect: Effect, catalogue: Catalogue) -> None:
        self.evidence += effect.trail + [at for store in effect.stores for at in store.chain]
        self.unresolved += effect.unresolved
        self.entries += catalogue.entries_of(effect.asm_used)

    def add_layout(self, layout: Layout, catalogue: Catalogue) -> None:
        self.conditions += [f"{layout.struct} {layout.at}: {layout.guard}"] if layout.guard else []
        self.conditions += _grouped_guards(layout.open_guards)
        self.notes += layout.notes
        self.entries += catalogue.entries_of(layout.groups)

    def __add__(self, other: _Provenance) -> _Provenance:
        return _Provenance(*(getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__))


def _arch_models(site: _ArchSite, rule: RuleFile, series: str, catalogue: Catalogue, drift: Drift) -> list[FrameModel]:
    trampolines, verified = trampolines_for(rule, series)
    models = []
    for trampoline in trampolines:
        kind = catalogue.kinds.get((trampoline.mode, trampoline.context))
        layout = site.layout(trampoline.layout)
        if kind is None or layout is None or site.config.kconfig_expression(kind.requires) is False:
            continue
        frame = _HandedFrame.build(site, trampoline, kind, layout, series)
        if verified != series:
            frame.why.notes.append(f"{rule.name} has no data verified on {series}; using {verified}'s unchecked")
        own = _Provenance(notes=[kind.notes])
        models.append(frame.model(kind.producer, frame.members, "frame", TRAMPOLINE_FRAME, own, drift))
        for builder in catalogue.builders:
            if f"{trampoline.mode}.{trampoline.context}" in builder.on:
                model = _built(frame, builder, drift)
                if model is not None:
                    models.append(model)
    return models


@dataclass
class _HandedFrame:
    """A trampoline's frame as its handler receives it: rule stores, then C stores before the handler."""

    site: _ArchSite
    trampoline: Trampoline
    layout: Layout
    series: str
    members: Members
    why: _Provenance

    @classmethod
    def build(
        cls, site: _ArchSite, trampoline: Trampoline, kind: TrampolineKind, layout: Layout, series: str
    ) -> _HandedFrame:
        why = _Provenance(
            list(trampoline.entry.evidence),
            site.config.open_selects(kind.requires),
            entries=[trampoline.entry, kind.entry],
        )
        why.add_layout(layout, site.catalogue)
        frame = cls(
            site,
            trampoline,
            layout,
            series,
            {name: MemberValue(trampoline.unwritten_state) for name in layout.members},
            why,
        )
        for name in trampoline.written:
            frame._set(name, MemberValue("populated", evidence=trampoline.claims.get(name, ())))
        for name, value in trampoline.constant.items():
            frame._set(name, MemberValue("constant", value, evidence=trampoline.claims.get(name, ())))
        if kind.receiver:
            frame._follow(kind.receiver, kind.frame_param)
        return frame

    def _set(self, name: str, value: MemberValue) -> None:
        leaves = self.layout.resolve(name)
        if not leaves:
            self.why.unresolved.append(
                f"{self.trampoline.entry.rule.name}: {self.trampoline.name} names {name}, "
                f"not a member of {self.layout.struct} ({self.layout.at})"
            )
        for leaf in leaves:
            self.members[leaf] = value

    def _follow(self, receiver_name: str, frame_param: int) -> None:
        """Apply the C stores `receiver_name` makes to the frame before it calls a handler."""
        config = self.site.config
        receiver = config.choose(receiver_name)
        if receiver is None:
            self.why.unresolved.append(f"{receiver_name}() has no definition in the fact database")
            return
        param = next((p for p in config.facts.body(receiver).params if p.position == frame_param), None)
        role = Role.FRAME_PT_REGS if param and param.type and "pt_regs" in param.type else Role.FRAME
        effect = self.site.interpreter.run(receiver, {frame_param: role})
        self.why.add_effect(effect, self.site.catalogue)
        stores = [store for store in effect.stores if store.target == "frame"]
        self.members = _applied(self.members, self.layout, stores, self.members, self.layout, self.why.unresolved)
        if effect.handed_off:
            self.why.notes.append(f"handler called at {effect.handed_off}; later C stores are not part of the frame")

    def model(
        self, producer: str, members: Members, result: FrameResult, storage: str, own: _Provenance, drift: Drift,
        never_written: Iterable[str] = (),
    ) -> FrameModel:
        why = self.why + own
        null = result == "null"
        return FrameModel(
            arch=self.site.arch,
            kernel=self.series,
            producer=producer,
            context=self.trampoline.context,
            trampoline=self.trampoline.name,
            mode=self.trampoline.mode,
            layout=self.layout.struct if producer not in _BUILT else "pt_regs",
            result=result,
            members={} if null else members,
            storage="" if null else storage,
            evidence=_unique(why.evidence),
            conditions=_unique(why.conditions),
            drift=_unique(line for entry in why.entries for line in drift.get((entry.rule.path, entry.key), [])),
            notes=_unique(why.notes),
            rule_notes=self.trampoline.notes,
            unresolved=_unique(why.unresolved),
            never_written=() if null else tuple(never_written),
        )


_BUILT = frozenset({"ftrace_get_regs", "ftrace_partial_regs", "ftrace_fill_perf_regs"})


def _built(frame: _HandedFrame, builder: BuilderSpec, drift: Drift) -> FrameModel | None:
    """The pt_regs `builder` makes from the handed frame, or None when the arch has no such builder."""
    site = frame.site
    definition = site.config.choose(builder.function)
    if definition is None:
        return None
    bindings: dict[int, Binding] = {builder.frame_param: Role.FRAME}
    if builder.buffer_param is not None:
        bindings[builder.buffer_param] = Role.BUFFER
    effect = site.interpreter.run(definition, bindings)
    own = _Provenance(notes=[builder.notes])
    own.add_effect(effect, site.catalogue)
    if site.config.holds(definition.condition) is None:
        own.conditions.append(f"{definition.at}: {definition.condition}")
    if effect.result == "null":
        return frame.model(builder.producer, {}, "null", "", own, drift)
    if effect.result == "frame" and frame.layout is site.pt_regs:
        result, notes = _guarded(effect.guards, frame.members, frame.layout)
        own.notes += notes
        stores = [store for store in effect.stores if store.target == "frame"]
        members = _applied(frame.members, frame.layout, stores, frame.members, frame.layout, own.unresolved)
        return frame.model(builder.producer, members, result, f"{TRAMPOLINE_FRAME} (in place)", own, drift)
    if effect.result == "buffer" and site.pt_regs is not None and builder.buffer_param is not None:
        origin = buffer_origin(site.config, site.interpreter, builder.function, builder.buffer_param)
        own.evidence += origin.evidence
        own.notes += origin.notes
        own.add_layout(site.pt_regs, site.catalogue)
        stores = [store for store in effect.stores if store.target == "buffer"]
        fresh = {name: MemberValue(origin.state) for name in site.pt_regs.members}
        members = _applied(fresh, site.pt_regs, stores, frame.members, frame.layout, own.unresolved)
        # only the builder writes the buffer: what its stores left as they were is zero since boot
        never_written = [name for name, value in members.items() if value is fresh[name]] \
            if origin.state == "zero" else []
        return frame.model(builder.producer, members, "frame", origin.storage, own, drift, never_written)
    own.unresolved.append(
        f"{definition.at}: {builder.function}() returns {effect.result or 'nothing known'} "
        f"for a {frame.layout.struct} frame"
    )
    return frame.model(builder.producer, {}, "undetermined", "", own, drift)


# --- applying stores ---------------------------------------------------------------------------------


def _applied(
    members: Members,
    layout: Layout,
    stores: Iterable[Store],
    source: Members,
    source_layout: Layout,
    unresolved: list[str],
) -> Members:
    """`members` after `stores` in order; a copy reads `source` (the frame as the builder found it).

    A copy of an array or group is member by member up to the shorter side, which is what a memcpy
    of `sizeof(source)` bytes does when both sides hold registers of one size.
    """
    result = dict(members)
    for store in stores:
        leaves = layout.resolve(store.member) if store.member else layout.members
        if not leaves:
            unresolved.append(f"{store.at}: stores {store.member}, not a member of {layout.struct} ({layout.at})")
            continue
        if isinstance(store.value, Copy):
            origins = source_layout.resolve(store.value.source) if store.value.source else source_layout.members
            if not origins:
                unresolved.append(f"{store.at}: copies {store.value.source}, not a member of {source_layout.struct}")
            for leaf, origin in zip(leaves, origins, strict=False):
                result[leaf] = _moved(source[origin], store.chain)
        else:
            for leaf in leaves:
                result[leaf] = _value_after(result[leaf], store.value, store.chain)
    return result


def _value_after(current: MemberValue, value: Constant | Live | SetBits | Zero, chain: tuple[str, ...]) -> MemberValue:
    if isinstance(value, Constant):
        return MemberValue("constant", value.text, evidence=chain)
    if isinstance(value, Zero):
        return MemberValue("zero", evidence=chain)
    if isinstance(value, Live):
        return MemberValue("populated", evidence=chain)
    if current.state == "constant":
        return MemberValue("constant", f"{current.value} | {value.mask}", evidence=(*current.evidence, *chain))
    if current.unpopulated:  # `|=` on a slot nobody wrote: only those bits mean something
        mask = f"{current.mask} | {value.mask}" if current.mask else value.mask
        return MemberValue(current.state, mask=mask, evidence=(*current.evidence, *chain))
    return _moved(current, chain)


def _moved(value: MemberValue, chain: tuple[str, ...]) -> MemberValue:
    """A copied or updated value: where it came from, then the stores that moved it."""
    return replace(value, evidence=tuple(dict.fromkeys((*value.evidence, *chain))))


def _guarded(guards: list[Guard], members: Members, layout: Layout) -> tuple[FrameResult, list[str]]:
    """NULL when a tested member holds a zero constant, the frame when every one holds a value.

    The guards are taken to mean "non-zero when the frame is full", as every arch's test is (x86 `cs`,
    powerpc `msr`, s390 `flags & PIF_FTRACE_FULL_REGS`); a test of an unwritten slot decides nothing.
    """
    results: list[FrameResult] = []
    notes = []
    for guard in guards:
        values = [members[leaf] for leaf in layout.resolve(guard.member)]
        tested = f"{guard.member} & {guard.mask}" if guard.mask else guard.member
        if any(v.state == "constant" and (v.value or "").strip() in _ZERO_TEXTS for v in values):
            results.append("null")
            notes.append(f"NULL: {tested} is tested ({guard.at}) and the trampoline stores 0 there")
        elif values and all(v.state in ("populated", "constant") for v in values):
            results.append("frame")
        else:
            results.append("undetermined")
            notes.append(f"{tested} is tested ({guard.at}) but nothing wrote it: the result is whatever the slot held")
    if "null" in results:
        return "null", notes
    return ("undetermined" if "undetermined" in results else "frame"), notes


def _grouped_guards(open_guards: dict[str, str]) -> list[str]:
    """'t2 t3 t4: guard' once per guard rather than once per member."""
    members: dict[str, list[str]] = {}
    for member, guard in open_guards.items():
        members.setdefault(guard, []).append(member)
    return [f"{' '.join(names)}: {guard}" for guard, names in members.items()]


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))
