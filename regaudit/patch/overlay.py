"""Applying file changes to a kernel tree without touching it: in memory first, then as a scratch view.

Owns the patched contents and the patched tree. `apply_changes` reads only the files a patch touches and
computes their new contents in memory, refusing (BadInput, one line) a hunk that does not apply, a path
through a symbolic link (which could lead out of the tree), a new file that exists, a missing one. Hunks
apply like `git apply`: exact context, found at the stated line or the nearest offset, in order.

`materialise` builds the patched tree the audit reads (it reads Kconfig, Makefiles, MAINTAINERS and sources
by path) as a sparse view: a real directory for each directory on the way to a touched file, holding the
touched files written anew (a removed file is absent, a new one gets its new directories) and, for every
other entry of the tree's directory, a symbolic link to it (absolute target). Everything else is thus one
link at the highest level possible: a patch touching one file costs a few hundred links, whatever the size
of the tree. No write goes through a link (every file written is new, in a directory of the view), so no
inode of the user's tree is ever written; removing the view removes the links, not what they point to.
The stages that walk it do so with `regaudit.tree.files_below` and `grep -R`, which follow links to directories.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from regaudit.errors import BadInput
from regaudit.patch.diffs import FileChange, Hunk, decode, encode


@dataclass(frozen=True)
class Patched:
    """The touched files of a tree after a patch: new contents, and the files that no longer exist."""

    files: dict[str, bytes]
    removed: tuple[str, ...]

    @property
    def touched(self) -> list[str]:
        return sorted([*self.files, *self.removed])


def apply_changes(tree: Path, changes: Iterable[FileChange]) -> Patched:
    """Apply `changes` in order (a later patch of a series sees the earlier ones) to the contents of `tree`."""
    original: dict[str, bytes | None] = {}
    current: dict[str, bytes | None] = {}

    def content(path: str) -> bytes | None:
        if path not in current:
            original[path] = current[path] = _read(tree, path)
        return current[path]

    for change in changes:
        source = content(change.old) if change.old else b""
        if change.old and source is None:
            raise BadInput(f"{change.patch}: {change.old}: no such file in the tree")
        if change.new and change.new != change.old and content(change.new) is not None:
            raise BadInput(f"{change.patch}: {change.new}: already exists in the tree")
        result = _apply_hunks(source or b"", change)
        if change.old and change.old != change.new and not change.copy:
            current[change.old] = None
        if change.new:
            current[change.new] = result
    changed = {path: data for path, data in current.items() if data != original[path]}
    return Patched({path: data for path, data in changed.items() if data is not None},
                   tuple(sorted(path for path, data in changed.items() if data is None)))


def _read(tree: Path, path: str) -> bytes | None:
    """The tree's `path`, None when absent. Refuses symbolic links anywhere on the way and non-files."""
    place = tree
    for part in PurePosixPath(path).parts:
        place = place / part
        if place.is_symlink():
            raise BadInput(f"{path}: {place.relative_to(tree)} is a symbolic link; a patch may only touch regular "
                           "files inside the tree")
    if not place.exists():
        return None
    if not place.is_file():
        raise BadInput(f"{path}: not a regular file in the tree")
    try:
        return place.read_bytes()
    except OSError as err:
        raise BadInput(f"{path}: cannot read: {err.strerror}") from None


def _apply_hunks(data: bytes, change: FileChange) -> bytes:
    lines = _lines(decode(data))
    shift = 0  # where the last hunk landed minus where it said it would
    floor = 0  # hunks apply in order and never overlap
    for hunk in change.hunks:
        at = _locate(lines, hunk, hunk.start + shift, floor)
        if at is None:
            raise BadInput(f"{change.patch}: {change.path}: hunk #{hunk.number} ({hunk.header}) does not apply")
        lines[at:at + len(hunk.before)] = hunk.after
        shift = at - hunk.start + len(hunk.after) - len(hunk.before)
        floor = at + len(hunk.after)
    return encode("".join(lines))


def _lines(text: str) -> list[str]:
    """Lines with their '\\n' (only '\\n' ends a line: form feeds and '\\r' stay inside, as in diff)."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _locate(lines: list[str], hunk: Hunk, expected: int, floor: int) -> int | None:
    """The index nearest `expected` (not before `floor`) where `hunk.before` is the file's text."""
    size = len(hunk.before)
    last = len(lines) - size
    if size == 0:
        return expected if floor <= expected <= len(lines) else None
    for distance in range(max(expected - floor, last - expected) + 1):
        for at in (expected - distance, expected + distance):
            if floor <= at <= last and tuple(lines[at:at + size]) == hunk.before:
                return at
    return None


def materialise(tree: Path, patched: Patched, into: Path) -> Path:
    """The patched tree at `into` (a new directory): a sparse view of `tree` (see the module docstring)."""
    source = tree.absolute()
    touched = {PurePosixPath(path) for path in patched.touched}
    directories = {PurePosixPath("."), *(parent for path in touched for parent in path.parents)}
    for directory in sorted(directories):  # a parent sorts before its children
        (into / directory).mkdir()
        if not (source / directory).is_dir():
            continue  # new, or replacing a removed file
        for name in os.listdir(source / directory):
            relative = directory / name
            if relative not in touched and relative not in directories and relative != PurePosixPath(".git"):
                (into / relative).symlink_to(source / relative)
    for path, data in patched.files.items():
        (into / path).write_bytes(data)
    return into
