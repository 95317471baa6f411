"""Loads the kernel knowledge kept as TOML under rules/ and enforces the conventions it follows.

Owns: finding and parsing rules files, the conventions shared by every kind (a `kernels` list on any
table, inherited by the tables inside it; `evidence` items citing `path:line` in a kernel tree),
the schema of rules/frames/*.toml, and the kernel-series helpers the rest of the ruleset uses.
It never opens a kernel tree: comparing evidence with a tree is `regaudit.ruleset.evidence`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path, PurePosixPath
from typing import Any

from regaudit.errors import BadInput, RuleDataError
from regaudit.resources import content_hash, data_dir

_SERIES = re.compile(r"^\d+\.\d+$")
_VERSION_PREFIX = re.compile(r"^(\d+)\.(\d+)(?!\d)")
_AT = re.compile(r"^(?P<path>[^:\s][^:]*):(?P<line>[1-9]\d*)$")
IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
# A C member designator as code writes it: `di`, `regs[3]`, `fregs.regs.ip`.
_MEMBER = re.compile(r"^[A-Za-z_]\w*(\[\d+\])?(\.[A-Za-z_]\w*(\[\d+\])?)*$")
_EVIDENCE_KEYS = frozenset({"at", "expect", "kernels", "claim"})


@dataclass(frozen=True)
class RuleFile:
    """One parsed rules file; `data` is the TOML document as tomllib returns it."""

    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        """How messages name the file: `rules/frames/x86.toml` when it is part of the ruleset."""
        return display_name(self.path)

    @cached_property
    def evidence(self) -> tuple[Evidence, ...]:
        """Every evidence item, in document order, with inherited `kernels` resolved (`evidence_items`)."""
        try:
            return tuple(_collect_evidence(self.data))
        except Invalid as err:
            raise RuleDataError(f"{self.name}: {err}") from None


@dataclass(frozen=True)
class Evidence:
    """One `evidence` item with the `kernels` it holds for after inheritance (None: every kernel)."""

    entry: str  # where it sits in the TOML, e.g. "trampoline[2].evidence[0]"
    at: str
    path: str  # tree-relative part of `at`
    line: int  # line part of `at`, 1-based
    expect: str
    kernels: tuple[str, ...] | None
    claim: str | None


class Invalid(Exception):
    """A schema violation at `key`; the public entry points turn it into RuleDataError with the file."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key or '(top level)'}: {message}")


def kernel_series(version: str) -> str:
    """The major.minor series rule data is verified at: '7.3' for '7.3.4' or '6.1.0-13-amd64'."""
    match = _VERSION_PREFIX.match(version.strip())
    if match is None:
        raise BadInput(f"{version!r} is not a kernel version (expected major.minor[.patch])")
    return f"{match[1]}.{match[2]}"


def series_key(series: str) -> tuple[int, int]:
    """Sort key ordering series numerically, so 6.12 comes after 6.9."""
    major, minor = kernel_series(series).split(".")
    return int(major), int(minor)


def applies_to(kernels: list[str] | tuple[str, ...] | None, series: str) -> bool:
    """Whether data verified on `kernels` (None: not restricted) holds for `series`."""
    return kernels is None or series in kernels


def ruleset_hash() -> str:
    """Changes whenever any rules file does; recorded with each run so results explain themselves."""
    return content_hash("rules")


def display_name(path: Path) -> str:
    """`rules/<relative path>` for a file of the ruleset (checkout or wheel), else the path as given."""
    try:
        return f"rules/{path.resolve().relative_to(data_dir('rules').resolve()).as_posix()}"
    except ValueError:
        return str(path)


def rule_paths(kind: str) -> list[Path]:
    """The files of one kind: every .toml under rules/<kind>/, or the single rules/<kind>.toml."""
    root = data_dir("rules")
    if (root / kind).is_dir():
        return sorted((root / kind).rglob("*.toml"))
    if (root / f"{kind}.toml").is_file():
        return [root / f"{kind}.toml"]
    raise RuleDataError(f"no rules of kind {kind!r}: neither rules/{kind}/ nor rules/{kind}.toml exists")


def load_rules(kind: str) -> list[RuleFile]:
    """Load and validate every rules file of `kind` (e.g. "frames"); the first bad one raises.

    Parsed once per process while the files are unchanged (every stage reads the frame rules); the documents
    are shared, so callers only read them."""
    stamps = tuple((path, path.stat().st_mtime_ns, path.stat().st_size) for path in rule_paths(kind))
    return list(_loaded_rules(kind, stamps))


@cache
def _loaded_rules(kind: str, stamps: tuple[tuple[Path, int, int], ...]) -> tuple[RuleFile, ...]:
    return tuple(load_rule_file(path, kind) for path, _mtime, _size in stamps)


def load_all_rules() -> list[RuleFile]:
    """Every rules file of every kind, each validated against its kind's schema."""
    root = data_dir("rules")
    return [load_rule_file(path, _kind_of(path.relative_to(root))) for path in sorted(root.rglob("*.toml"))]


def load_rule_file(path: Path, kind: str | None = None) -> RuleFile:
    """Parse one rules file and validate the shared conventions plus, if `kind` has one, its schema."""
    rule = RuleFile(path, _parse_toml(path))
    schema = _schemas().get(kind) if kind else None
    rule.evidence  # noqa: B018 - validates the evidence items (and keeps them)
    try:
        if schema is not None:
            schema(rule.data)
    except Invalid as err:
        raise RuleDataError(f"{rule.name}: {err}") from None
    return rule


def evidence_items(rule: RuleFile) -> list[Evidence]:
    """Every evidence item of the file, in document order, with inherited `kernels` resolved."""
    return list(rule.evidence)


def _kind_of(relative: Path) -> str:
    """rules/frames/x86.toml is of kind "frames"; a top-level rules/bridges.toml of kind "bridges"."""
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _parse_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise RuleDataError(f"{display_name(path)}: malformed TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RuleDataError(f"{display_name(path)}: cannot read: {err}") from None


# --- conventions shared by every kind -----------------------------------------------------------


def _collect_evidence(data: dict[str, Any]) -> list[Evidence]:
    items: list[Evidence] = []
    for where, table, kernels in _tables(data, "", None):
        if "evidence" in table:
            items.extend(evidence_list(table["evidence"], _join(where, "evidence"), kernels))
    return items


def _tables(
    table: dict[str, Any], where: str, inherited: tuple[str, ...] | None
) -> Iterator[tuple[str, dict[str, Any], tuple[str, ...] | None]]:
    """Every table below `table` (itself included) with the `kernels` in force there.

    Evidence items are tables too but are yielded by `evidence_list`, which gives them their own
    override semantics, so the walk does not descend into `evidence`.
    """
    kernels = own_kernels(table, where) or inherited
    yield where, table, kernels
    for key, value in table.items():
        if key == "evidence":
            continue
        child = _join(where, key)
        if isinstance(value, dict):
            yield from _tables(value, child, kernels)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    yield from _tables(item, f"{child}[{index}]", kernels)


def own_kernels(table: dict[str, Any], where: str) -> tuple[str, ...] | None:
    if "kernels" not in table:
        return None
    key = _join(where, "kernels")
    kernels = table["kernels"]
    if not isinstance(kernels, list) or not kernels:
        raise Invalid(key, 'must be a non-empty array of "major.minor" strings, e.g. ["6.12", "7.3"]')
    for version in kernels:
        if not isinstance(version, str) or not _SERIES.match(version):
            raise Invalid(key, f'{version!r} is not a "major.minor" kernel series such as "7.3"')
    return tuple(kernels)


def evidence_list(value: Any, where: str, inherited: tuple[str, ...] | None) -> list[Evidence]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise Invalid(where, "must be an array of tables ([[...evidence]] or [{ at = ..., expect = ... }])")
    return [_evidence_item(item, f"{where}[{index}]", inherited) for index, item in enumerate(value)]


def _evidence_item(item: dict[str, Any], where: str, inherited: tuple[str, ...] | None) -> Evidence:
    check_keys(item, _EVIDENCE_KEYS, where)
    at = required_str(item, "at", where)
    match = _AT.match(at)
    if match is None:
        raise Invalid(f"{where}.at", f'{at!r} is not "path:line" (e.g. "arch/x86/kernel/ftrace_64.S:83")')
    path = PurePosixPath(match["path"])
    if path.is_absolute() or ".." in path.parts:
        raise Invalid(f"{where}.at", f"{at!r} must be relative to the kernel tree root, without '..'")
    expect = required_str(item, "expect", where)
    return Evidence(
        entry=where,
        at=at,
        path=match["path"],
        line=int(match["line"]),
        expect=expect,
        kernels=own_kernels(item, where) or inherited,
        claim=optional_str(item, "claim", where),
    )


# --- schema of rules/frames/*.toml --------------------------------------------------------------

_FRAME_KEYS = frozenset({"arch", "kernels", "trampoline"})
_TRAMPOLINE_KEYS = frozenset(
    ("name", "context", "mode", "kernels", "layout", "written", "constant", "unwritten_state", "notes", "evidence")
)
_CONTEXTS = ("entry", "exit")
_MODES = ("args", "regs", "rethook", "kretprobe", "kprobe")
_UNWRITTEN_STATES = ("uninitialised", "zero", "stale")


def _validate_frames(data: dict[str, Any]) -> None:
    check_keys(data, _FRAME_KEYS, "")
    required_str(data, "arch", "", pattern=IDENTIFIER)
    trampolines = data.get("trampoline")
    if not isinstance(trampolines, list) or not trampolines:
        raise Invalid("trampoline", "missing: a frames file describes at least one [[trampoline]]")
    file_kernels = own_kernels(data, "")
    claimed: dict[tuple[str, str, str], list[tuple[str, tuple[str, ...]]]] = {}
    for index, trampoline in enumerate(trampolines):
        where = f"trampoline[{index}]"
        if not isinstance(trampoline, dict):
            raise Invalid(where, "must be a table ([[trampoline]])")
        kernels = _validate_trampoline(trampoline, where, file_kernels)
        identity = (trampoline["name"], trampoline["context"], trampoline["mode"])
        _check_not_duplicated(claimed.setdefault(identity, []), where, kernels)


def _validate_trampoline(
    trampoline: dict[str, Any], where: str, file_kernels: tuple[str, ...] | None
) -> tuple[str, ...]:
    """Check one [[trampoline]] and return the kernels it holds for."""
    check_keys(trampoline, _TRAMPOLINE_KEYS, where)
    required_str(trampoline, "name", where, pattern=IDENTIFIER)
    required_str(trampoline, "layout", where, pattern=IDENTIFIER)
    required_choice(trampoline, "context", where, _CONTEXTS)
    required_choice(trampoline, "mode", where, _MODES)
    required_choice(trampoline, "unwritten_state", where, _UNWRITTEN_STATES)
    optional_str(trampoline, "notes", where)
    written = _member_list(trampoline, where)
    constant = _constant_members(trampoline, where)
    both = sorted(set(written) & set(constant))
    if both:
        raise Invalid(f"{where}.constant", f"{', '.join(both)} also listed in `written`; a member is one or the other")
    if not trampoline.get("evidence"):
        raise Invalid(f"{where}.evidence", "missing: every trampoline cites the lines that build its frame")
    kernels = own_kernels(trampoline, where) or file_kernels
    if kernels is None:
        raise Invalid(f"{where}.kernels", "missing here and at the top level: say which kernels this was verified on")
    return kernels


def _member_list(trampoline: dict[str, Any], where: str) -> list[str]:
    key = f"{where}.written"
    written = trampoline.get("written")
    if not isinstance(written, list):
        raise Invalid(key, 'missing or not an array of member names (e.g. ["di", "regs[3]"])')
    for member in written:
        if not isinstance(member, str) or not _MEMBER.match(member):
            raise Invalid(key, f'{member!r} is not a C member name such as "di" or "regs[3]"')
    duplicates = sorted({member for member in written if written.count(member) > 1})
    if duplicates:
        raise Invalid(key, f"lists {', '.join(duplicates)} more than once")
    return written


def _constant_members(trampoline: dict[str, Any], where: str) -> dict[str, str]:
    key = f"{where}.constant"
    constant = trampoline.get("constant", {})
    if not isinstance(constant, dict):
        raise Invalid(key, 'must be a table of member = "value", e.g. { cs = "0" }')
    for member, value in constant.items():
        if not _MEMBER.match(member):
            raise Invalid(key, f"{member!r} is not a C member name")
        if not isinstance(value, str):
            raise Invalid(f"{key}.{member}", f"{value!r} must be a string (the stored value as text)")
    return constant


def _check_not_duplicated(earlier: list[tuple[str, tuple[str, ...]]], where: str, kernels: tuple[str, ...]) -> None:
    """Two descriptions of one trampoline for one kernel would make the frame model ambiguous."""
    for other_where, other_kernels in earlier:
        shared = sorted(set(kernels) & set(other_kernels), key=series_key)
        if shared:
            raise Invalid(where, f"describes the same trampoline, context and mode as {other_where} for {shared}")
    earlier.append((where, kernels))


def _schemas() -> dict[str, Callable[[dict[str, Any]], None]]:
    """Schema validator per kind. flow_rules builds on this module's helpers, so it is imported
    here, at call time, rather than at the top (which would be circular)."""
    from regaudit.ruleset.flow_rules import validate_bridges, validate_sources
    from regaudit.subsystems import validate_subsystems

    return {
        "frames": _validate_frames,
        "sources": validate_sources,
        "bridges": validate_bridges,
        "subsystems": validate_subsystems,
    }


# --- small validators (shared with the other rule kinds' schemas: flow_rules.py, subsystems.py) ---------


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def check_keys(table: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise Invalid(where, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def required_str(table: dict[str, Any], key: str, where: str, pattern: re.Pattern[str] | None = None) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Invalid(_join(where, key), "missing or not a non-empty string")
    if pattern is not None and not pattern.match(value):
        raise Invalid(_join(where, key), f"{value!r} is not a plain identifier")
    return value


def optional_str(table: dict[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise Invalid(_join(where, key), "must be a string")
    return value


def required_choice(table: dict[str, Any], key: str, where: str, choices: tuple[str, ...]) -> None:
    value = required_str(table, key, where)
    if value not in choices:
        raise Invalid(_join(where, key), f"{value!r} is not one of {', '.join(choices)}")
