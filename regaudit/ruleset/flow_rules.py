"""Loads and validates the flow-analysis rule data: rules/sources.toml and rules/bridges.toml.

Owns: the schema of those two files (what a source or a bridge entry must say, per kind), and turning
their entries into frozen records for one kernel series. Sources say where a `struct pt_regs *` is born
from an ftrace path and which frame model (rules/producers.toml) it points to; bridges say where a
pt_regs is read in a way no call edge shows (a BPF program, perf's register mask, an offset read).
It never opens a kernel tree (the evidence drift check is `regaudit.ruleset.evidence`) and never lists
what the C can tell: helper lists, perf register tables and offset bounds are derived by the analyzer
from the functions an entry names.

The shared conventions (`kernels`, `evidence`) are checked by `regaudit.ruleset.load`, whose small
validators this module reuses rather than copies: both must report errors the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from regaudit.errors import BadInput, RuleDataError
from regaudit.ruleset.load import (
    IDENTIFIER,
    Evidence,
    Invalid,
    applies_to,
    check_keys,
    evidence_list,
    kernel_series,
    load_rule_file,
    optional_str,
    own_kernels,
    required_choice,
    required_str,
    rule_paths,
)

SOURCE_KINDS = ("call_result", "call_argument", "parameter")
CONTEXTS = ("entry", "exit", "both")
BRIDGE_KINDS = ("reads_any", "calls_helpers", "reads_by_table", "dynamic_read", "no_flow")

_Record = TypeVar("_Record", "Source", "Bridge")

_PROGRAM_TYPE = re.compile(r"^BPF_PROG_TYPE_[A-Z0-9_]+$")

_SOURCE_KEYS = frozenset(
    (
        "name", "kind", "function", "struct", "field", "position", "caller", "producer", "context",
        "context_from", "kernels", "evidence", "notes",
    )
)  # fmt: skip
# Per kind: keys that must be present and keys that make no sense for it.
_SOURCE_REQUIRED = {
    "call_result": ("function",),
    "call_argument": ("function", "position"),
    "parameter": ("struct", "field", "position"),
}
_SOURCE_FORBIDDEN = {
    "call_result": ("struct", "field", "position"),
    "call_argument": ("struct", "field"),
    "parameter": ("function", "caller"),
}

_BRIDGE_KEYS = frozenset(
    (
        "name", "kind", "function", "position", "arch", "program_type", "proto_function", "table_function",
        "table", "bound", "caller", "kernels", "evidence", "notes",
    )
)  # fmt: skip
_BRIDGE_REQUIRED = {
    "reads_any": (),
    "calls_helpers": ("program_type", "proto_function"),
    "reads_by_table": ("arch", "table_function"),
    "dynamic_read": ("arch", "bound"),
    "no_flow": ("caller",),
}
_BRIDGE_ONLY = {  # keys only one kind may carry
    "program_type": "calls_helpers",
    "proto_function": "calls_helpers",
    "table_function": "reads_by_table",
    "table": "reads_by_table",
    "bound": "dynamic_read",
    "caller": "no_flow",
}


@dataclass(frozen=True)
class Source:
    """Where a pt_regs pointer from an ftrace path is born, as it holds for one kernel series.

    `function` for call kinds; `struct`/`field` for "parameter" (every function bound to that
    function-pointer field). `position` counts from 0: the argument or parameter carrying the pt_regs.
    `caller` restricts a call source to calls made inside that function.
    """

    name: str
    kind: str
    producer: str
    context: str
    context_from: str
    kernels: tuple[str, ...]
    evidence: tuple[Evidence, ...]  # the items that apply to the series asked for
    function: str | None = None
    struct: str | None = None
    field: str | None = None
    position: int | None = None
    caller: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class Bridge:
    """A read of the pt_regs at argument `position` of `function` that no call edge shows, or (`no_flow`) a
    call edge from `caller` that never carries a frame from an ftrace source, for a reason outside the C
    flow (which events the kernel installs a handler for).

    `arch` set: only that architecture's definition of `function`. Kind-specific keys name the C the
    analyzer derives the read set from: `proto_function` (helpers of `program_type`),
    `table_function`/`table` (perf register table), `bound` (what limits an offset or index).
    """

    name: str
    kind: str
    function: str
    position: int
    kernels: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    arch: str | None = None
    program_type: str | None = None
    proto_function: str | None = None
    table_function: str | None = None
    table: str | None = None
    bound: str | None = None
    caller: str | None = None  # no_flow: the call from `caller` to `function` never carries an ftrace frame
    notes: str | None = None

    def expect(self, kind: str, value: str | None) -> str:
        """`value`, a key of this bridge the derivation for `kind` needs; BadInput for a bridge of another kind."""
        if self.kind != kind or value is None:
            raise BadInput(f"bridge {self.name}: kind {self.kind}, expected a {kind} entry")
        return value


def load_sources(series: str, path: Path | None = None) -> list[Source]:
    """The [[source]] entries of rules/sources.toml (or `path`) that hold for kernel `series`."""
    return _load(path or rule_paths("sources")[0], "source", validate_sources, _source, series)


def load_bridges(series: str, path: Path | None = None) -> list[Bridge]:
    """The [[bridge]] entries of rules/bridges.toml (or `path`) that hold for kernel `series`."""
    return _load(path or rule_paths("bridges")[0], "bridge", validate_bridges, _bridge, series)


def validate_sources(data: dict[str, Any]) -> None:
    """Schema of rules/sources.toml; raises load's `Invalid` naming the key (registered in load._schemas)."""
    _validate_entries(data, "source", _validate_source)


def validate_bridges(data: dict[str, Any]) -> None:
    """Schema of rules/bridges.toml, as `validate_sources`."""
    _validate_entries(data, "bridge", _validate_bridge)


# --- loading ----------------------------------------------------------------------------------------


def _load(
    path: Path,
    table: str,
    validate: Callable[[dict[str, Any]], None],
    build: Callable[[dict[str, Any], tuple[str, ...], tuple[Evidence, ...]], _Record],
    series: str,
) -> list[_Record]:
    rule = load_rule_file(path)  # shared conventions: kernels, evidence
    series = kernel_series(series)
    try:
        validate(rule.data)
    except Invalid as err:
        raise RuleDataError(f"{rule.name}: {err}") from None
    file_kernels = own_kernels(rule.data, "")
    records = []
    for index, entry in enumerate(rule.data[table]):
        kernels = own_kernels(entry, "") or file_kernels
        assert kernels is not None  # the schema requires them
        if applies_to(kernels, series):
            records.append(build(entry, kernels, _evidence_for(f"{table}[{index}]", entry, kernels, series)))
    return records


def _evidence_for(where: str, entry: dict[str, Any], kernels: tuple[str, ...], series: str) -> tuple[Evidence, ...]:
    """The entry's evidence items that hold for `series` (load_rule_file already validated them)."""
    items = evidence_list(entry["evidence"], f"{where}.evidence", kernels)
    return tuple(item for item in items if applies_to(item.kernels, series))


def _source(entry: dict[str, Any], kernels: tuple[str, ...], evidence: tuple[Evidence, ...]) -> Source:
    return Source(
        name=entry["name"],
        kind=entry["kind"],
        producer=entry["producer"],
        context=entry["context"],
        context_from=entry["context_from"],
        kernels=kernels,
        evidence=evidence,
        function=entry.get("function"),
        struct=entry.get("struct"),
        field=entry.get("field"),
        position=entry.get("position"),
        caller=entry.get("caller"),
        notes=entry.get("notes"),
    )


def _bridge(entry: dict[str, Any], kernels: tuple[str, ...], evidence: tuple[Evidence, ...]) -> Bridge:
    optional = ("arch", "program_type", "proto_function", "table_function", "table", "bound", "caller", "notes")
    return Bridge(
        name=entry["name"],
        kind=entry["kind"],
        function=entry["function"],
        position=entry["position"],
        kernels=kernels,
        evidence=evidence,
        **{key: entry.get(key) for key in optional},
    )


# --- schema ---------------------------------------------------------------------------------------


def _validate_entries(data: dict[str, Any], table: str, validate_entry: Callable[[dict[str, Any], str], None]) -> None:
    check_keys(data, frozenset({table, "kernels"}), "")
    entries = data.get(table)
    if not isinstance(entries, list) or not entries:
        raise Invalid(table, f"missing: the file holds at least one [[{table}]]")
    file_kernels = own_kernels(data, "")
    names: dict[str, str] = {}
    for index, entry in enumerate(entries):
        where = f"{table}[{index}]"
        if not isinstance(entry, dict):
            raise Invalid(where, f"must be a table ([[{table}]])")
        validate_entry(entry, where)
        if own_kernels(entry, where) is None and file_kernels is None:
            message = "missing here and at the top level: say which kernels this was verified on"
            raise Invalid(f"{where}.kernels", message)
        if not entry.get("evidence"):
            raise Invalid(f"{where}.evidence", "missing: every entry cites the lines it rests on, per kernel")
        name = entry["name"]
        if name in names:
            raise Invalid(f"{where}.name", f"{name!r} is already the name of {names[name]}")
        names[name] = where


def _validate_source(entry: dict[str, Any], where: str) -> None:
    check_keys(entry, _SOURCE_KEYS, where)
    required_str(entry, "name", where, pattern=IDENTIFIER)
    required_choice(entry, "kind", where, SOURCE_KINDS)
    kind = entry["kind"]
    _require_and_forbid(entry, where, kind, _SOURCE_REQUIRED[kind], _SOURCE_FORBIDDEN[kind])
    for key in ("function", "struct", "field", "caller"):
        if key in entry:
            required_str(entry, key, where, pattern=IDENTIFIER)
    if "position" in entry:
        _position(entry, where)
    required_choice(entry, "producer", where, _known_producers())
    required_choice(entry, "context", where, CONTEXTS)
    required_str(entry, "context_from", where)
    optional_str(entry, "notes", where)


def _validate_bridge(entry: dict[str, Any], where: str) -> None:
    check_keys(entry, _BRIDGE_KEYS, where)
    required_str(entry, "name", where, pattern=IDENTIFIER)
    required_choice(entry, "kind", where, BRIDGE_KINDS)
    kind = entry["kind"]
    forbidden = tuple(key for key, owner in _BRIDGE_ONLY.items() if owner != kind)
    _require_and_forbid(entry, where, kind, ("function", "position", *_BRIDGE_REQUIRED[kind]), forbidden)
    for key in ("function", "arch", "proto_function", "table_function", "table", "bound", "caller"):
        if key in entry:
            required_str(entry, key, where, pattern=IDENTIFIER)
    if "program_type" in entry:
        required_str(entry, "program_type", where, pattern=_PROGRAM_TYPE)
    _position(entry, where)
    optional_str(entry, "notes", where)


def _require_and_forbid(
    entry: dict[str, Any], where: str, kind: str, required: tuple[str, ...], forbidden: tuple[str, ...]
) -> None:
    for key in required:
        if key not in entry:
            raise Invalid(f"{where}.{key}", f"missing: a {kind} entry must give it")
    for key in forbidden:
        if key in entry:
            raise Invalid(f"{where}.{key}", f"not allowed for kind {kind}")


def _position(entry: dict[str, Any], where: str) -> None:
    value = entry.get("position")
    # bool is an int in Python; `position = true` is a typo, not argument 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(f"{where}.position", f"{value!r} is not an argument index counted from 0")


@cache
def _known_producers() -> tuple[str, ...]:
    """The frame-model producers rules/producers.toml defines: one list, kept where the models are."""
    data = load_rule_file(rule_paths("producers")[0]).data
    named = {entry["producer"] for table in ("trampoline_kind", "builder") for entry in data.get(table, [])}
    return tuple(sorted(named))


__all__ = [
    "BRIDGE_KINDS",
    "CONTEXTS",
    "SOURCE_KINDS",
    "Bridge",
    "Source",
    "load_bridges",
    "load_sources",
    "validate_bridges",
    "validate_sources",
]
