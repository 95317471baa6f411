"""A Linux source tree: validation, kernel version, and discovery of the C files worth considering.

Owns what "a kernel tree" means to regaudit. It reads directories and the top Makefile only; it does
not read C files (the prefilter does) and never writes into the tree. Two walks: `walk_sources` (the
index's, which never follows symbolic links) and `files_below` (every later stage's, which follows links
to directories, so it reads `regaudit check`'s scratch view, made of them, like the tree itself).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import NamedTuple

from regaudit.errors import BadInput

# Top-level directories that are not built into the kernel image or modules: user-space tools,
# build scripts and docs. Their C never runs with a kernel pt_regs.
EXCLUDED_TOP_DIRS = frozenset({"tools", "scripts", "Documentation", "LICENSES", "usr", ".git"})

_MAKEFILE_VAR = re.compile(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)\s*$", re.M)


class SourceFile(NamedTuple):
    """A .c/.h file as the directory walk saw it (no content read); a tuple: the walk makes ~60,000 of them."""

    path: str  # tree-relative, '/'-separated
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class KernelTree:
    root: Path
    version: str  # '7.3.4'

    @property
    def series(self) -> str:
        """'7.3' for 7.3.4: the granularity rule data is verified at."""
        return ".".join(self.version.split(".")[:2])


def open_tree(path: str | os.PathLike[str]) -> KernelTree:
    """Validate `path` as a kernel tree and read its version; BadInput with one line otherwise."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise BadInput(f"{root}: not a directory")
    root = root.resolve()
    makefile = root / "Makefile"
    missing = [name for name in ("arch", "include/linux") if not (root / name).is_dir()]
    if not makefile.is_file() or missing:
        what = "Makefile" if not makefile.is_file() else ", ".join(f"{m}/" for m in missing)
        raise BadInput(f"{root}: not a Linux kernel tree (no {what})")
    return KernelTree(root=root, version=read_version(makefile))


def read_version(makefile: Path) -> str:
    try:
        head = makefile.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError as err:
        raise BadInput(f"{makefile}: cannot read ({err.strerror})") from err
    values = dict(_MAKEFILE_VAR.findall(head))
    if "VERSION" not in values or "PATCHLEVEL" not in values:
        raise BadInput(f"{makefile}: not a Linux kernel tree (no VERSION/PATCHLEVEL in the top Makefile)")
    version = f"{values['VERSION']}.{values['PATCHLEVEL']}"
    if values.get("SUBLEVEL"):
        version += f".{values['SUBLEVEL']}"
    return version + values.get("EXTRAVERSION", "")


def arch_of(path: str) -> str:
    """'x86' for arch/x86/..., 'generic' for everything else."""
    parts = path.split("/", 2)
    return parts[1] if len(parts) > 2 and parts[0] == "arch" else "generic"


class TreeFiles(NamedTuple):
    """What `walk_sources` saw."""

    sources: list[SourceFile]  # the .c/.h files, sorted by path
    symlinks: list[str]  # symlinked .c/.h files, not followed
    build_files: list[SourceFile]  # files later stages read as text besides the C (see `is_build_file`)


def walk_sources(tree: KernelTree, arches: Collection[str] | None = None) -> TreeFiles:
    """Every .c/.h file of the tree outside EXCLUDED_TOP_DIRS, sorted by path, the symlinks seen, and the
    build files (`is_build_file`) of the same directories and of the top one.

    `arches`: the index's scope (`in_scope`); the .c/.h files under arch/<other>/ are left out, but not its build
    files, which every arch's link reads (`kconfig.foreign_symbols` reads other arches' Kconfig files).
    Symlinks are never followed (a symlink loop cannot hang the walk, and a link out of the tree is
    not read): symlinked .c/.h files are returned separately so the index can warn about them.
    Unreadable directories are skipped silently: the files in them cannot be listed.
    """
    found: list[SourceFile] = []
    links: list[str] = []
    build: list[SourceFile] = []
    prefix = len(str(tree.root)) + 1
    top = _scandir(str(tree.root))
    stack = [(entry.path, True) for entry in top
             if entry.is_dir(follow_symlinks=False) and entry.name not in EXCLUDED_TOP_DIRS]
    for entry in top:
        if is_build_file(entry.name) and entry.is_file(follow_symlinks=False):
            _add(build, entry.path, prefix)
    arch_dir = f"{tree.root}/arch"
    while stack:
        directory, sources = stack.pop()
        for entry in _scandir(directory):
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, sources and (directory != arch_dir or in_scope(entry.name, arches))))
            elif entry.name.endswith((".c", ".h")):
                if not sources:
                    continue
                if entry.is_symlink():
                    links.append(entry.path[prefix:])
                elif entry.is_file(follow_symlinks=False):
                    _add(found, entry.path, prefix)
            elif is_build_file(entry.name) and entry.is_file(follow_symlinks=False):
                _add(build, entry.path, prefix)
    found.sort()  # by path: no two files share one
    build.sort()
    return TreeFiles(found, sorted(links), build)


def in_scope(arch: str, arches: Collection[str] | None) -> bool:
    """Whether an index of `arches` (None: every arch) holds the C files of `arch` ('generic' is always held)."""
    return arches is None or arch == "generic" or arch in arches


def is_build_file(name: str) -> bool:
    """Kconfig, Makefile and Kbuild files (the modelled build and the link's guards come from them), assembly
    (rule evidence cites trampolines) and MAINTAINERS (the subsystem of a finding): what later stages read
    besides the C facts, so a change to one must reach them as a change of the tree."""
    return name.startswith(("Kconfig", "Makefile", "Kbuild")) or name.endswith(".S") or name == "MAINTAINERS"


def files_below(directory: Path, pattern: str) -> list[Path]:
    """The files below `directory` whose name matches `pattern` ('*.h'), sorted, as paths under `directory`.

    Symbolic links to directories are followed (unlike `Path.rglob`) except into a directory the walk is
    already in, so a link loop cannot hang it (as `grep -R`). A missing directory has no files.
    """
    found: list[Path] = []

    def walk(path: str, ancestors: frozenset[tuple[int, int]]) -> None:
        for entry in _scandir(path):
            if entry.is_dir():
                stat = entry.stat()
                if (stat.st_dev, stat.st_ino) not in ancestors:
                    walk(entry.path, ancestors | {(stat.st_dev, stat.st_ino)})
            elif fnmatchcase(entry.name, pattern) and entry.is_file():
                found.append(Path(entry.path))

    try:
        root = os.stat(directory)
    except OSError:
        return []
    walk(str(directory), frozenset({(root.st_dev, root.st_ino)}))
    return sorted(found)


def _scandir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except OSError:
        return []


def _add(found: list[SourceFile], path: str, prefix: int) -> None:
    try:
        stat = os.stat(path, follow_symlinks=False)
    except OSError:
        return
    found.append(SourceFile(path[prefix:].replace(os.sep, "/"), stat.st_size, stat.st_mtime_ns))
