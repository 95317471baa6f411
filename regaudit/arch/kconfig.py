"""Reads Kconfig files tolerantly and answers which tracing capabilities an architecture selects.

Owns: a line-based Kconfig reader (config blocks with their type, defaults, `depends on` and
`select`, with enclosing `if`/`menu`/`choice` conditions folded into the dependencies), a
three-valued evaluator for Kconfig expressions, per-arch capabilities, and `.config` parsing.

It does not follow `source` directives nor build the whole symbol table: kconfiglib cannot parse 7.3
(it rejects `transitional`), and the questions regaudit asks — what does arch X select, what do the
ftrace/kprobe options depend on — are answered by the arch's own files, kernel/trace/Kconfig and
arch/Kconfig. Unknown keywords are skipped rather than rejected, so new Kconfig syntax degrades to
a missing attribute, not a failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Literal

from regaudit.errors import BadInput
from regaudit.tree import files_below

# The tracing options whose dependencies decide which frame builders exist on a kernel.
TRACE_FEATURES = (
    "FPROBE",
    "KPROBES_ON_FTRACE",
    "FUNCTION_GRAPH_TRACER",
    "DYNAMIC_FTRACE_WITH_ARGS",
    "DYNAMIC_FTRACE_WITH_REGS",
    "FPROBE_EVENTS",
    "BPF_EVENTS",
    "KPROBES",
    "KRETPROBES",
    "RETHOOK",
    "HAVE_FTRACE_REGS_HAVING_PT_REGS",
)
_TRACE_KCONFIGS = ("kernel/trace/Kconfig", "arch/Kconfig")

ClauseOrigin = Literal["depends on", "if", "menu", "choice"]
ScopeKind = Literal["if", "menu", "choice"]
Truth = bool | None  # None: the answer depends on a symbol whose value is unknown

_TYPES = frozenset({"bool", "tristate", "int", "hex", "string"})
_DEF_TYPES = {
    "def_bool": "bool",
    "def_tristate": "tristate",
    "def_int": "int",
    "def_hex": "hex",
    "def_string": "string",
}
_BOOLEAN_TYPES = frozenset({"bool", "tristate"})
_ENDS = {"endif": "if", "endmenu": "menu", "endchoice": "choice"}
# Keywords that end the current config block without starting one (kconfig-language.rst, "Kconfig
# syntax"); `config`, `menuconfig`, `menu`, `choice` and `if` end it too and start something else.
_BLOCK_ENDERS = frozenset({"comment", "source", "mainmenu", "endif", "endmenu", "endchoice"})


@dataclass(frozen=True)
class Clause:
    """One dependency of a config entry: its own `depends on`, or an enclosing if/menu/choice."""

    expr: str
    origin: ClauseOrigin
    file: str
    line: int


@dataclass(frozen=True)
class Select:
    """`select symbol [if condition]` at file:line, inside the config block of `selected_by`."""

    symbol: str
    condition: str | None
    file: str
    line: int
    selected_by: str


@dataclass(frozen=True)
class Default:
    """`default value [if condition]`, or the value of a `def_bool`/`def_tristate` line."""

    value: str
    condition: str | None
    line: int


@dataclass
class ConfigEntry:
    """One `config`/`menuconfig` block. A symbol defined in several places has several entries."""

    name: str
    file: str  # tree-relative
    line: int
    type: str | None = None
    prompt: str | None = None
    prompt_condition: str | None = None
    depends_on: list[Clause] = field(default_factory=list)
    selects: list[Select] = field(default_factory=list)
    defaults: list[Default] = field(default_factory=list)


# --- reading ---------------------------------------------------------------------------------------

_DECLARATION = re.compile(r"^\s*(?:menu)?config\s+(\w+)", re.MULTILINE)


def list_arches(tree: Path) -> list[str]:
    """Every directory under arch/ that has a Kconfig file, sorted."""
    arch_dir = tree / "arch"
    if not arch_dir.is_dir():
        raise BadInput(f"{tree}: no arch/ directory; not a kernel tree")
    return sorted(path.name for path in arch_dir.iterdir() if (path / "Kconfig").is_file())


def require_arches(tree: Path, arches: Iterable[str]) -> None:
    """BadInput naming those of `arches` that are not among the tree's `list_arches`."""
    present = list_arches(tree)
    unknown = sorted(set(arches) - set(present))
    if unknown:
        raise BadInput(f"{tree}: no arch {', '.join(unknown)} (it has {', '.join(present)})")


@cache
def foreign_symbols(tree: Path, arch: str) -> frozenset[str]:
    """Symbols only other architectures declare (`config ARM64`, `config CPU_V7`): never set on `arch`.

    Read from the `config`/`menuconfig` lines of every Kconfig* file under arch/<other>/, less what this
    arch's files and the shared arch/Kconfig declare (a symbol several arches declare is this arch's too).
    """
    declared = _declared_per_arch(tree)
    others = set().union(*(names for name, names in declared.items() if name != arch))
    shared = tree / "arch" / "Kconfig"
    own = declared.get(arch, frozenset()) | (_declared(shared) if shared.is_file() else frozenset())
    return frozenset(others - own)


@cache
def _declared_per_arch(tree: Path) -> dict[str, frozenset[str]]:
    """The symbols the Kconfig* files under each arch/<name>/ declare (one walk of arch/ for every arch)."""
    return {name: frozenset().union(*map(_declared, files_below(tree / "arch" / name, "Kconfig*")))
            for name in list_arches(tree)}


def _declared(path: Path) -> frozenset[str]:
    return frozenset(_DECLARATION.findall(path.read_text(encoding="utf-8", errors="replace")))


def read_kconfig(path: Path, tree: Path) -> list[ConfigEntry]:
    """The config blocks of one Kconfig file, in file order; `source` lines are not followed. Parsed once per
    process while the file is unchanged (the link, the frame models and every arch's walk read the same ones)."""
    try:
        stat = path.stat()
    except OSError as err:
        raise BadInput(f"{path}: cannot read Kconfig ({err.strerror})") from None
    return list(_parsed_kconfig(path, tree, stat.st_mtime_ns, stat.st_size))


@cache
def _parsed_kconfig(path: Path, tree: Path, _mtime_ns: int, _size: int) -> tuple[ConfigEntry, ...]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise BadInput(f"{path}: cannot read Kconfig ({err.strerror})") from None
    reader = _Reader(_relative(path, tree))
    for number, line in _logical_lines(text):
        reader.feed(number, line)
    return tuple(reader.entries)


def _relative(path: Path, tree: Path) -> str:
    """`path` below `tree`, not resolved: in `regaudit check`'s scratch view a file is a link out of the view."""
    try:
        return path.absolute().relative_to(tree.absolute()).as_posix()
    except ValueError:
        return path.as_posix()


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first physical line number, text) per statement: continuations joined, comments and help
    text dropped. Help text is skipped here because it may contain words that look like keywords."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number, statement = index + 1, lines[index]
        index += 1
        if statement.strip() in ("help", "---help---"):
            index = _end_of_help(lines, index)
            continue
        while statement.endswith("\\") and index < len(lines):
            statement = statement[:-1] + " " + lines[index]
            index += 1
        code = _strip_comment(statement).strip()
        if code:
            yield number, code


def _end_of_help(lines: list[str], index: int) -> int:
    """Index of the first line after a help block starting at `index`.

    As in scripts/kconfig/lexer.l: the text ends at a line with no indentation, or with less
    indentation than the first line of the text; blank lines belong to it.
    """
    first_indent: int | None = None
    while index < len(lines):
        line = lines[index]
        if line.strip():
            indent = len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())
            if indent == 0 or (first_indent is not None and indent < first_indent):
                break
            first_indent = first_indent or indent
        index += 1
    return index


def _strip_comment(line: str) -> str:
    """`line` without a trailing `# comment`; a `#` inside a quoted prompt is text."""
    quote: str | None = None
    escaped = False
    for position, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quote is not None:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            return line[:position]
    return line


@dataclass
class _Scope:
    kind: ScopeKind
    clauses: list[Clause]


@dataclass
class _Reader:
    """Statement-by-statement state of one file: open scopes and the block being filled in."""

    file: str
    entries: list[ConfigEntry] = field(default_factory=list)
    scopes: list[_Scope] = field(default_factory=list)
    entry: ConfigEntry | None = None
    header: _Scope | None = None  # a menu/choice whose own `depends on` lines are being read

    def feed(self, number: int, line: str) -> None:
        keyword, *tail = line.split(None, 1)
        rest = " ".join(tail[0].split()) if tail else ""
        if keyword in ("config", "menuconfig"):
            self._start_entry(rest, number)
        elif keyword in ("if", "menu", "choice"):
            self._open_scope(keyword, rest, number)
        elif keyword in _BLOCK_ENDERS:
            self._close_block(keyword)
        elif keyword == "depends":
            self._add_dependency(rest.removeprefix("on").strip(), number)
        elif self.entry is not None:
            _read_attribute(self.entry, keyword, rest, number)

    def _start_entry(self, name: str, number: int) -> None:
        inherited = [clause for scope in self.scopes for clause in scope.clauses]
        self.entry = ConfigEntry(name=name, file=self.file, line=number, depends_on=inherited)
        self.header = None
        self.entries.append(self.entry)

    def _open_scope(self, kind: ScopeKind, rest: str, number: int) -> None:
        clauses = [Clause(rest, "if", self.file, number)] if kind == "if" else []
        scope = _Scope(kind, clauses)
        self.scopes.append(scope)
        self.entry = None
        self.header = None if kind == "if" else scope

    def _close_block(self, keyword: str) -> None:
        self.entry = None
        self.header = None
        kind = _ENDS.get(keyword)
        if kind is None:
            return
        # Tolerate unbalanced files: close the innermost scope of the right kind, if any.
        for position in range(len(self.scopes) - 1, -1, -1):
            if self.scopes[position].kind == kind:
                del self.scopes[position:]
                return

    def _add_dependency(self, expr: str, number: int) -> None:
        if self.entry is not None:
            self.entry.depends_on.append(Clause(expr, "depends on", self.file, number))
        elif self.header is not None:
            self.header.clauses.append(Clause(expr, self.header.kind, self.file, number))


def _read_attribute(entry: ConfigEntry, keyword: str, rest: str, number: int) -> None:
    """Record the attributes regaudit uses; others (range, imply, transitional, …) are skipped."""
    if keyword == "select":
        symbol, condition = _split_condition(rest)
        entry.selects.append(Select(symbol, condition, entry.file, number, entry.name))
    elif keyword == "default":
        value, condition = _split_condition(rest)
        entry.defaults.append(Default(value, condition, number))
    elif keyword in _DEF_TYPES:
        entry.type = _DEF_TYPES[keyword]
        value, condition = _split_condition(rest)
        entry.defaults.append(Default(value, condition, number))
    elif keyword in _TYPES:
        entry.type = keyword
        if rest:
            _set_prompt(entry, rest)
    elif keyword == "prompt":
        _set_prompt(entry, rest)


def _set_prompt(entry: ConfigEntry, rest: str) -> None:
    text, condition = _split_condition(rest)
    entry.prompt = text.strip("\"'")
    entry.prompt_condition = condition


def _split_condition(text: str) -> tuple[str, str | None]:
    """('X', 'A && B') for 'X if A && B'; the `if` must be a word outside quotes and parentheses."""
    try:
        tokens = _tokens(text)
    except BadInput:
        return text.strip(), None  # not Kconfig syntax (a template placeholder): keep the text whole
    for position, (kind, word, offset) in enumerate(tokens):
        if kind == "word" and word == "if" and position > 0:
            return text[:offset].strip(), text[offset + 2 :].strip() or None
    return text.strip(), None


# --- expressions -----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>&&|\|\||!=|<=|>=|=|<|>|!|\(|\))
      | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
      | (?P<macro>\$\()
      | (?P<word>[A-Za-z0-9_.+-]+)
    )""",
    re.VERBOSE,
)
_CONSTANTS: dict[str, bool] = {"y": True, "m": True, "n": False}  # m counts as enabled
_COMPARISONS = frozenset({"=", "!=", "<", ">", "<=", ">="})


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, offset) tokens; kinds: op, string, macro, word. `$(...)` is one macro token."""
    tokens: list[tuple[str, str, int]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            if text[position:].strip():
                raise BadInput(f"cannot parse Kconfig expression {text!r} at {text[position:]!r}")
            break
        kind = match.lastgroup or "op"
        start = match.start(kind)
        end = _macro_end(text, start) if kind == "macro" else match.end()
        tokens.append((kind, text[start:end], start))
        position = end
    return tokens


def _macro_end(text: str, start: int) -> int:
    """End of a `$(...)` macro call; its arguments may hold parentheses, commas and `=`."""
    depth = 0
    for position in range(start + 1, len(text)):
        depth += {"(": 1, ")": -1}.get(text[position], 0)
        if depth == 0:
            return position + 1
    raise BadInput(f"cannot parse Kconfig expression {text!r}: unclosed $(")


def evaluate(expr: str, known: Mapping[str, bool]) -> Truth:
    """Value of a Kconfig expression given some symbol values, in three-valued logic.

    `&&`, `||`, `!`, parentheses, and `=`/`!=` against y/n/m or another symbol; `m` counts as true.
    A symbol absent from `known`, a `$(macro)`, a string or number, and any `<`/`>` comparison are
    unknown; the result is None only when it actually depends on one of them (`n && X` is False).
    """
    return _ExpressionParser(expr, known).parse()


@cache
def _expression_tokens(expr: str) -> tuple[tuple[str, str], ...]:
    """(kind, text) per token: every guard of a tree is evaluated once per arch and stage, from the same text."""
    return tuple((kind, text) for kind, text, _ in _tokens(expr))


class _ExpressionParser:
    """Recursive descent in Kconfig precedence: `||` < `&&` < `!` < comparison < atom/parentheses."""

    def __init__(self, expr: str, known: Mapping[str, bool]) -> None:
        self._expr = expr
        self._tokens = _expression_tokens(expr)
        self._position = 0
        self._known = known

    def parse(self) -> Truth:
        if not self._tokens:
            raise BadInput("cannot parse Kconfig expression: it is empty")
        value = self._or()
        if self._position != len(self._tokens):
            self._fail(f"unexpected {self._tokens[self._position][1]!r}")
        return value

    def _or(self) -> Truth:
        value = self._and()
        while self._accept("||"):
            value = _or3(value, self._and())
        return value

    def _and(self) -> Truth:
        value = self._not()
        while self._accept("&&"):
            value = _and3(value, self._not())
        return value

    def _not(self) -> Truth:
        if self._accept("!"):
            value = self._not()
            return None if value is None else not value
        return self._comparison()

    def _comparison(self) -> Truth:
        if self._accept("("):
            value = self._or()
            if not self._accept(")"):
                self._fail("missing ')'")
            return value
        left = self._atom()
        operator = self._peek()
        if operator not in _COMPARISONS:
            return left
        self._position += 1
        right = self._atom()
        if operator not in ("=", "!=") or left is None or right is None:
            return None
        return (left == right) == (operator == "=")

    def _atom(self) -> Truth:
        if self._position == len(self._tokens):
            self._fail("ends too early")
        kind, text = self._tokens[self._position]
        if kind == "op":
            self._fail(f"expected a symbol, found {text!r}")
        self._position += 1
        name = text[1:-1] if kind == "string" else text
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        return self._known.get(name) if kind == "word" else None

    def _peek(self) -> str | None:
        return self._tokens[self._position][1] if self._position < len(self._tokens) else None

    def _accept(self, operator: str) -> bool:
        if self._peek() == operator and self._tokens[self._position][0] == "op":
            self._position += 1
            return True
        return False

    def _fail(self, reason: str) -> None:
        raise BadInput(f"cannot parse Kconfig expression {self._expr!r}: {reason}")


def _and3(left: Truth, right: Truth) -> Truth:
    if left is False or right is False:
        return False
    return None if left is None or right is None else True


def _or3(left: Truth, right: Truth) -> Truth:
    if left is True or right is True:
        return True
    return None if left is None or right is None else False


def _all3(values: Iterable[Truth]) -> Truth:
    result: Truth = True
    for value in values:
        result = _and3(result, value)
    return result


def _any3(values: Iterable[Truth]) -> Truth:
    result: Truth = False
    for value in values:
        result = _or3(result, value)
    return result


# --- capabilities ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What one architecture's own Kconfig files select and define."""

    arch: str
    entries: tuple[ConfigEntry, ...]  # every config block of arch/<arch>/Kconfig and Kconfig.*

    @cached_property
    def selects(self) -> tuple[Select, ...]:
        return tuple(select for entry in self.entries for select in entry.selects)

    def selected(self, symbol: str) -> list[Select]:
        """Every `select symbol` in the arch's files, with its condition and selecting block."""
        return list(self._selects_by_symbol.get(symbol, ()))

    def defined(self, symbol: str) -> list[ConfigEntry]:
        """The blocks defining `symbol` in the arch's files (def_bool, default, …)."""
        return list(self._entries_by_name.get(symbol, ()))

    def value(self, symbol: str, assume: Mapping[str, bool]) -> Truth:
        """Whether `symbol` ends up enabled on this arch given the `assume`d symbol values.

        None when the answer depends on a symbol neither assumed nor decided by the arch's files
        (a user choice, a compiler probe, a symbol defined elsewhere).
        """
        return _Resolver(self, assume).resolve(symbol)

    @cached_property
    def _selects_by_symbol(self) -> dict[str, list[Select]]:
        index: dict[str, list[Select]] = {}
        for select in self.selects:
            index.setdefault(select.symbol, []).append(select)
        return index

    @cached_property
    def _entries_by_name(self) -> dict[str, list[ConfigEntry]]:
        index: dict[str, list[ConfigEntry]] = {}
        for entry in self.entries:
            index.setdefault(entry.name, []).append(entry)
        return index


def arch_capabilities(tree: Path, arch: str) -> Capabilities:
    """The selects and definitions of arch/<arch>/Kconfig plus the Kconfig.* files beside it."""
    entries = [entry for path in arch_kconfig_files(tree, arch) for entry in read_kconfig(path, tree)]
    return Capabilities(arch, tuple(entries))


def arch_kconfig_files(tree: Path, arch: str) -> list[Path]:
    """arch/<arch>/Kconfig and the Kconfig.* files beside it; BadInput when the arch has no Kconfig."""
    arch_dir = tree / "arch" / arch
    main = arch_dir / "Kconfig"
    if not main.is_file():
        raise BadInput(f"{tree}: no arch/{arch}/Kconfig (known arches: {', '.join(list_arches(tree))})")
    return [main, *sorted(path for path in arch_dir.glob("Kconfig.*") if path.is_file())]


class _Resolver(Mapping[str, bool]):
    """Symbol values computed on demand, so `evaluate` only resolves the symbols an expression names.

    As a Mapping it holds the symbols whose value is known: an unknown one raises KeyError, which
    `evaluate` reads as "unknown".
    """

    def __init__(self, capabilities: Capabilities, assume: Mapping[str, bool]) -> None:
        self._capabilities = capabilities
        self._assume = assume
        self._memo: dict[str, Truth] = {}
        self._in_progress: set[str] = set()

    def __getitem__(self, symbol: str) -> bool:
        value = self.resolve(symbol)
        if value is None:
            raise KeyError(symbol)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._assume)

    def __len__(self) -> int:
        return len(self._assume)

    def resolve(self, symbol: str) -> Truth:
        if symbol in self._assume:
            return self._assume[symbol]
        if symbol in self._memo:
            return self._memo[symbol]
        if symbol in self._in_progress:
            return None  # a dependency loop (Kconfig rejects these); unknown rather than a crash
        self._in_progress.add(symbol)
        value = self._compute(symbol)
        self._in_progress.discard(symbol)
        self._memo[symbol] = value
        return value

    def _compute(self, symbol: str) -> Truth:
        # A select forces the symbol on whatever its own dependencies say (kconfig-language.rst,
        # "reverse dependencies"), so a select that fires decides the value.
        selected = _any3(
            _and3(self.resolve(select.selected_by), self._condition(select.condition))
            for select in self._capabilities.selected(symbol)
        )
        definitions = self._capabilities.defined(symbol)
        if definitions:
            otherwise = self._defined_value(definitions)
        elif symbol.startswith("HAVE_"):
            # HAVE_* symbols are bool without a prompt or default, set only by an arch's select
            # (Documentation/kbuild/kconfig-language.rst:512 in 7.3): not selected means off.
            otherwise = False
        else:
            otherwise = None  # defined outside this arch's files
        return _or3(selected, otherwise)

    def _defined_value(self, definitions: list[ConfigEntry]) -> Truth:
        """The value the definitions give without selects: dependencies, prompt, then defaults."""
        if any(entry.type not in _BOOLEAN_TYPES | {None} for entry in definitions):
            return None
        dependencies = [self._depends(entry) for entry in definitions]
        # Several definitions of one symbol: it is visible if any of them is (Kconfig ORs them).
        if _any3(dependencies) is False:
            return False
        if any(
            entry.prompt is not None and self._condition(entry.prompt_condition) is not False for entry in definitions
        ):
            return None  # the user answers the prompt
        for entry, depends in zip(definitions, dependencies, strict=True):
            for default in entry.defaults:
                guard = _and3(depends, self._condition(default.condition))
                if guard is True:
                    return self._condition(default.value)
                if guard is None:
                    return None
        return False

    def _depends(self, entry: ConfigEntry) -> Truth:
        return _all3(self._condition(clause.expr) for clause in entry.depends_on)

    def _condition(self, expr: str | None) -> Truth:
        if expr is None:
            return True
        try:
            return evaluate(expr, self)
        except BadInput:
            return None  # an expression this reader cannot parse is an unknown, not a failed run


# --- trace options and .config ---------------------------------------------------------------------


def trace_features(tree: Path) -> dict[str, ConfigEntry]:
    """The TRACE_FEATURES entries that exist in kernel/trace/Kconfig and arch/Kconfig of `tree`.

    Keyed in TRACE_FEATURES order; a symbol defined twice keeps its first definition.
    """
    found: dict[str, ConfigEntry] = {}
    for relative in _TRACE_KCONFIGS:
        for entry in read_kconfig(tree / relative, tree):
            if entry.name in TRACE_FEATURES:
                found.setdefault(entry.name, entry)
    return {name: found[name] for name in TRACE_FEATURES if name in found}


_DOTCONFIG_SET = re.compile(r"^CONFIG_(\w+)=(.*)$")
_DOTCONFIG_UNSET = re.compile(r"^# CONFIG_(\w+) is not set$")


def parse_dotconfig(path: Path) -> dict[str, bool]:
    """Bool/tristate symbols of a .config, without the CONFIG_ prefix: y or m → True, unset → False.

    Int, hex and string options are left out; anything that is not a .config line is BadInput.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(f"{path}: cannot read .config ({err})") from None
    values: dict[str, bool] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if unset := _DOTCONFIG_UNSET.match(line):
            values[unset[1]] = False
        elif assignment := _DOTCONFIG_SET.match(line):
            if assignment[2] in _CONSTANTS:
                values[assignment[1]] = _CONSTANTS[assignment[2]]
        elif line and not line.startswith("#"):
            raise BadInput(f"{path}:{number}: not a .config line: {line[:80]!r}")
    return values
