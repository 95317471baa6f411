"""Tiny kernel-shaped trees for unit tests: a top Makefile, arch/ and include/linux/, and C files."""

from __future__ import annotations

from pathlib import Path

MAKEFILE = "VERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = 4\nEXTRAVERSION =\n"


def make_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create a kernel-shaped tree under `root` with `files` (tree-relative path -> content)."""
    (root / "arch" / "x86" / "include" / "asm").mkdir(parents=True, exist_ok=True)
    (root / "include" / "linux").mkdir(parents=True, exist_ok=True)
    (root / "Makefile").write_text(MAKEFILE)
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return root
