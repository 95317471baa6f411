"""Applying file changes to a kernel tree without touching it: in memory first, then as a scratch view.

Owns the patched contents and the patched tree. `apply_changes` reads only the files a patch touches and
computes their new contents in memory, refusing (BadInput, one line) a hunk that does not apply, a path
through a symbolic link (which could lead out of the tree), a new file that exists, a missing one. Hunks
apply like `git apply`: exact context, found at the stated line or the nearest offset, in order.

`materialise` builds the full patched tree the audit reads (it reads Kconfig, MAINTAINERS and sources by
path): hard links to every file of the tree (`cp -al`, no data copied; a full copy when the scratch
directory is on another file system), then each touched file is unlinked and written anew, so no inode of
the user's tree is ever written.
"""

from __future__ import annotations

import shutil
import subprocess
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
    """The patched tree at `into` (a new directory): hard links to `tree`'s files, touched files written anew."""
    _clone(tree, into)
    for path in patched.removed:
        (into / path).unlink()
    for path, data in patched.files.items():
        target = into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)  # a hard link to the user's file: never write through it
        target.write_bytes(data)
    return into


def _clone(tree: Path, into: Path) -> None:
    into.mkdir()
    entries = [str(entry) for entry in sorted(tree.iterdir()) if entry.name != ".git"]
    linked = subprocess.run(["cp", "-al", "--", *entries, str(into)], capture_output=True, text=True, check=False)
    if linked.returncode == 0:
        return
    shutil.rmtree(into)  # hard links cannot cross file systems: copy instead
    into.mkdir()
    copied = subprocess.run(["cp", "-a", "--reflink=auto", "--", *entries, str(into)], capture_output=True,
                            text=True, check=False)
    if copied.returncode != 0:
        raise BadInput(f"cannot make a scratch copy of {tree} in {into}: {copied.stderr.strip().splitlines()[-1]}")
