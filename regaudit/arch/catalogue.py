"""The rule data frame models start from: rules/frames/<arch>.toml and rules/producers.toml, per series.

Owns reading those files into typed records for one kernel series: the trampolines of an arch
(falling back to the nearest verified series when a file has none for the tree's), the kinds of
trampoline with their Kconfig requirement and C entry point, the pt_regs builders, and the few
facts the fact database cannot show (asm stores, struct_group members). Every record keeps the
rule entry it came from, so models can cite its evidence and carry its drift. Loading and the
shared conventions are `regaudit.ruleset.load`; the frames schema is validated there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regaudit.arch.effects import AsmStore
from regaudit.arch.frames import MemberState
from regaudit.arch.kconfig import list_arches
from regaudit.arch.layout import StructGroup
from regaudit.errors import RuleDataError
from regaudit.ruleset.evidence import nearest_series, verified_series
from regaudit.ruleset.load import RuleFile, applies_to, evidence_items, load_rules


@dataclass(frozen=True)
class RuleEntry:
    """Where a piece of rule data sits, so its evidence and drift can follow it into models."""

    rule: RuleFile
    key: str  # 'trampoline[3]'
    series: str

    @property
    def evidence(self) -> tuple[str, ...]:
        return tuple(
            item.at
            for item in evidence_items(self.rule)
            if item.entry.startswith(f"{self.key}.") and applies_to(item.kernels, self.series)
        )


@dataclass(frozen=True)
class TrampolineKind:
    """A (mode, context) of rules/frames: when it exists and where C takes its frame over."""

    mode: str
    context: str
    producer: str  # the name of the frame as handlers receive it
    requires: str  # Kconfig expression over the arch's symbols
    receiver: str | None  # the generic C function the trampoline hands its frame to
    frame_param: int
    notes: str
    entry: RuleEntry


@dataclass(frozen=True)
class BuilderSpec:
    """A pt_regs builder consumers call on an ftrace_regs (`ftrace_partial_regs`, ...)."""

    producer: str
    function: str
    frame_param: int
    buffer_param: int | None
    on: tuple[str, ...]  # 'mode.context' of the trampolines whose frame it is applied to
    notes: str


@dataclass(frozen=True)
class Catalogue:
    """rules/producers.toml for one kernel series."""

    config: dict[str, Any]
    kinds: dict[tuple[str, str], TrampolineKind]
    builders: tuple[BuilderSpec, ...]
    asm_stores: dict[str, tuple[AsmStore, ...]]  # per arch
    struct_groups: dict[str, tuple[StructGroup, ...]]  # per arch
    entries: dict[AsmStore | StructGroup, RuleEntry]  # where each of those came from

    def entries_of(self, used: Iterable[AsmStore | StructGroup]) -> list[RuleEntry]:
        return [self.entries[item] for item in used]


@dataclass(frozen=True)
class Trampoline:
    """One rules/frames entry that holds for the tree's series (or the nearest verified one)."""

    name: str
    context: str
    mode: str
    layout: str
    written: tuple[str, ...]
    constant: dict[str, str]
    unwritten_state: MemberState
    claims: dict[str, tuple[str, ...]]  # member -> evidence lines whose claim names it
    notes: str
    entry: RuleEntry


def load_catalogue(series: str) -> Catalogue:
    (rule,) = load_rules("producers")
    data = rule.data
    kinds = {}
    for index, table in enumerate(_tables(rule, "trampoline_kind")):
        where = f"trampoline_kind[{index}]"
        kind = TrampolineKind(
            _field(rule, table, where, "mode"),
            _field(rule, table, where, "context"),
            _field(rule, table, where, "producer"),
            _field(rule, table, where, "requires"),
            table.get("receiver"),
            table.get("frame_param", 0),
            table.get("notes", ""),
            RuleEntry(rule, where, series),
        )
        kinds[kind.mode, kind.context] = kind
    builders = tuple(
        BuilderSpec(
            _field(rule, table, f"builder[{index}]", "producer"),
            _field(rule, table, f"builder[{index}]", "function"),
            table.get("frame_param", 0),
            table.get("buffer_param"),
            tuple(_field(rule, table, f"builder[{index}]", "on")),
            table.get("notes", ""),
        )
        for index, table in enumerate(_tables(rule, "builder"))
    )
    asm: dict[str, list[AsmStore]] = {}
    groups: dict[str, list[StructGroup]] = {}
    entries: dict[AsmStore | StructGroup, RuleEntry] = {}
    for where, table, entry in _per_arch_entries(rule, "asm_store", series):
        fields = [_field(rule, table, where, key) for key in ("function", "member", "value")]
        store = AsmStore(*fields, entry.evidence)
        asm.setdefault(table["arch"], []).append(store)
        entries[store] = entry
    for where, table, entry in _per_arch_entries(rule, "struct_group", series):
        fields = [_field(rule, table, where, key) for key in ("struct", "group", "after")]
        group = StructGroup(*fields, tuple(_field(rule, table, where, "members")), entry.evidence)
        groups.setdefault(table["arch"], []).append(group)
        entries[group] = entry
    return Catalogue(
        _field(rule, data, "", "config"),
        kinds,
        builders,
        {arch: tuple(items) for arch, items in asm.items()},
        {arch: tuple(items) for arch, items in groups.items()},
        entries,
    )


def trampolines_for(rule: RuleFile, series: str) -> tuple[list[Trampoline], str]:
    """The entries of one arch's frames file for `series`, and the series they were verified on."""
    used = series
    if not any(applies_to(_kernels(rule, table), series) for table in rule.data["trampoline"]):
        used = nearest_series(verified_series(rule), series) or series
    found = []
    for index, table in enumerate(rule.data["trampoline"]):
        if applies_to(_kernels(rule, table), used):
            entry = RuleEntry(rule, f"trampoline[{index}]", used)
            found.append(
                Trampoline(
                    table["name"],
                    table["context"],
                    table["mode"],
                    table["layout"],
                    tuple(table["written"]),
                    dict(table.get("constant", {})),
                    table["unwritten_state"],
                    _claims(entry),
                    table.get("notes", ""),
                    entry,
                )
            )
    return found, used


def _claims(entry: RuleEntry) -> dict[str, tuple[str, ...]]:
    """Member -> the evidence lines whose `claim` names it (`claim = "regs[0], regs[1]"`)."""
    claims: dict[str, list[str]] = {}
    for item in evidence_items(entry.rule):
        if item.entry.startswith(f"{entry.key}.") and applies_to(item.kernels, entry.series):
            for word in (item.claim or "").replace(",", " ").split():
                claims.setdefault(word, []).append(item.at)
    return {member: tuple(ats) for member, ats in claims.items()}


def _kernels(rule: RuleFile, table: dict[str, Any]) -> list[str] | None:
    return table.get("kernels") or rule.data.get("kernels")


def _tables(rule: RuleFile, key: str) -> list[dict[str, Any]]:
    tables = rule.data.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise RuleDataError(f"{rule.name}: {key} must be an array of tables ([[{key}]])")
    return tables


def _per_arch_entries(rule: RuleFile, key: str, series: str) -> list[tuple[str, dict[str, Any], RuleEntry]]:
    """(where, table, entry) of the `key` tables that hold for `series`."""
    found = []
    for index, table in enumerate(_tables(rule, key)):
        where = f"{key}[{index}]"
        _field(rule, table, where, "arch")
        if applies_to(_kernels(rule, table), series):
            found.append((where, table, RuleEntry(rule, where, series)))
    return found


def _field(rule: RuleFile, table: dict[str, Any], where: str, key: str) -> Any:
    if key not in table:
        raise RuleDataError(f"{rule.name}: {where + '.' if where else ''}{key}: missing")
    return table[key]


def modelled_arches(tree: Path) -> list[str]:
    """The tree's arches that rules/frames has frame rules for: what link, frames and audit cover by default."""
    return sorted(set(list_arches(tree)) & {rule.data["arch"] for rule in load_rules("frames")})
