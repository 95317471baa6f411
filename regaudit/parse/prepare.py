"""Offset-preserving rewrites of kernel C that tree-sitter-c cannot parse as written.

Two kinds, both driven by `rules/c_dialect.toml`:
- attribute-like macros (`__always_inline`, `__weak`, `notrace`, `__section(".x")`) are replaced by
  spaces; which names qualify is derived from the tree's own #defines (see `derive_attributes`);
- definition macros (`BPF_CALL_3(name, type, arg, ...)`, `SYSCALL_DEFINE2`, `DEFINE_PER_CPU(type,
  name)`) are rewritten to the plain declarator they expand to.

Every rewrite keeps the text's byte length and the line of every byte after it (a rewritten head may
move its own parameters to its first line), so a fact's file:line is the line in the real file.
This module works on bytes and regexes only; it never imports tree_sitter.
"""

from __future__ import annotations

import bisect
import glob
import os
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

from regaudit.resources import data_dir

# A logical line: backslash-newline continues it (the alternation keeps `.*` from eating the backslash).
_LOGICAL_LINE_REST = rb"((?:[^\n\\]|\\.|\\\n)*)"
_DEFINE = re.compile(rb"^[ \t]*#[ \t]*define[ \t]+(\w+)(\([^)]*\))?" + _LOGICAL_LINE_REST, re.M)
# Conditional directives: blanking a name there would change the guard text the facts carry.
_CONDITIONAL = re.compile(rb"^[ \t]*#[ \t]*(?:if|ifdef|ifndef|elif|else|endif|include)\b" + _LOGICAL_LINE_REST, re.M)
_DIRECTIVE = re.compile(rb"^[ \t]*#" + _LOGICAL_LINE_REST, re.M)
_WORD = re.compile(r"[A-Za-z_]\w*")
_ATTRIBUTE_KEYWORDS = {"__attribute__", "__attribute"}
_KEYWORDS_INLINE = {"inline", "__inline", "__inline__"}
_WEAK = re.compile(r"\b__weak__\b|\bweak\b")


@dataclass(frozen=True)
class AttributeMacro:
    """An attribute-like macro and what its expansion means for a function's storage."""

    name: str
    function_like: bool
    inline: bool
    weak: bool


@dataclass(frozen=True)
class DefinitionMacro:
    """One [[definition]] entry of rules/c_dialect.toml."""

    pattern: re.Pattern[bytes]
    family: str
    shape: str  # 'function_pairs' | 'variable'
    storage: str
    return_type: str = ""
    name_format: str = "{name}"


@dataclass(frozen=True)
class Rewrite:
    """A definition macro rewritten in one file: where, which family, and the real name it defines."""

    line: int
    family: str
    name: str
    storage: str


@dataclass
class Prepared:
    """Rewritten text plus what the rewrites removed, for the extractor."""

    text: bytes
    rewrites: list[Rewrite] = field(default_factory=list)
    # (start, end) byte spans of blanked attribute macros with the macro's name
    attributes: list[tuple[int, int, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Dialect:
    """Everything the rewriter needs, built once per tree and shipped to every worker."""

    attributes: dict[str, AttributeMacro]
    definitions: tuple[DefinitionMacro, ...]

    @cached_property
    def attributes_by_word(self) -> dict[bytes, AttributeMacro]:
        """`attributes` keyed by the encoded name, as the rewriter's identifier scan meets them."""
        return {name.encode(): macro for name, macro in self.attributes.items()}

    @cached_property
    def attribute_names(self) -> re.Pattern[bytes]:
        """The attributes' names where one ends a run of word characters (see `_starts_identifier`)."""
        return re.compile(_alternation(set(self.attributes_by_word)) + rb"(?!\w)")

    @cached_property
    def definition_heads(self) -> re.Pattern[bytes]:
        """Any definition macro's head: a file without one has nothing for them to rewrite."""
        return re.compile(b"|".join(definition.pattern.pattern for definition in self.definitions))

    def prepare(self, source: bytes) -> Prepared:
        return _prepare(self, source)


def load_dialect(tree_root: Path) -> Dialect:
    """The tree's dialect: built once per process while rules/c_dialect.toml and the attribute headers are
    unchanged (the index, the overlay and the text readers of later stages all ask for it)."""
    rules_text = (data_dir("rules") / "c_dialect.toml").read_text()
    rules = tomllib.loads(rules_text)
    headers = sorted({p for pattern in rules["attributes"]["headers"] for p in glob.glob(str(tree_root / pattern))})
    return _dialect(rules_text, tuple((h, os.stat(h).st_mtime_ns, os.stat(h).st_size) for h in headers))


@cache
def _dialect(rules_text: str, headers: tuple[tuple[str, int, int], ...]) -> Dialect:
    rules = tomllib.loads(rules_text)
    definitions = tuple(
        DefinitionMacro(
            pattern=re.compile(rb"\b(?:" + entry["pattern"].encode() + rb")\s*\("),
            family=entry["family"],
            shape=entry["shape"],
            storage=entry["storage"],
            return_type=entry.get("return_type", ""),
            name_format=entry.get("name_format", "{name}"),
        )
        for entry in rules["definition"]
    )
    return Dialect(attributes=derive_attributes(Path(h).read_bytes() for h, _mtime, _size in headers),
                   definitions=definitions)


def derive_attributes(header_texts: Iterable[bytes]) -> dict[str, AttributeMacro]:
    """Find the macros whose every token is an attribute, `inline`, or another such macro.

    A name with several #defines (one per #if arm) qualifies when any arm does: the rewrite only
    blanks it, which is right for whichever arm the build takes.
    """
    bodies: dict[str, list[tuple[bool, str]]] = {}
    for text in header_texts:
        for match in _DEFINE.finditer(text):
            name = match.group(1).decode()
            body = match.group(3).decode("utf-8", "replace").replace("\\\n", " ")
            body = re.sub(r"/\*.*?\*/|//.*", " ", body).strip()
            bodies.setdefault(name, []).append((match.group(2) is not None, body))
    known: dict[str, AttributeMacro] = {}
    changed = True
    while changed:
        changed = False
        for name, arms in bodies.items():
            if name in known:
                continue
            for function_like, body in arms:
                verdict = _attribute_body(body, known)
                if verdict is not None:
                    inline, weak = verdict
                    known[name] = AttributeMacro(name, function_like, inline, weak)
                    changed = True
                    break
    return known


def _attribute_body(body: str, known: dict[str, AttributeMacro]) -> tuple[bool, bool] | None:
    """(inline, weak) when `body` is made only of attributes, else None.

    Strict on purpose: `likely(x)` expands to `__builtin_expect(!!(x), 1)` and `(x)` in some arms;
    blanking it would delete `x`, so any token that is not an attribute disqualifies the body.
    """
    inline = weak = False
    position = 0
    while position < len(body):
        if body[position].isspace():
            position += 1
            continue
        match = _WORD.match(body, position)
        if match is None:
            return None
        word, position = match.group(), match.end()
        group_end = _balanced_group_end(body, position)
        if word in _ATTRIBUTE_KEYWORDS and group_end is not None:
            weak |= bool(_WEAK.search(body[position:group_end]))
            position = group_end
        elif word in _KEYWORDS_INLINE:
            inline = True
        elif word in known and known[word].function_like == (group_end is not None):
            inline |= known[word].inline
            weak |= known[word].weak
            position = group_end if group_end is not None else position
        else:
            return None
    return inline, weak


def _balanced_group_end(text: str, position: int) -> int | None:
    """End offset of a parenthesised group starting at `position` (after blanks), else None."""
    while position < len(text) and text[position] in " \t":
        position += 1
    if position >= len(text) or text[position] != "(":
        return None
    depth = 0
    for index in range(position, len(text)):
        depth += (text[index] == "(") - (text[index] == ")")
        if depth == 0:
            return index + 1
    return None


def _prepare(dialect: Dialect, source: bytes) -> Prepared:
    text = bytearray(source)
    prepared = Prepared(text=b"")
    if dialect.definition_heads.search(source):
        in_directive = _span_lookup([(m.start(), m.end()) for m in _DIRECTIVE.finditer(source)])
        for definition in dialect.definitions:
            for match in definition.pattern.finditer(source):
                if not in_directive(match.start()):
                    _rewrite_definition(text, source, match, definition, prepared)
    if dialect.attributes:
        conditionals = [(m.start(), m.end()) for m in _CONDITIONAL.finditer(source)]
        _blank_attributes(text, dialect, prepared, _span_lookup(conditionals))
    prepared.text = bytes(text)
    return prepared


def _span_lookup(spans: list[tuple[int, int]]) -> Callable[[int], bool]:
    """A membership test for sorted, disjoint byte spans."""
    starts = [start for start, _ in spans]

    def inside(offset: int) -> bool:
        index = bisect.bisect_right(starts, offset) - 1
        return index >= 0 and spans[index][0] <= offset < spans[index][1]

    return inside


def _alternation(words: set[bytes]) -> bytes:
    """A regex for exactly `words`, shaped as a trie so that the matcher reads a byte once instead of trying
    every word in turn."""
    if words == {b""}:
        return b""
    groups: dict[bytes, set[bytes]] = {}
    for word in words:
        if word:
            groups.setdefault(word[:1], set()).add(word[1:])
    branches = [re.escape(first) + _alternation(rests) for first, rests in sorted(groups.items())]
    optional = b"" in words
    if len(branches) == 1 and not optional:
        return branches[0]
    return b"(?:" + b"|".join(branches) + b")" + (b"?" if optional else b"")


_DIGITS = frozenset(b"0123456789")
_WORD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_") | _DIGITS


def _starts_identifier(source: bytes, offset: int) -> bool:
    """Whether an identifier (`[A-Za-z_]\\w*`, read left to right) starts at `offset`: nothing but digits
    precedes it in its run of word characters."""
    while offset > 0 and source[offset - 1] in _DIGITS:
        offset -= 1
    return offset == 0 or source[offset - 1] not in _WORD_BYTES


def _blank_attributes(text: bytearray, dialect: Dialect, prepared: Prepared,
                      in_conditional: Callable[[int], bool]) -> None:
    source = bytes(text)
    attributes = dialect.attributes_by_word
    for match in dialect.attribute_names.finditer(source):
        if not _starts_identifier(source, match.start()) or in_conditional(match.start()):
            continue
        macro = attributes[match.group()]
        start, end = match.span()
        if macro.function_like:
            close = _matching_paren(source, _skip_space(source, end))
            if close is None:
                continue
            end = close + 1
        text[start:end] = re.sub(rb"[^\n]", b" ", source[start:end])
        prepared.attributes.append((start, end, macro.name))


def _skip_space(source: bytes, offset: int) -> int:
    while offset < len(source) and source[offset] in b" \t":
        offset += 1
    return offset


def _matching_paren(source: bytes, open_at: int) -> int | None:
    """Offset of the ')' closing the '(' at `open_at`, skipping nested parens and string literals."""
    if open_at >= len(source) or source[open_at] != ord("("):
        return None
    depth = 0
    index = open_at
    while index < len(source):
        char = source[index]
        if char == ord('"') or char == ord("'"):
            index = _end_of_literal(source, index)
        elif char == ord("("):
            depth += 1
        elif char == ord(")"):
            depth -= 1
            if depth == 0:
                return index
        elif char == ord("{") or char == ord(";"):
            return None  # ran into a body or statement: not a macro argument list
        index += 1
    return None


def _end_of_literal(source: bytes, index: int) -> int:
    quote = source[index]
    index += 1
    while index < len(source) and source[index] != quote:
        index += 2 if source[index] == ord("\\") else 1
    return index


def _split_arguments(inner: bytes) -> list[str]:
    """Top-level comma split of a macro argument list, whitespace and comments folded."""
    args, depth, current = [], 0, bytearray()
    for char in inner:
        if char == ord(",") and depth == 0:
            args.append(current)
            current = bytearray()
            continue
        depth += (char == ord("(")) - (char == ord(")"))
        current.append(char)
    args.append(current)
    return [" ".join(re.sub(rb"/\*.*?\*/", b" ", bytes(a), flags=re.S).decode("utf-8", "replace").split())
            for a in args]


def _rewrite_definition(text: bytearray, source: bytes, match: re.Match[bytes],
                        definition: DefinitionMacro, prepared: Prepared) -> None:
    open_at = match.end() - 1
    close = _matching_paren(source, open_at)
    line = source.count(b"\n", 0, match.start()) + 1
    if close is None:
        prepared.failures.append(f"line {line}: {match.group().decode()} without a closing parenthesis")
        return
    args = _split_arguments(source[open_at + 1:close])
    if definition.shape == "variable":
        if len(args) != 2:
            prepared.failures.append(f"line {line}: {definition.family} expects (type, name)")
            return
        name = re.sub(r"\[.*", "", args[1]).strip()
        replacement = f"{args[0]} {args[1]}"
    else:
        name_arg, pairs = args[0], args[1:]
        if len(pairs) % 2:
            prepared.failures.append(f"line {line}: {definition.family} arguments are not (type, name) pairs")
            return
        name = definition.name_format.format(name=name_arg)
        # '()' rather than '(void)': SYSCALL_DEFINE0(name) leaves no room for four more bytes.
        params = ", ".join(f"{pairs[i]} {pairs[i + 1]}" for i in range(0, len(pairs), 2))
        replacement = f"{definition.return_type} {name}({params})"
    original = source[match.start():close + 1]
    newlines = original.count(b"\n")
    encoded = replacement.encode()
    if len(encoded) + newlines > len(original):
        prepared.failures.append(f"line {line}: {definition.family} rewrite does not fit; left as written")
        return
    padded = encoded + b" " * (len(original) - len(encoded) - newlines) + b"\n" * newlines
    text[match.start():close + 1] = padded
    prepared.rewrites.append(Rewrite(line=line, family=definition.family, name=name,
                                     storage=definition.storage))
