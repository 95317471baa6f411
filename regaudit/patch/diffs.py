"""Reading patches: unified diffs and `git format-patch` mbox files → validated per-file changes.

Owns what a patch may say. Parsing is unidiff's; this module turns its result into `FileChange`s with
tree-relative paths (one leading component stripped, as `patch -p1` and `git apply` do) and refuses, as
`BadInput` with one line, what `regaudit check` cannot apply: no diff at all, malformed or truncated hunks,
binary diffs, absolute paths, `..` or quoted paths. Deletions, renames and copies are supported. Contents
are decoded with `surrogateescape`, so any byte of a file or patch round-trips. `git_diff` asks git for
the patch of a commit range.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from io import StringIO
from pathlib import Path, PurePosixPath

from unidiff import PatchedFile, PatchSet
from unidiff.constants import DEV_NULL, LINE_TYPE_ADDED, LINE_TYPE_CONTEXT, LINE_TYPE_NO_NEWLINE, LINE_TYPE_REMOVED
from unidiff.errors import UnidiffParseError
from unidiff.patch import Hunk as UnidiffHunk

from regaudit.errors import BadInput

ENCODING = "utf-8"
ERRORS = "surrogateescape"


@dataclass(frozen=True)
class Hunk:
    """One `@@` hunk: the lines it expects (`before`: context and removed) and what replaces them."""

    number: int  # 1-based, within its file
    header: str  # '@@ -59,4 +59,3 @@'
    start: int  # 0-based index of the first `before` line in the file the hunk applies to
    before: tuple[str, ...]  # newlines kept; a last line without one is the file's unterminated end
    after: tuple[str, ...]
    reverse_start: int  # `start` of the reversed hunk

    def reversed(self) -> Hunk:
        return Hunk(self.number, self.header, self.reverse_start, self.after, self.before, self.start)


@dataclass(frozen=True)
class FileChange:
    """What a patch does to one file. `old` is None for a new file, `new` None for a deletion."""

    patch: str  # the patch it came from, for messages
    old: str | None
    new: str | None
    hunks: tuple[Hunk, ...]
    copy: bool = False  # `copy from`/`copy to`: `old` stays

    @property
    def path(self) -> str:
        return self.new or self.old or ""

    def reversed(self) -> FileChange:
        """The change undoing this one (a copy is undone by deleting the copy)."""
        return FileChange(self.patch, self.new, None if self.copy else self.old,
                          tuple(hunk.reversed() for hunk in self.hunks))


def decode(data: bytes) -> str:
    return data.decode(ENCODING, ERRORS)


def encode(text: str) -> bytes:
    return text.encode(ENCODING, ERRORS)


def parse_patch(data: bytes, name: str) -> list[FileChange]:
    """The file changes of one patch file (a unified diff or an mbox of `git format-patch` mails), in order."""
    try:
        patched = PatchSet(StringIO(decode(data)))
    except UnidiffParseError as err:
        raise BadInput(f"{name}: malformed patch: {err}".strip()) from None
    if not patched:
        raise BadInput(f"{name}: no unified diff found")
    return [_file_change(item, name) for item in patched]


def _file_change(item: PatchedFile, name: str) -> FileChange:
    old = _tree_path(item.source_file, name)
    new = _tree_path(item.target_file, name)
    shown = new or old
    if item.is_binary_file:
        raise BadInput(f"{name}: {shown}: binary diffs are not supported")
    git_header = bool(item.patch_info) and item.patch_info[0].startswith("diff --git ")
    if not item and not git_header:
        raise BadInput(f"{name}: {shown}: file header without any hunk")
    copy = any(line.startswith("copy from ") for line in item.patch_info or ())
    hunks = tuple(_hunk(number, hunk) for number, hunk in enumerate(item, start=1))
    return FileChange(name, old, new, hunks, copy)


def _tree_path(raw: str | None, name: str) -> str | None:
    """'a/kernel/x.c' -> 'kernel/x.c'; None for /dev/null. BadInput for a path that could leave the tree."""
    if raw is None or raw == DEV_NULL:
        return None
    if raw.startswith('"'):
        raise BadInput(f"{name}: {raw}: quoted (escaped) paths are not supported")
    path = PurePosixPath(raw)
    if path.is_absolute():
        raise BadInput(f"{name}: {raw}: absolute path; patches must name files inside the tree")
    parts = path.parts[1:]
    if not parts or any(part in ("..", ".") for part in parts) or "\\" in raw:
        raise BadInput(f"{name}: {raw}: path escapes the tree or names no file (expected a/<path>)")
    return "/".join(parts)


def _hunk(number: int, hunk: UnidiffHunk) -> Hunk:
    before: list[str] = []
    after: list[str] = []
    last = ""
    for line in hunk:
        kind = line.line_type
        if kind == LINE_TYPE_NO_NEWLINE:
            # '\\ No newline at end of file': the line before it ends its file(s) without a newline
            _strip_newline(before, last in (LINE_TYPE_CONTEXT, LINE_TYPE_REMOVED))
            _strip_newline(after, last in (LINE_TYPE_CONTEXT, LINE_TYPE_ADDED))
        if kind in (LINE_TYPE_CONTEXT, LINE_TYPE_REMOVED):
            before.append(line.value)
        if kind in (LINE_TYPE_CONTEXT, LINE_TYPE_ADDED):
            after.append(line.value)
        last = kind
    header = f"@@ -{hunk.source_start},{hunk.source_length} +{hunk.target_start},{hunk.target_length} @@"
    return Hunk(number, header, _start(hunk.source_start, hunk.source_length), tuple(before), tuple(after),
                _start(hunk.target_start, hunk.target_length))


def _start(line: int, length: int) -> int:
    """Unified diffs number an empty side by the line it follows, a non-empty one by its first line."""
    return line if length == 0 else line - 1


def _strip_newline(side: list[str], applies: bool) -> None:
    if applies and side:
        side[-1] = side[-1].removesuffix("\n")


def git_diff(tree: Path, revisions: str) -> bytes:
    """`git -C tree diff BASE..HEAD` as a patch, with a/ b/ prefixes whatever the user's git config says."""
    if ".." not in revisions or revisions.startswith("-"):
        raise BadInput(f"--git {revisions}: expected a range BASE..HEAD")
    _git(tree, ["rev-parse", "--git-dir"], revisions)  # outside a repository `git diff` would compare paths
    return _git(tree, ["diff", "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/",
                       revisions, "--"], revisions).stdout


def holds_head(tree: Path, revisions: str, changes: list[FileChange]) -> bool:
    """Whether the work tree `tree` already holds the HEAD side of BASE..HEAD in every file the range changes."""
    head = revisions.split("..")[-1].lstrip(".") or "HEAD"
    paths = sorted({path for change in changes for path in (change.old, change.new) if path})
    return _git(tree, ["diff", "--quiet", "--no-ext-diff", head, "--", *paths], revisions).returncode == 0


def _git(tree: Path, arguments: list[str], revisions: str) -> subprocess.CompletedProcess[bytes]:
    """Run git in `tree`; exit status 0 or 1 (differences) is an answer, anything else BadInput."""
    try:
        completed = subprocess.run(["git", "-C", str(tree), *arguments], capture_output=True, check=False)
    except OSError as err:
        raise BadInput(f"--git: cannot run git: {err.strerror}") from None
    if completed.returncode not in (0, 1):
        message = decode(completed.stderr).strip().splitlines() or [f"exit status {completed.returncode}"]
        raise BadInput(f"--git {revisions}: {message[0]}")
    return completed
