"""Text facts: what later stages need to know of files the prefilter may not have selected, read from
their raw text without parsing it.

Owns the two patterns and both ways of applying them, so that the index stage's run over the tree and
`index_overlay`'s re-read of a patch's files agree by construction:
- header defines: the single-line object-like `#define NAME value` whose NAME is spelled like a kernel
  constant, in every header under include/ and arch/<arch>/include/ (the frame oracle folds them when the
  index did not see a name's definition);
- BPF proto definitions: `struct bpf_func_proto NAME = {` variables and functions returning a
  `struct bpf_func_proto *`, in every .c file (where the BPF helper walk reads a proto's source text).
Over a tree, `header_defines` applies the first to many headers with GNU grep (an order of magnitude faster
than Python's `re`), and `proto_definitions` the second to the .c files a scan found PROTO_TAG in;
`scan_data` applies both to one file's bytes with Python's `re`: the same patterns, in the C locale where
grep and `re` read every byte alike. No `#if` guard is looked at. It writes nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from regaudit.tree import arch_of

PROTO_TAG = "bpf_func_proto"
# A whole line, for `grep -E` and Python's `re` alike: a #define of a constant-looking name with a
# replacement and no backslash anywhere (a continued or string-escaping define is left out).
_DEFINE_LINE = r"^\s*#\s*define\s+_*[A-Z][A-Z0-9_]*\s+[^\\]*$"
_DEFINE_SELECTED = re.compile(_DEFINE_LINE.encode())
# Name and replacement of a selected line; the replacement stops before a /* comment.
_DEFINE_PARTS = rb"\s*#\s*define\s+(\w+)\s+(.*?)\s*(?:/\*.*)?$"
_DEFINE_SPLIT = re.compile(_DEFINE_PARTS)
# The same on a line `grep -HnZ` printed: the file, a NUL, the line number and a colon before it.
_GREP_DEFINE = re.compile(rb"([^\0]*)\0(\d+):" + _DEFINE_PARTS)
_PROTO_PATTERNS = (
    ("variable", re.compile(rb"struct\s+" + PROTO_TAG.encode() + rb"\s+(\w+)\s*=\s*\{")),
    ("function", re.compile(rb"struct\s+" + PROTO_TAG.encode() + rb"\s*\*\s*(\w+)\s*\(")),
)
# Bytes, not characters: in a UTF-8 locale grep's -w counts non-ASCII letters as word characters, and C's
# identifiers are ASCII (a latin-1 comment byte is not part of one).
GREP_ENV = {**os.environ, "LC_ALL": "C"}


# Rows are plain tuples, in the tables' column order: a tree has ~340k defines, which named tuples would make
# several times slower to build and to send back from the index's worker processes.
# (file, arch, line, name, value): arch 'generic' for include/, else the <arch> of arch/<arch>/include/;
# value '' for `#define NAME ` (trailing blanks only).
HeaderDefine = tuple[str, str, int, str, str]
# (file, line, name, kind): line where the match starts, kind 'variable' or 'function'.
ProtoDefinition = tuple[str, int, str, str]


class TextScan(NamedTuple):
    """The text facts of some files."""

    defines: list[HeaderDefine]
    protos: list[ProtoDefinition]


def merged(scans: Iterable[TextScan]) -> TextScan:
    """One scan holding the facts of all `scans` (of distinct files)."""
    total = TextScan([], [])
    for scan in scans:
        total.defines.extend(scan.defines)
        total.protos.extend(scan.protos)
    return total


def has_defines(path: str) -> bool:
    """Whether `path` is a header whose defines are text facts: a .h file under include/ or arch/<arch>/include/."""
    parts = path.split("/")
    return path.endswith(".h") and (parts[0] == "include" or (parts[0] == "arch" and parts[2:3] == ["include"]))


def has_protos(path: str) -> bool:
    """Whether `path` is a file whose BPF proto definitions are text facts: a .c file."""
    return path.endswith(".c")


def header_defines(root: Path, paths: list[str]) -> list[HeaderDefine]:
    """The header defines of `paths` (tree-relative, under `root`; others than `has_defines` ones are skipped):
    one grep over them."""
    defines: list[HeaderDefine] = []
    arches: dict[bytes, tuple[str, str]] = {}  # grep's file -> (path, arch)
    headers = [path for path in paths if has_defines(path)]
    for match in map(_GREP_DEFINE.match, _grep(root, ["-HnZE", "-e", _DEFINE_LINE], headers).split(b"\n")):
        if match is not None:
            if match[1] not in arches:
                path = match[1].decode(errors="replace")
                arches[match[1]] = (path, arch_of(path))
            defines.append((*arches[match[1]], int(match[2]), match[3].decode(), match[4].decode(errors="replace")))
    return defines


def proto_definitions(root: Path, paths: list[str]) -> list[ProtoDefinition]:
    """The BPF proto definitions of `paths`, .c files naming PROTO_TAG (the others define none, which the
    caller knows from a scan of the tree it made anyway: the index's token scan looks for the tag); an
    unreadable file has none."""
    protos: list[ProtoDefinition] = []
    for path in paths:
        try:
            protos += _protos(path, (root / path).read_bytes())
        except OSError:
            continue
    return protos


def scan_data(path: str, data: bytes) -> TextScan:
    """The text facts of one file whose content is `data`: what `scan_files` finds in it on disk."""
    defines: list[HeaderDefine] = []
    if has_defines(path) and b"\0" not in data:  # grep prints no line of a binary file
        arch = arch_of(path)
        for number, line in enumerate(data.split(b"\n"), start=1):
            match = _DEFINE_SPLIT.match(line) if _DEFINE_SELECTED.match(line) else None
            if match is not None:
                defines.append((path, arch, number, match[1].decode(), match[2].decode(errors="replace")))
    protos = _protos(path, data) if has_protos(path) and PROTO_TAG.encode() in data else []
    return TextScan(defines, protos)


def _grep(root: Path, options: list[str], paths: list[str]) -> bytes:
    """grep's output over `paths`; b'' for no paths (grep would read its standard input)."""
    if not paths:
        return b""
    completed = subprocess.run(["grep", *options, "--", *paths], cwd=root, env=GREP_ENV, capture_output=True,
                               check=False)
    return completed.stdout


def _protos(path: str, data: bytes) -> list[ProtoDefinition]:
    return [(path, data.count(b"\n", 0, match.start()) + 1, match[1].decode(), kind)
            for kind, pattern in _PROTO_PATTERNS for match in pattern.finditer(data)]
