"""Where the lines a patch left alone moved to: a touched file's old line number → its new one.

Owns carrying a line citation of the base audit over to the patched tree, for what `regaudit check`
reuses from it (BPF helper lists, helper walks). A line the patch removed or replaced has no new number:
whatever cites it must be derived again. Lines are matched as `difflib` matches them, after the common
head and tail are set aside (a patch usually changes one region of a long file).
"""

from __future__ import annotations

from difflib import SequenceMatcher


class LineMap:
    """The new line numbers of the touched files' unchanged lines; other files' lines stay where they are."""

    def __init__(self, contents: dict[str, tuple[bytes | None, bytes | None]]) -> None:
        """`contents`: each touched file's bytes before and after the patch (None: absent)."""
        self._moved = {path: _moved_lines(_lines(old), _lines(new)) for path, (old, new) in contents.items()}

    def place(self, file: str, line: int) -> int | None:
        """Where line `line` of `file` is after the patch; None when the patch removed or replaced it."""
        moved = self._moved.get(file)
        return line if moved is None else moved.get(line)


def _lines(content: bytes | None) -> list[bytes]:
    return (content or b"").splitlines()


def _moved_lines(old: list[bytes], new: list[bytes]) -> dict[int, int]:
    """1-based old line → new line, for every line the two versions share."""
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    moved = {line: line for line in range(1, head + 1)}
    middle = SequenceMatcher(None, old[head:len(old) - tail], new[head:len(new) - tail], autojunk=False)
    for block in middle.get_matching_blocks():
        moved.update((head + block.a + i + 1, head + block.b + i + 1) for i in range(block.size))
    moved.update((len(old) - i, len(new) - i) for i in range(tail))
    return moved
