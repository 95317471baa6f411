"""Struct layouts as C code names their storage: `struct pt_regs` and the arch ftrace_regs, per arch.

Owns turning the struct facts of the database into the member names a frame model uses: arrays
expanded into elements (`regs[0]`..`regs[30]`, the length resolved through #defines such as
s390 `NUM_GPRS`), members of embedded structs as dotted paths (`psw.addr`, `stackframe.record.fp`),
anonymous structs flattened, and for each anonymous union one canonical alternative (the anonymous
struct when there is one, else the first member) whose leaves are the members, the others being
aliases of the storage they overlap (`csx` and `fred_cs.*` alias x86 `cs`; `user_regs.pc` aliases
arm64 `pc`). Guards are evaluated with the modelled build (`regaudit.arch.config`): the 64-bit
variant is the one kept, members under an open guard are kept and their guard recorded.

The database says in which kind of anonymous aggregate a member sits (`anon_path`) but not in which
instance, and two adjacent `union { ... };` look alike there. The braces between two members' lines
in the tree's source tell them apart; when that text does not match the facts, members that share an
`anon_path` are taken to share one union.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from regaudit.arch.config import BuildConfig
from regaudit.facts.arch_facts import StructDefinition, StructMember

ReadLines = Callable[[str], list[str] | None]  # tree-relative path -> its lines, or None when missing

# Embedded structs are expanded this deep; pt_regs nests two levels at most (arm64 stackframe.record.fp).
_MAX_DEPTH = 4
_COMMENTS = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


@dataclass(frozen=True)
class StructGroup:
    """Members a `struct_group()` macro declares, which the fact database misses (rules/producers.toml)."""

    struct: str
    group: str
    after: str
    members: tuple[str, ...]
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """A struct's storage as leaf member names in declaration order, plus aliases of the same storage."""

    struct: str
    at: str  # file:line of the definition the arch uses
    members: tuple[str, ...]
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    open_guards: dict[str, str] = field(default_factory=dict)  # leaf -> guard the modelled build leaves open
    guard: str | None = None  # the definition's own guard when the modelled build leaves it open
    notes: tuple[str, ...] = ()
    groups: tuple[StructGroup, ...] = ()  # rule data that placed members the facts miss

    def resolve(self, path: str) -> tuple[str, ...]:
        """The leaves C member path `path` covers: itself, its elements or sub-members, or what it aliases.

        `regs` is every `regs[i]`, `psw` both `psw.mask` and `psw.addr`, `csx` is `cs`; () when the
        path names no storage of this struct.
        """
        if path in self.members:
            return (path,)
        if path in self.aliases:
            return self.aliases[path]
        inside = tuple(leaf for leaf in self.members if _within(leaf, path))
        if inside:
            return inside
        overlapped = [leaf for alias, leaves in self.aliases.items() if _within(alias, path) for leaf in leaves]
        return tuple(dict.fromkeys(overlapped))


def struct_layout(
    name: str, config: BuildConfig, read_lines: ReadLines, groups: Sequence[StructGroup] = ()
) -> Layout | None:
    """The layout of `struct name` as the arch's modelled build declares it, or None if it has none."""
    definition = choose_struct(name, config)
    if definition is None:
        return None
    builder = _Builder(config, read_lines)
    part = builder.expand(definition, "", 0)
    guard = definition.condition if config.holds(definition.condition) is None else None
    layout = Layout(
        name, f"{definition.file}:{definition.line}", tuple(part.leaves), part.aliases, part.open_guards, guard
    )
    for group in groups:
        if group.struct == name and not set(group.members) <= set(layout.members):
            layout = _with_group(layout, group)
    return layout


def choose_struct(name: str, config: BuildConfig) -> StructDefinition | None:
    """The definition of `struct name` the arch uses: in scope, guard not false, arch before generic."""
    candidates = [
        s
        for s in config.facts.structs_named(name)
        if config.in_scope(s.file) and config.holds(s.condition) is not False and config.facts.struct_members(s.id)
    ]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda s: (
            not s.file.startswith(f"arch/{config.arch}/"),
            config.holds(s.condition) is not True,
            "/uapi/" in s.file,
        ),
    )


def _within(leaf: str, path: str) -> bool:
    return leaf.startswith(path) and leaf[len(path) : len(path) + 1] in ("[", ".")


def _with_group(layout: Layout, group: StructGroup) -> Layout:
    """`layout` with the group's members placed after `group.after`, wherever the index put the others."""
    members = [member for member in layout.members if member not in group.members]
    index = members.index(group.after) + 1 if group.after in members else len(members)
    members[index:index] = group.members
    aliases = {**layout.aliases, group.group: group.members}
    note = (
        f"{group.group} ({', '.join(group.members)}) placed from rules/producers.toml: the index does not "
        f"expand struct_group() ({', '.join(group.evidence)})"
    )
    return replace(
        layout, members=tuple(members), aliases=aliases, notes=(*layout.notes, note), groups=(*layout.groups, group)
    )


@dataclass
class _Part:
    """Leaves and aliases of one member, alternative or struct while the layout is being built."""

    leaves: list[str] = field(default_factory=list)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    open_guards: dict[str, str] = field(default_factory=dict)

    def add(self, other: _Part) -> None:
        self.leaves.extend(other.leaves)
        self.aliases.update(other.aliases)
        self.open_guards.update(other.open_guards)


Scope = tuple[tuple[str, int], ...]  # the anonymous aggregates around a member: (kind, instance)


@dataclass
class _Builder:
    config: BuildConfig
    read_lines: ReadLines

    def expand(self, definition: StructDefinition, prefix: str, depth: int) -> _Part:
        rows = [
            row
            for row in self.config.facts.struct_members(definition.id)
            if self.config.holds(row.condition) is not False
        ]
        scopes = _scopes(definition, rows, self.read_lines)
        part = self._group(list(zip(rows, scopes, strict=True)), 0, prefix, depth)
        # A guard around the whole struct is the struct's (Layout.guard), not one of its members'.
        part.open_guards = {leaf: guard for leaf, guard in part.open_guards.items() if guard != definition.condition}
        return part

    def _group(self, rows: list[tuple[StructMember, Scope]], level: int, prefix: str, depth: int) -> _Part:
        """Flatten rows sharing the anonymous scopes above `level`; unions pick a canonical alternative."""
        part = _Part()
        for scope, run in _runs(rows, level):
            if scope is None:
                part.add(self._member(run[0][0], prefix, depth))
            elif scope[0] == "struct":
                part.add(self._group(run, level + 1, prefix, depth))
            else:
                part.add(self._union(run, level + 1, prefix, depth))
        return part

    def _union(self, rows: list[tuple[StructMember, Scope]], level: int, prefix: str, depth: int) -> _Part:
        alternatives = [
            (
                scope,
                self._group(run, level, prefix, depth) if scope is None else self._group(run, level + 1, prefix, depth),
            )
            for scope, run in _runs(rows, level)
        ]
        canonical = next((alt for scope, alt in alternatives if scope is not None), alternatives[0][1])
        part = _Part(list(canonical.leaves), dict(canonical.aliases), dict(canonical.open_guards))
        for _, alternative in alternatives:
            if alternative is not canonical:
                part.aliases.update(_aliases(alternative, canonical.leaves, prefix))
        return part

    def _member(self, row: StructMember, prefix: str, depth: int) -> _Part:
        if not row.name:
            return _Part()  # an unnamed bit-field: padding, no storage C code can name
        name = f"{prefix}{row.name}"
        length = _array_length(row.array_len, self.config)
        if row.array_len is not None and length is not None:
            part = _Part([f"{name}[{index}]" for index in range(length)])
        else:
            inner = self._embedded(row.type, depth) if row.array_len is None and "*" not in row.type else None
            part = self._group_embedded(inner, name, depth) if inner is not None else _Part([name])
        if self.config.holds(row.condition) is None:
            part.open_guards.update({leaf: row.condition for leaf in part.leaves})
        return part

    def _group_embedded(self, inner: StructDefinition, name: str, depth: int) -> _Part:
        embedded = self.expand(inner, f"{name}.", depth + 1)
        return embedded if embedded.leaves else _Part([name])

    def _embedded(self, type_text: str, depth: int) -> StructDefinition | None:
        """The struct a member of type `type_text` embeds (through a typedef too), within _MAX_DEPTH."""
        if depth >= _MAX_DEPTH:
            return None
        words = type_text.replace("const ", "").replace("volatile ", "").split()
        if len(words) == 2 and words[0] in ("struct", "union"):
            return choose_struct(words[1], self.config)
        if len(words) == 1:
            typedef = next(
                (
                    t
                    for t in self.config.facts.typedefs_named(words[0])
                    if self.config.in_scope(t.file) and self.config.holds(t.condition) is not False
                ),
                None,
            )
            if typedef is None:
                return None
            target = typedef.type.split()
            if target in (["struct"], ["union"]):
                return self.config.facts.anonymous_struct_at(typedef.file, typedef.line)
            if len(target) == 2 and target[0] in ("struct", "union"):
                return choose_struct(target[1], self.config)
        return None


def _runs(rows: list[tuple[StructMember, Scope]], level: int) -> list[tuple[tuple[str, int] | None, list]]:
    """Consecutive rows grouped by their anonymous scope at `level`; a direct member is a run of its own."""
    runs: list[tuple[tuple[str, int] | None, list[tuple[StructMember, Scope]]]] = []
    for row, scope in rows:
        key = scope[level] if len(scope) > level else None
        if key is not None and runs and runs[-1][0] == key:
            runs[-1][1].append((row, scope))
        else:
            runs.append((key, [(row, scope)]))
    return runs


def _aliases(alternative: _Part, canonical: list[str], prefix: str) -> dict[str, tuple[str, ...]]:
    """Map an overlapping union alternative onto the canonical leaves it shares storage with.

    Same-named leaves map one to one (`user_regs.pc` -> `pc`), array elements by position when the
    array is not longer than the canonical alternative (riscv `args[i]` -> `a<i>`, powerpc `__pad[i]`),
    anything else onto all canonical leaves. The alternative's own name covers what its leaves cover.
    """
    everything = tuple(canonical)
    elements = [leaf for leaf in alternative.leaves if leaf.endswith("]") and "." not in leaf.removeprefix(prefix)]
    positional = len(elements) == len(alternative.leaves) and len(elements) <= len(canonical)
    aliases: dict[str, tuple[str, ...]] = {}
    heads: dict[str, list[str]] = {}
    for index, leaf in enumerate(alternative.leaves):
        head, _, rest = leaf.removeprefix(prefix).partition(".")
        same = f"{prefix}{rest}" if rest else None
        if same in canonical:
            aliases[leaf] = (same,)
        else:
            aliases[leaf] = (canonical[index],) if positional else everything
        heads.setdefault(f"{prefix}{head.split('[')[0]}", []).extend(aliases[leaf])
    for head, leaves in heads.items():
        aliases.setdefault(head, tuple(dict.fromkeys(leaves)))
    return aliases


def _array_length(text: str | None, config: BuildConfig) -> int | None:
    if text is None:
        return None
    for candidate in [text] + [
        d.value
        for d in config.facts.defines_named(text)
        if config.in_scope(d.file) and config.holds(d.condition) is not False
    ]:
        try:
            return int(candidate.strip("() ").rstrip("uUlL"), 0)
        except ValueError:
            continue
    return None


def _scopes(definition: StructDefinition, rows: list[StructMember], read_lines: ReadLines) -> list[Scope]:
    """Per row, the anonymous aggregate instances around it, numbered by the braces in the source."""
    by_path = [tuple((kind, 0) for kind in row.anon_path.split("/")) if row.anon_path else () for row in rows]
    lines = read_lines(definition.file)
    if lines is None or not rows:
        return by_path
    head = "\n".join(lines[definition.line - 1 : rows[0].line - 1])
    texts = [head[head.find("{") + 1 :] if "{" in head else ""]
    texts += ["\n".join(lines[before.line : row.line - 1]) for before, row in itertools.pairwise(rows)]
    stack: list[int] = []
    opened = 0
    scopes: list[Scope] = []
    for row, text in zip(rows, texts, strict=True):
        for brace in re.findall(r"[{}]", _COMMENTS.sub("", text)):
            if brace == "{":
                opened += 1
                stack.append(opened)
            elif stack:
                stack.pop()
            else:
                return by_path
        kinds = row.anon_path.split("/") if row.anon_path else []
        if len(kinds) != len(stack):
            return by_path
        scopes.append(tuple(zip(kinds, stack, strict=True)))
    return scopes
