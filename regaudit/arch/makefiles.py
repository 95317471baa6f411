"""Which Kconfig symbol a source file is built under, read from the tree's Makefiles (kbuild `obj-$(CONFIG_X)`).

Owns `build_symbols(tree)`: tree-relative `.c` path → what must be set for it to be compiled, one
set of alternative symbols per level (a directory or the file listed under several symbols is built
when any of them is set), from `obj-$(CONFIG_X) += name.o` (the file `name.c` beside the Makefile) and
`obj-$(CONFIG_X) += dir/` (everything below `dir`). A file built as part of a composite object
(`foo-y += bar.o`), under `obj-y`, or not listed at all has no level here, so it is taken as built.
Only what kbuild states literally is read: no `ifeq` blocks, no variables other than `CONFIG_*`. The
Makefiles are found with `grep -R`, which follows symbolic links to directories (`regaudit check`'s scratch
view of a patched tree is made of them) and skips link loops.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

_OBJ = re.compile(
    r"^(?P<file>.*?(?:Makefile|Kbuild)):\s*obj-\$\(CONFIG_(?P<symbol>\w+)\)\s*[+:]?=\s*(?P<objects>[^#]*)"
)
Gate = tuple[frozenset[str], ...]  # per level, outermost first: the symbols any of which builds it


@cache
def build_symbols(tree: Path) -> dict[str, Gate]:
    """`kernel/bpf/stackmap.c` → ({'BPF'}, {'BPF_SYSCALL'}): its directory's level, then its own."""
    listed = subprocess.run(
        ["grep", "-RE", "--include=Makefile", "--include=Kbuild", r"^\s*obj-\$\(CONFIG_\w+\)\s*[+:]?=", "."],
        cwd=tree, capture_output=True, text=True, errors="replace", check=False,
    ).stdout
    files: dict[str, set[str]] = {}
    directories: dict[str, set[str]] = {}
    for line in listed.splitlines():
        match = _OBJ.match(line.removeprefix("./"))
        if match is None:
            continue
        base = match["file"].rpartition("/")[0] or "."
        for item in match["objects"].split():
            target = f"{base}/{item}" if base != "." else item
            if item.endswith(".o"):
                files.setdefault(target[:-2] + ".c", set()).add(match["symbol"])
            elif item.endswith("/"):
                directories.setdefault(target.rstrip("/"), set()).add(match["symbol"])
    return _SymbolMap(files, directories)


class _SymbolMap(dict[str, Gate]):
    """A lazy mapping: a path's levels are those of the gated directories above it, then its own."""

    def __init__(self, files: dict[str, set[str]], directories: dict[str, set[str]]) -> None:
        super().__init__()
        self._files, self._directories = files, directories

    def __missing__(self, path: str) -> Gate:
        parts = path.split("/")
        levels = [frozenset(self._directories[d]) for d in ("/".join(parts[:i]) for i in range(1, len(parts)))
                  if d in self._directories]
        if path in self._files:
            levels.append(frozenset(self._files[path]))
        self[path] = tuple(levels)
        return self[path]
