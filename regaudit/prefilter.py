"""The sound prefilter: which of the tree's ~60k C files can matter for pt_regs flow.

A file is selected when it mentions a *token*. Tokens start as the seeds (`pt_regs`,
`ftrace_regs`) and grow, round by round, from the facts of the files selected so far, until a
fixpoint: a name becomes a token when it can carry or produce a pt_regs pointer without the file
that uses it naming pt_regs:
- a struct/union (scanned as `struct NAME`, the only way C names a tag) with a data member whose
  type mentions a token (`perf_regs`, then
  `perf_sample_data` through `regs_intr`); function-pointer members do not count, because the
  functions they point to name pt_regs in their own parameters;
- a typedef of such a type;
- a function-like or object-like macro defined in a header whose body is an *expression* that
  mentions a token outside `sizeof`/`offsetof` (`task_pt_regs(t)`, `current_pt_regs()`), because a
  file can use its value without naming the type. Statement and definition macros (`do {...}`,
  `DEFINE_IDTENTRY(f) {...}`, initializers) yield no value: the regs they declare are exception
  or syscall-entry frames handed to the function they define, which only assembly calls, so no
  ftrace frame reaches them; size/offset constants carry no pointer;
- a struct/union embedded by value in a register-frame struct (FRAME_STRUCTS), for the layout;
- a function whose return type mentions a token (`get_irq_regs`), because a caller may pass its
  result on directly.
Names in `rules/prefilter.toml` `stop` are never tokens (each entry says why: e.g. syscall
definition macros, whose regs come from syscall entry, never from ftrace).

What it can miss (documented limits): a pt_regs pointer laundered through `void *` or an integer
and cast back in a file that names none of the tokens; code generated at build time; assembly
(.S files are not parsed); files under tools/, scripts/, Documentation/.

This module decides *which* files; it reads file contents for scanning but does not parse.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass

from regaudit.resources import data_dir

SEED_TOKENS = ("pt_regs", "ftrace_regs")
# Register-frame structs whose by-value members' types are tokens too ('layout' origin): the
# frame models need their definitions, e.g. arm64's `struct user_pt_regs` in a uapi header.
FRAME_STRUCTS = ("pt_regs", "ftrace_regs", "__arch_ftrace_regs")


@dataclass(frozen=True)
class TokenCandidate:
    """A name and the text that may mention a token (member type, macro body, return type).

    `keyword` is 'struct' or 'union' for a tag: tags are only ever written after their keyword,
    so the token is scanned as 'struct frame', never as the bare (and common) word 'frame'.
    """

    name: str
    text: str
    origin: str
    keyword: str = ""

    @property
    def token(self) -> str:
        return f"{self.keyword} {self.name}" if self.keyword else self.name


HINTS_FILE = "prefilter_hints.txt"


def token_hints() -> frozenset[str]:
    """The tokens of rules/prefilter_hints.txt: what the fixpoint derived on the trees it was proven on.

    Only speed depends on them (see index._Selection.run); a missing or stale file costs passes."""
    path = data_dir("rules") / HINTS_FILE
    if not path.is_file():
        return frozenset()
    lines = (line.strip() for line in path.read_text().splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def stop_tokens() -> frozenset[str]:
    rules = tomllib.loads((data_dir("rules") / "prefilter.toml").read_text())
    return frozenset(entry["name"] for entry in rules.get("stop", []))


def new_tokens(candidates: Iterable[TokenCandidate], fresh: Iterable[str], tokens: set[str],
               stop: frozenset[str]) -> dict[str, str]:
    """Names (-> origin) that the `fresh` tokens make relevant, not yet among `tokens`.

    Only the fresh tokens are matched: a candidate that did not mention an older token did not
    change, so checking it again against those would find nothing new.
    """
    pattern = _word_pattern(fresh)
    declaration = re.compile(_word_pattern(tokens).pattern + r"\s*\*+\s*(?:const\s+)?[A-Za-z_]")
    found: dict[str, str] = {}
    for candidate in candidates:
        token = candidate.token
        if token in tokens or token in stop or candidate.name in stop or token in found:
            continue
        text = candidate.text
        if candidate.origin == "macro body":
            text = _value_text(text)
            if declaration.search(text):
                continue  # `f(struct pt_regs *regs)`: a function head, not a value
        if text and pattern.search(text):
            found[token] = candidate.origin
    return found


def _word_pattern(tokens: Iterable[str]) -> re.Pattern[str]:
    words = "|".join(re.escape(t).replace(r"\ ", r"\s+") for t in sorted(tokens))
    return re.compile(r"\b(?:" + words + r")\b")


_SIZE_OPERATORS = re.compile(r"\b(?:sizeof|offsetof|__alignof__|_Alignof|BUILD_BUG_ON\w*)\s*\(")


def _value_text(body: str) -> str:
    """The part of a macro body that can produce a value: '' for statement or definition macros."""
    stripped = body.strip()
    if stripped.startswith("({"):
        pass  # a statement expression yields its last expression
    elif "{" in stripped or ";" in stripped:
        return ""  # a statement, a definition or a declaration list
    for match in reversed(list(_SIZE_OPERATORS.finditer(stripped))):
        depth, end = 0, len(stripped)
        for index in range(match.end() - 1, len(stripped)):
            depth += (stripped[index] == "(") - (stripped[index] == ")")
            if depth == 0:
                end = index + 1
                break
        stripped = stripped[:match.start()] + stripped[end:]
    return stripped
