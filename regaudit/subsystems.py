"""Which MAINTAINERS section a kernel file belongs to, and which coarse class regaudit reports it under.

Owns: parsing a tree's top-level MAINTAINERS into sections, choosing the most specific section for a
path, and folding sections (and path globs no section names) into the coarse classes of
`COARSE_CLASSES` as `rules/subsystems.toml` says, plus the schema of that file (registered in
`regaudit.ruleset.load._schemas`).

MAINTAINERS patterns, as its header documents them and scripts/get_maintainer.pl applies them:

- `F:` a file pattern. A trailing `/` matches everything below (`drivers/net/`); otherwise the whole
  path must match: `*` and `?` stay within one path component (`drivers/net/*` = files in that
  directory only), `**` crosses components. A pattern without wildcards that names a directory but
  lacks the trailing slash (`kernel/bpf`) matches below it too, as get_maintainer adds the slash.
- `X:` the same syntax; a path matching any `X:` of a section is not in that section at all.
- `N:` a (Perl, extended) regex searched in the path; one Python cannot compile is ignored.

The most specific section wins, ranked as get_maintainer.pl ranks (its `$hash{$tvi} = $value_pd`):
first by the depth of the best matching pattern of the section, i.e. its number of `/` plus one unless
it ends with `/` (`kernel/trace/ftrace*` 3 beats `kernel/trace/` 2); a pattern starting with a wildcard
(`*/`, THE REST's catch-all) ranks -1 and an `N:` match 0. Ties go to the pattern with the most literal
(non-wildcard) characters, so `kernel/events/uprobes.c` beats `kernel/events/*`; then to the section
that comes first in MAINTAINERS.

The coarse class: the first `[[path]]` glob of the rules that matches the path wins (globs beat
sections: an unwinder under "X86 ARCHITECTURE" is arch-unwind); else the class of the chosen section,
an exact `title` before any `regex`; else "other". Without a MAINTAINERS file every path is in
section "" and only the globs classify it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from regaudit.ruleset.evidence import nearest_series, verified_series
from regaudit.ruleset.load import (
    Invalid,
    applies_to,
    check_keys,
    kernel_series,
    load_rule_file,
    optional_str,
    own_kernels,
    required_choice,
    required_str,
    rule_paths,
)

COARSE_CLASSES: tuple[str, ...] = ("perf", "kprobes/fprobe", "BPF", "tracing", "arch-unwind", "other")

_TAG = re.compile(r"^([A-Z]):\s*(.*?)\s*$")
_WILDCARDS = frozenset("*?")
_SECTION_KEYS = frozenset({"class", "title", "regex", "kernels", "evidence", "notes"})
_PATH_KEYS = frozenset({"class", "glob", "kernels", "evidence", "notes"})


@dataclass(frozen=True)
class Subsystem:
    """Where a file belongs: its MAINTAINERS section title ("" when none matches) and coarse class."""

    section: str
    coarse: str


@dataclass(frozen=True)
class _Pattern:
    """One F:/X: pattern and its rank (depth, literal characters) as a match.

    Most patterns are literal paths and match by string comparison; a glob compiles on first use, as
    compiling all ~10,000 patterns of a MAINTAINERS would dominate loading.
    """

    text: str
    rank: tuple[int, int]
    literal: bool

    def matches(self, path: str) -> bool:
        if not self.literal:
            return self._regex.fullmatch(path) is not None
        if self.text.endswith("/"):
            return path.startswith(self.text)
        return path == self.text or path.startswith(self.text + "/")  # or a directory named without its slash

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        suffix = ".*" if self.text.endswith("/") else ""
        return re.compile(_glob_regex(self.text) + suffix, re.DOTALL)


@dataclass
class _Section:
    title: str
    order: int
    excludes: list[_Pattern] = field(default_factory=list)


@dataclass(frozen=True)
class _Rules:
    """rules/subsystems.toml for one series: section title/regex → class, and path globs → class."""

    titles: dict[str, str]
    regexes: tuple[tuple[re.Pattern[str], str], ...]
    globs: tuple[tuple[re.Pattern[str], str], ...]

    def section_class(self, title: str) -> str | None:
        if title in self.titles:
            return self.titles[title]
        return next((coarse for regex, coarse in self.regexes if regex.search(title)), None)

    def path_class(self, path: str) -> str | None:
        return next((coarse for glob, coarse in self.globs if glob.fullmatch(path)), None)


class Maintainers:
    """A parsed MAINTAINERS file plus the coarse-class rules; `classify` answers per path, cached."""

    def __init__(
        self,
        sections: list[_Section],
        patterns: dict[str, list[tuple[_Pattern, _Section]]],
        regexes: list[tuple[re.Pattern[str], _Section]],
        rules: _Rules,
    ) -> None:
        self._sections = sections
        self._patterns = patterns  # F: patterns keyed by the literal directory they start with
        self._regexes = regexes  # N: patterns, tried on every path
        self._rules = rules
        self._cache: dict[str, Subsystem] = {}

    @classmethod
    def load(cls, tree: Path, series: str) -> Maintainers:
        """Parse `tree`/MAINTAINERS (missing: no sections) with the rules that hold for kernel `series`."""
        path = tree / "MAINTAINERS"
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        sections: list[_Section] = []
        patterns: dict[str, list[tuple[_Pattern, _Section]]] = {}
        regexes: list[tuple[re.Pattern[str], _Section]] = []
        for title, tags in _parse_sections(text):
            section = _Section(title, len(sections))
            sections.append(section)
            for tag, value in tags:
                _add_tag(section, tag, value, patterns, regexes)
        return cls(sections, patterns, regexes, load_rules(series))

    def classify(self, path: str) -> Subsystem:
        """The section and coarse class of `path`, relative to the tree root ("kernel/events/core.c")."""
        found = self._cache.get(path)
        if found is None:
            section = self._section(path)
            coarse = self._rules.path_class(path) or self._rules.section_class(section) or "other"
            found = self._cache[path] = Subsystem(section, coarse)
        return found

    def _section(self, path: str) -> str:
        best: dict[int, tuple[int, int]] = {}
        for pattern, section in self._candidates(path):
            if pattern.matches(path):
                best[section.order] = max(best.get(section.order, pattern.rank), pattern.rank)
        for regex, section in self._regexes:
            if regex.search(path):
                best[section.order] = max(best.get(section.order, (0, 0)), (0, 0))
        for order in sorted(best, key=lambda order: (best[order], -order), reverse=True):
            section = self._sections[order]
            if not any(exclude.matches(path) for exclude in section.excludes):
                return section.title
        return ""

    def _candidates(self, path: str) -> Iterator[tuple[_Pattern, _Section]]:
        """F: patterns that can match `path`: those keyed by one of its ancestor directories."""
        yield from self._patterns.get("", ())
        for index, char in enumerate(path):
            if char == "/":
                yield from self._patterns.get(path[: index + 1], ())


# --- MAINTAINERS ----------------------------------------------------------------------------------


def _parse_sections(text: str) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """(title, [(tag, value), ...]) per section: a title line directly followed by `X:\\t…` lines.

    The header documents the tags with indented lines, so no section starts before the list does.
    """
    title: str | None = None
    tags: list[tuple[str, str]] = []
    previous = ""
    for line in text.splitlines():
        tag = _TAG.match(line)
        if tag is None:
            if title is not None:
                yield title, tags
            title, tags, previous = None, [], line
            continue
        if title is None and previous.strip() and not previous[0].isspace():
            title = previous.strip()
        if title is not None:
            tags.append((tag[1], tag[2]))
    if title is not None:
        yield title, tags


def _add_tag(
    section: _Section,
    tag: str,
    value: str,
    patterns: dict[str, list[tuple[_Pattern, _Section]]],
    regexes: list[tuple[re.Pattern[str], _Section]],
) -> None:
    if tag == "F" and value:
        patterns.setdefault(_literal_directory(value), []).append((_file_pattern(value), section))
    elif tag == "X" and value:
        section.excludes.append(_file_pattern(value))
    elif tag == "N" and value:
        try:
            regexes.append((re.compile(value, re.VERBOSE), section))
        except re.error:
            return  # Perl-only syntax: get_maintainer.pl would match, this classifier cannot


def _file_pattern(value: str) -> _Pattern:
    """An F:/X: pattern with its get_maintainer.pl rank."""
    depth = -1 if value[0] in _WILDCARDS else value.count("/") + (not value.endswith("/"))
    literal = sum(char not in _WILDCARDS for char in value)
    return _Pattern(value, (depth, literal), literal == len(value))


def _literal_directory(value: str) -> str:
    """The directory (with its trailing `/`) every path a pattern matches starts with: "" for `*/`."""
    wildcard = min((value.index(char) for char in _WILDCARDS if char in value), default=len(value))
    return value[: value.rfind("/", 0, wildcard) + 1]


def _glob_regex(glob: str) -> str:
    """`**` any characters, `*` any within a path component, `?` one such character; the rest literal."""
    parts = re.split(r"(\*\*|\*|\?)", glob)
    wildcard = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return "".join(wildcard.get(part, re.escape(part)) for part in parts)


# --- rules/subsystems.toml ---------------------------------------------------------------------------


def load_rules(series: str, path: Path | None = None) -> _Rules:
    """The entries of rules/subsystems.toml (or `path`) for `series`, or for the nearest series verified."""
    rule = load_rule_file(path or rule_paths("subsystems")[0], "subsystems")
    series = kernel_series(series)
    series = nearest_series(verified_series(rule), series) or series
    file_kernels = own_kernels(rule.data, "")
    titles: dict[str, str] = {}
    regexes: list[tuple[re.Pattern[str], str]] = []
    for entry in _applicable(rule.data.get("section", []), file_kernels, series):
        if "title" in entry:
            titles.setdefault(entry["title"], entry["class"])
        else:
            regexes.append((re.compile(entry["regex"]), entry["class"]))
    globs = tuple(
        (re.compile(_glob_regex(entry["glob"]), re.DOTALL), entry["class"])
        for entry in _applicable(rule.data.get("path", []), file_kernels, series)
    )
    return _Rules(titles, tuple(regexes), globs)


def _applicable(
    entries: list[dict[str, Any]], file_kernels: tuple[str, ...] | None, series: str
) -> Iterator[dict[str, Any]]:
    return (entry for entry in entries if applies_to(own_kernels(entry, "") or file_kernels, series))


def validate_subsystems(data: dict[str, Any]) -> None:
    """Schema of rules/subsystems.toml; raises load's `Invalid` naming the key (registered in load._schemas)."""
    check_keys(data, frozenset({"kernels", "section", "path"}), "")
    if not data.get("section") and not data.get("path"):
        raise Invalid("section", "missing: the file holds at least one [[section]] or [[path]]")
    file_kernels = own_kernels(data, "")
    for table, validate in (("section", _validate_section), ("path", _validate_path)):
        entries = data.get(table, [])
        if not isinstance(entries, list):
            raise Invalid(table, f"must be an array of tables ([[{table}]])")
        for index, entry in enumerate(entries):
            where = f"{table}[{index}]"
            if not isinstance(entry, dict):
                raise Invalid(where, f"must be a table ([[{table}]])")
            validate(entry, where)
            _validate_common(entry, where, file_kernels)


def _validate_section(entry: dict[str, Any], where: str) -> None:
    check_keys(entry, _SECTION_KEYS, where)
    if ("title" in entry) == ("regex" in entry):
        raise Invalid(where, "give exactly one of `title` (the exact section title) or `regex` (searched in titles)")
    if "title" in entry:
        required_str(entry, "title", where)
        return
    try:
        re.compile(required_str(entry, "regex", where))
    except re.error as err:
        raise Invalid(f"{where}.regex", f"is not a regular expression: {err}") from None


def _validate_path(entry: dict[str, Any], where: str) -> None:
    check_keys(entry, _PATH_KEYS, where)
    glob = required_str(entry, "glob", where)
    if glob.startswith("/") or ".." in glob.split("/"):
        raise Invalid(f"{where}.glob", f"{glob!r} must be relative to the kernel tree root, without '..'")


def _validate_common(entry: dict[str, Any], where: str, file_kernels: tuple[str, ...] | None) -> None:
    required_choice(entry, "class", where, COARSE_CLASSES)
    optional_str(entry, "notes", where)
    if own_kernels(entry, where) is None and file_kernels is None:
        raise Invalid(f"{where}.kernels", "missing here and at the top level: say which kernels this was verified on")
    if not entry.get("evidence"):
        raise Invalid(f"{where}.evidence", "missing: every entry cites the lines it rests on, per kernel")
