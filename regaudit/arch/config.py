"""The build a frame model describes, and the `#if` guards of facts evaluated against it.

Owns: per-architecture Kconfig values (the arch's own Kconfig files plus kernel/trace/Kconfig and
arch/Kconfig, read by `regaudit.arch.kconfig`) under the `[config]` assumptions of
rules/producers.toml, a three-valued evaluator for the preprocessor conditions the fact database
stores with every fact, and the choice among several definitions of one name (arch first, then the
generic fallback). `defined(NAME)` of a macro is answered from the facts: NAME is defined when one
of its definitions applies and is not itself guarded by `!defined(NAME)` (that is the fallback or
include-guard idiom, which only counts when nothing else defines NAME).

It reads facts through `regaudit.facts.arch_facts` and never interprets what a definition does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from regaudit.arch.kconfig import (
    Capabilities,
    ConfigEntry,
    Truth,
    arch_capabilities,
    arch_kconfig_files,
    evaluate,
    foreign_symbols,
    read_kconfig,
)
from regaudit.arch.makefiles import Gate, build_symbols
from regaudit.errors import BadInput
from regaudit.facts.arch_facts import ArchFacts, Definition

# Kconfig files outside arch/<arch>/ that define the tracing symbols the guards test.
_SHARED_KCONFIGS = ("kernel/trace/Kconfig", "arch/Kconfig")

_C_TOKEN = re.compile(
    r"\s*(?:(?P<op>&&|\|\||==|!=|<=|>=|[!()<>])|(?P<number>\d\w*)|(?P<word>[A-Za-z_]\w*)|(?P<other>\S))"
)
_CONFIG_TESTS = frozenset({"IS_ENABLED", "IS_BUILTIN", "IS_REACHABLE"})


@dataclass(frozen=True)
class ConfigRules:
    """The `[config]` table of rules/producers.toml for one architecture."""

    enable: tuple[str, ...]
    assume: dict[str, bool]
    macros: dict[str, bool]

    @classmethod
    def for_arch(cls, data: dict[str, Any], arch: str) -> ConfigRules:
        own = data.get("arch", {}).get(arch, {})
        return cls(
            tuple(data.get("enable", ())),
            {**data.get("assume", {}), **own.get("assume", {})},
            {**data.get("macros", {}), **own.get("macros", {})},
        )


@dataclass(frozen=True)
class _ArchKconfig:
    """An arch's Kconfig files under the rules' assumptions: what every `BuildConfig` of the arch shares (the
    frame models, the link and each walk build one)."""

    capabilities: Capabilities
    assumed: dict[str, bool]  # the rules' assumptions, and the symbols they enable
    values: dict[str, Truth]  # CONFIG_ symbol -> its value, filled as guards ask


def _arch_kconfig(tree: Path, arch: str, rules: ConfigRules) -> _ArchKconfig:
    """Read once per process while the Kconfig files it comes from are unchanged."""
    files = [*arch_kconfig_files(tree, arch), *(tree / relative for relative in _SHARED_KCONFIGS)]
    stats = tuple((str(path), stat.st_mtime_ns, stat.st_size) for path in files if (stat := _stat(path)))
    return _read_arch_kconfig(tree, arch, rules.enable, tuple(sorted(rules.assume.items())), stats)


@cache
def _read_arch_kconfig(tree: Path, arch: str, enable: tuple[str, ...], assume: tuple[tuple[str, bool], ...],
                       _stats: tuple[tuple[str, int, int], ...]) -> _ArchKconfig:
    capabilities = Capabilities(arch, arch_capabilities(tree, arch).entries + shared_kconfig(tree))
    assumed = dict(assume)
    # Dependencies among the enabled options (FPROBE needs KPROBES...) settle in a second pass.
    for _ in range(2):
        for symbol in enable:
            if capabilities.value(symbol, assumed) is not False:
                assumed[symbol] = True
    return _ArchKconfig(capabilities, assumed, {})


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def shared_kconfig(tree: Path) -> tuple[ConfigEntry, ...]:
    """The config blocks of the Kconfig files outside arch/<arch>/ that every arch's build shares."""
    return tuple(
        entry
        for relative in _SHARED_KCONFIGS
        if (tree / relative).is_file()
        for entry in read_kconfig(tree / relative, tree)
    )


@dataclass
class BuildConfig:
    """One architecture's modelled build: Kconfig values, macros, and guard evaluation over the facts."""

    arch: str
    capabilities: Capabilities
    assumed: dict[str, bool]
    macros: dict[str, bool]
    facts: ArchFacts
    dotconfig: Mapping[str, bool] | None = None  # a user's .config: decides every CONFIG_ symbol
    foreign: frozenset[str] = frozenset()  # symbols only other arches declare: off
    gates: Mapping[str, Gate] = field(default_factory=dict)  # .c file -> its kbuild levels (`build_symbols`)
    _kconfig: dict[str, Truth] = field(default_factory=dict)
    _defined: dict[str, Truth] = field(default_factory=dict)
    _holds: dict[str, Truth] = field(default_factory=dict)

    @classmethod
    def load(cls, tree: Path, arch: str, facts: ArchFacts, rules: ConfigRules,
             dotconfig: Mapping[str, bool] | None = None) -> BuildConfig:
        """The build of `arch`. With `dotconfig` (`read_dotconfig`) every CONFIG_ symbol is what that file says,
        absent ones off."""
        kconfig = _arch_kconfig(tree, arch, rules)
        return cls(arch, kconfig.capabilities, kconfig.assumed, dict(rules.macros), facts, dotconfig,
                   foreign_symbols(tree, arch), build_symbols(tree), _kconfig=kconfig.values)

    # --- Kconfig -----------------------------------------------------------------------------------

    def kconfig(self, symbol: str) -> Truth:
        """Whether CONFIG_`symbol` is set in the modelled build; None when the tree leaves it open."""
        if self.dotconfig is not None:
            return self.dotconfig.get(symbol, False)
        if symbol in self.foreign:
            return False
        if symbol not in self._kconfig:
            self._kconfig[symbol] = self.capabilities.value(symbol, self.assumed)
        return self._kconfig[symbol]

    def kconfig_expression(self, expr: str) -> Truth:
        return evaluate(expr, _Lookup(self.kconfig))

    def open_selects(self, expr: str) -> list[str]:
        """`file:line: select X if C` for each symbol of `expr` the tree leaves open (a compiler probe, a choice)."""
        lines = []
        for symbol in re.findall(r"\w+", expr):
            if self.kconfig(symbol) is None:
                lines.extend(
                    f"{s.file}:{s.line}: select {s.symbol}" + (f" if {s.condition}" if s.condition else "")
                    for s in self.capabilities.selected(symbol)
                )
        return lines

    # --- preprocessor guards -------------------------------------------------------------------------

    def holds(self, condition: str) -> Truth:
        """Value of a fact's `#if` guard text in this build ('' is always true)."""
        if not condition:
            return True
        if condition not in self._holds:
            self._holds[condition] = self._evaluate(condition)
        return self._holds[condition]

    def builds(self, path: str) -> bool:
        """False when kbuild compiles `path` only under symbols this build leaves off (obj-$(CONFIG_X))."""
        return all(any(self.kconfig(symbol) is not False for symbol in level) for level in self.gates[path])

    def in_scope(self, path: str) -> bool:
        """Files this arch's build can include: its own arch/ directory and everything outside arch/."""
        return not path.startswith("arch/") or path.startswith(f"arch/{self.arch}/")

    def choose(self, name: str, caller_file: str | None = None) -> Definition | None:
        """The definition of function or macro `name` this arch's build uses, or None.

        Ranking: an arch definition beats the generic one (the `#ifndef arch_x` / `__weak` pattern),
        a static definition in the caller's own file beats one elsewhere, a guard known to hold beats
        an open one, a strong symbol beats a `__weak` one.
        """
        candidates = [
            d
            for d in self.facts.definitions_named(name)
            if self.in_scope(d.file) and self.holds(d.condition) is not False
        ]
        if not candidates:
            return None
        return min(
            candidates,
            key=lambda d: (
                not d.file.startswith("arch/"),
                d.file != caller_file,
                self.holds(d.condition) is not True,
                d.weak,
            ),
        )

    def _evaluate(self, condition: str) -> Truth:
        try:
            expr, atoms = _translate(condition)
        except ValueError:
            return None  # arithmetic or a construct the translation does not cover: open
        try:
            return evaluate(expr, _Lookup(lambda key: self._atom(*atoms[key])))
        except BadInput:
            return None

    def _atom(self, kind: str, name: str) -> Truth:
        if kind == "number":
            return int(name.rstrip("uUlL"), 0) != 0
        if kind == "config":
            if name.endswith("_MODULE") and self.dotconfig is None:
                return False
            return self.kconfig(name)
        if name.startswith("CONFIG_"):
            return self._atom("config", name.removeprefix("CONFIG_"))
        if name in self.macros:
            return self.macros[name]
        return self._macro_defined(name) if kind == "defined" else None

    def _macro_defined(self, name: str) -> Truth:
        if name in self._defined:
            return self._defined[name]
        self._defined[name] = None  # a guard that depends on itself stays open
        self_guard = f"defined({name})"
        definitions = [(d.file, d.condition) for d in self.facts.definitions_named(name) if d.kind == "macro"]
        definitions += [(d.file, d.condition) for d in self.facts.defines_named(name)]
        values = [self.holds(guard) for path, guard in definitions if self.in_scope(path) and self_guard not in guard]
        value: Truth = True if True in values else (None if None in values else False)
        self._defined[name] = value
        return value


def read_dotconfig(path: Path) -> dict[str, bool]:
    """CONFIG_ symbols of a kernel .config without the prefix: `=y`/`=m`/a value → True (`=m` also sets
    X_MODULE), `=n` and `# CONFIG_X is not set` → False. BadInput when the file is unreadable or has none."""
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise BadInput(f"{path}: cannot read the config file: {error.strerror}") from None
    values: dict[str, bool] = {}
    for line in text.splitlines():
        unset = re.fullmatch(r"#\s*CONFIG_(\w+) is not set\s*", line)
        if unset:
            values[unset[1]] = False
            continue
        setting = re.fullmatch(r"CONFIG_(\w+)=(.*)", line.strip())
        if setting:
            values[setting[1]] = setting[2] != "n"
            if setting[2] == "m":
                values[f"{setting[1]}_MODULE"] = True
    if not values:
        raise BadInput(f"{path}: not a kernel .config (no CONFIG_ lines)")
    return values


class _Lookup(Mapping[str, bool]):
    """Symbol values computed on demand for `kconfig.evaluate`; unknown ones raise KeyError."""

    def __init__(self, resolve: Callable[[str], Truth]) -> None:
        self._resolve = resolve

    def __getitem__(self, key: str) -> bool:
        value = self._resolve(key)
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@cache
def _translate(condition: str) -> tuple[str, dict[str, tuple[str, str]]]:
    """The C guard as a Kconfig expression over placeholder symbols, and what each placeholder tests (kept per
    condition text: callers only read the mapping).

    `defined(X)`, `IS_ENABLED(CONFIG_X)`, a bare `CONFIG_X` and numbers become atoms; `==` becomes
    Kconfig's `=`. Anything else (arithmetic, function-like macros) raises ValueError.
    """
    tokens = [(m.lastgroup, m.group(m.lastgroup or "other")) for m in _C_TOKEN.finditer(condition)]
    parts: list[str] = []
    atoms: dict[str, tuple[str, str]] = {}
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        if kind == "other":
            raise ValueError(text)
        if kind == "op":
            parts.append("=" if text == "==" else text)
            index += 1
            continue
        atom, index = _atom_at(tokens, index)
        key = f"atom{len(atoms)}"
        atoms[key] = atom
        parts.append(key)
    return " ".join(parts), atoms


def _atom_at(tokens: list[tuple[str | None, str]], index: int) -> tuple[tuple[str, str], int]:
    kind, text = tokens[index]
    if kind == "number":
        return ("number", text), index + 1
    wrapped = text == "defined" or text in _CONFIG_TESTS
    if wrapped and index + 3 < len(tokens) and tokens[index + 1][1] == "(" and tokens[index + 3][1] == ")":
        name = tokens[index + 2][1]
        return (
            "defined" if text == "defined" else "config",
            name.removeprefix("CONFIG_") if text != "defined" else name,
        ), index + 4
    if text == "defined" and index + 1 < len(tokens):
        return ("defined", tokens[index + 1][1]), index + 2
    if index + 1 < len(tokens) and tokens[index + 1][1] == "(":
        raise ValueError(f"function-like macro {text} in a guard")
    return ("value", text), index + 1
