"""Where the prefilter's tokens occur in files: the index's one read of every walked file.

`first_occurrences(root, paths, tokens)` answers, for each of `paths` (relative to `root`) that names a token
as a whole identifier (neither preceded nor followed by one of [A-Za-z0-9_], bytes compared as in the C
locale), the byte offset where each token it names first starts; a file that cannot be read is reported once,
as UNREADABLE at offset -1. Two matchers give that answer, and a test holds them to the same one:
- Hyperscan, a SIMD multi-literal matcher, where its wheel exists (x86-64): ~1.3 GB/s for the ~130 tokens of a
  tree, where GNU grep -F -w manages ~0.2 GB/s;
- GNU grep -F -w elsewhere, or when REGAUDIT_MATCHER=grep says so (the index checks that variable first).
`names_a_token(data, tokens)` answers the same question for bytes in memory (a patch's new file content),
with Python's `re`, held to the same answer by the same test.
It decides nothing about which tokens or files matter (prefilter.py, index.py).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from types import ModuleType
from typing import Any

from regaudit.errors import BadInput
from regaudit.parse.text_scan import GREP_ENV

UNREADABLE = "unreadable"
Occurrence = tuple[str, str, int]  # path, token (or UNREADABLE), byte offset of its first occurrence (-1)
MATCHER_VARIABLE = "REGAUDIT_MATCHER"


def _hyperscan() -> ModuleType | None:
    try:
        import hyperscan
    except ImportError:
        return None
    return hyperscan


def matcher() -> str:
    """REGAUDIT_MATCHER ('grep' or 'hyperscan') when set, else 'hyperscan' when it is installed, else 'grep'.
    BadInput for another value, or for 'hyperscan' where it is not installed."""
    wanted = os.environ.get(MATCHER_VARIABLE, "")
    if wanted not in ("", "grep", "hyperscan"):
        raise BadInput(f"{MATCHER_VARIABLE}={wanted}: the token matcher is 'grep' or 'hyperscan'")
    installed = _hyperscan() is not None
    if wanted == "hyperscan" and not installed:
        raise BadInput(f"{MATCHER_VARIABLE}=hyperscan, but the hyperscan package is not installed")
    return wanted or ("hyperscan" if installed else "grep")


def first_occurrences(root: str, paths: list[str], tokens: tuple[str, ...], using: str | None = None) \
        -> list[Occurrence]:
    """Each token's first whole-word occurrence in each of `paths`, with `using` (default: `matcher()`)."""
    scan = _with_grep if (using or matcher()) == "grep" else _with_hyperscan
    return scan(root, paths, tokens) if paths and tokens else []


def names_a_token(data: bytes, tokens: tuple[str, ...]) -> bool:
    """Whether `data` names one of `tokens` as a whole identifier."""
    return bool(tokens) and _word_pattern(tokens).search(data) is not None


@functools.lru_cache(maxsize=2)
def _word_pattern(tokens: tuple[str, ...]) -> re.Pattern[bytes]:
    return re.compile(rb"\b(?:" + b"|".join(re.escape(token.encode()) for token in tokens) + rb")\b")


def _with_hyperscan(root: str, paths: list[str], tokens: tuple[str, ...]) -> list[Occurrence]:
    database = _database(tokens)
    lengths = [len(token.encode()) for token in tokens]
    found: list[Occurrence] = []
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for path in paths:
            try:
                data = _read(root_fd, path)
            except OSError:
                found.append((path, UNREADABLE, -1))
                continue
            ends: list[tuple[int, int]] = []
            database.scan(data, match_event_handler=_collect, context=ends)
            found += [(path, tokens[pattern], end - lengths[pattern]) for pattern, end in ends]
    finally:
        os.close(root_fd)
    return found


def _collect(pattern: int, _start: int, end: int, _flags: int, ends: list[tuple[int, int]]) -> None:
    ends.append((pattern, end))


@functools.lru_cache(maxsize=2)
def _database(tokens: tuple[str, ...]) -> Any:  # hyperscan.Database; the module is optional
    """The tokens compiled once per process and token list: each whole-word, reported at its first match only."""
    hyperscan = _hyperscan()
    assert hyperscan is not None
    database = hyperscan.Database()
    database.compile(expressions=[rb"\b" + re.escape(token.encode()) + rb"\b" for token in tokens],
                     ids=list(range(len(tokens))), elements=len(tokens),
                     flags=[hyperscan.HS_FLAG_SINGLEMATCH] * len(tokens))
    return database


def _read(root_fd: int, path: str) -> bytes:
    """The whole file: os.read is ~2x cheaper per file than open().read() on the ~60k files of a tree."""
    fd = os.open(path, os.O_RDONLY, dir_fd=root_fd)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 22):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _with_grep(root: str, paths: list[str], tokens: tuple[str, ...]) -> list[Occurrence]:
    """grep -o -b prints every leftmost-longest match; the first of each token is kept. grep reports
    `struct X` and not the `X` inside it, which is an occurrence of the token X all the same."""
    wanted = set(tokens)
    patterns = [argument for token in tokens for argument in ("-e", token)]
    command = ["grep", "-a", "-H", "-b", "-o", "-w", "-F", *patterns, "--", *paths]
    completed = subprocess.run(command, cwd=root, env=GREP_ENV, capture_output=True, check=False)
    first: dict[tuple[str, str], int] = {}
    listed = set(paths)
    for line in completed.stdout.decode("utf-8", "replace").splitlines():
        path, _, rest = line.partition(":")
        offset, _, token = rest.partition(":")
        if path not in listed or not offset.isdigit():
            continue
        first.setdefault((path, token), int(offset))
        keyword, _, tag = token.partition(" ")
        if tag in wanted and keyword in ("struct", "union"):
            first.setdefault((path, tag), int(offset) + len(keyword) + 1)
    found = [(path, token, offset) for (path, token), offset in first.items()]
    for line in completed.stderr.decode("utf-8", "replace").splitlines():
        # 'grep: PATH: Permission denied'
        parts = line.split(": ")
        if len(parts) >= 3 and parts[1] in listed:
            found.append((parts[1], UNREADABLE, -1))
    return found
