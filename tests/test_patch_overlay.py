"""Applying a patch without touching the tree: contents are computed in memory like `git apply` (exact
context, nearest offset, patches of a series in order), refused with one line naming the file and hunk when
they do not apply, and materialised as a sparse scratch view (real directories on the way to the touched files,
links to everything else) whose writes never reach the user's files and which the tree's readers walk like the
tree itself."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from fake_tree import make_tree

from regaudit.errors import BadInput
from regaudit.patch.diffs import parse_patch
from regaudit.patch.overlay import Patched, apply_changes, materialise
from regaudit.tree import files_below

SOURCE = "".join(f"line {n}\n" for n in range(1, 21))


def patch(text: str) -> list:
    return parse_patch(text.encode(), "p.patch")


def two_line_hunk(start: int, old: str, new: str) -> str:
    return f"--- a/kernel/a.c\n+++ b/kernel/a.c\n@@ -{start},2 +{start},2 @@\n {old}\n-{new}\n+changed\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "linux", {"kernel/a.c": SOURCE, "kernel/b.c": "int b;\n"})


def test_a_hunk_applies_at_its_line_or_the_nearest_offset(tree: Path) -> None:
    at_line = apply_changes(tree, patch(two_line_hunk(5, "line 5", "line 6")))
    shifted = apply_changes(tree, patch(two_line_hunk(2, "line 5", "line 6")))
    expected = SOURCE.replace("line 6\n", "changed\n").encode()
    assert at_line.files["kernel/a.c"] == shifted.files["kernel/a.c"] == expected
    assert at_line.removed == ()


def test_a_hunk_that_does_not_apply_names_the_file_and_the_hunk(tree: Path) -> None:
    with pytest.raises(BadInput, match=r"^p.patch: kernel/a.c: hunk #1 \(@@ -5,2 \+5,2 @@\) does not apply$"):
        apply_changes(tree, patch(two_line_hunk(5, "line 5", "line 7")))


def test_patches_of_a_series_apply_in_order(tree: Path) -> None:
    first = patch(two_line_hunk(5, "line 5", "line 6"))
    second = patch(two_line_hunk(5, "line 5", "changed").replace("+changed", "+again"))
    patched = apply_changes(tree, first + second)
    assert b"line 5\nagain\nline 7\n" in patched.files["kernel/a.c"]


def test_new_deleted_and_renamed_files(tree: Path) -> None:
    patched = apply_changes(tree, patch(
        "diff --git a/kernel/n.c b/kernel/n.c\nnew file mode 100644\n--- /dev/null\n+++ b/kernel/n.c\n"
        "@@ -0,0 +1 @@\n+int n;\n"
        "diff --git a/kernel/b.c b/kernel/b.c\ndeleted file mode 100644\n--- a/kernel/b.c\n+++ /dev/null\n"
        "@@ -1 +0,0 @@\n-int b;\n"
        "diff --git a/kernel/a.c b/kernel/z.c\nsimilarity index 100%\nrename from kernel/a.c\nrename to kernel/z.c\n"))
    assert patched.files == {"kernel/n.c": b"int n;\n", "kernel/z.c": SOURCE.encode()}
    assert patched.removed == ("kernel/a.c", "kernel/b.c")


def test_a_copy_keeps_its_source_and_is_undone_by_deleting_it(tree: Path) -> None:
    [copy] = patch("diff --git a/kernel/b.c b/kernel/c.c\nsimilarity index 100%\ncopy from kernel/b.c\n"
                   "copy to kernel/c.c\n")
    assert apply_changes(tree, [copy]) == Patched({"kernel/c.c": b"int b;\n"}, ())
    assert apply_changes(tree, [copy, copy.reversed()]) == Patched({}, ())


@pytest.mark.parametrize(("text", "message"), [
    ("--- a/kernel/none.c\n+++ b/kernel/none.c\n@@ -1 +1 @@\n-a\n+b\n", "p.patch: kernel/none.c: no such file"),
    ("diff --git a/kernel/b.c b/kernel/b.c\nnew file mode 100644\n--- /dev/null\n+++ b/kernel/b.c\n@@ -0,0 +1 @@\n+x\n",
     "p.patch: kernel/b.c: already exists"),
    ("--- a/out/x.c\n+++ b/out/x.c\n@@ -1 +1 @@\n-a\n+b\n", "out/x.c: out is a symbolic link"),
])
def test_missing_existing_and_symlinked_targets_are_refused(tree: Path, text: str, message: str) -> None:
    (tree / "out").symlink_to(tree.parent)
    with pytest.raises(BadInput, match=f"^{message}"):
        apply_changes(tree, patch(text))


def entries(root: Path) -> dict[str, str]:
    """Every entry below `root`, links not followed: 'dir', 'file' or the link's target."""
    found = {}
    for directory, directories, files in os.walk(root):
        for name in directories + files:
            path = Path(directory, name)
            kind = os.readlink(path) if path.is_symlink() else "dir" if path.is_dir() else "file"
            found[path.relative_to(root).as_posix()] = kind
    return found


def state(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Inode, size, mtime and content of every file below `root`."""
    stats = {path: os.lstat(root / path) for path, kind in entries(root).items() if kind == "file"}
    return {path: (stat.st_ino, stat.st_size, stat.st_mtime_ns, (root / path).read_bytes())
            for path, stat in stats.items()}


def test_the_scratch_view_links_untouched_entries_at_the_highest_level_and_writes_touched_files_anew(
        tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux", {"kernel/a.c": SOURCE, "kernel/b.c": "int b;\n", "kernel/c.c": "int c;\n",
                                          "kernel/trace/t.c": "int t;\n", "drivers/gpio/g.c": "int g;\n",
                                          ".git/HEAD": "ref: refs/heads/master\n"})
    before = state(tree)
    patched = apply_changes(tree, patch(two_line_hunk(5, "line 5", "line 6") + (
        "diff --git a/kernel/b.c b/kernel/b.c\ndeleted file mode 100644\n--- a/kernel/b.c\n+++ /dev/null\n"
        "@@ -1 +0,0 @@\n-int b;\n"
        "diff --git a/drivers/new/n.c b/drivers/new/n.c\nnew file mode 100644\n--- /dev/null\n+++ b/drivers/new/n.c\n"
        "@@ -0,0 +1 @@\n+int n;\n")))
    view = materialise(tree, patched, tmp_path / "view")
    assert entries(view) == {
        "Makefile": str(tree / "Makefile"), "arch": str(tree / "arch"), "include": str(tree / "include"),
        "kernel": "dir", "kernel/a.c": "file", "kernel/c.c": str(tree / "kernel/c.c"),
        "kernel/trace": str(tree / "kernel/trace"),
        "drivers": "dir", "drivers/gpio": str(tree / "drivers/gpio"), "drivers/new": "dir", "drivers/new/n.c": "file"}
    assert (view / "kernel" / "a.c").read_bytes() == patched.files["kernel/a.c"]
    assert (view / "drivers" / "new" / "n.c").read_text() == "int n;\n"
    assert (view / "kernel" / "trace" / "t.c").read_text() == "int t;\n"
    assert [path.relative_to(view).as_posix() for path in files_below(view, "*.c")] == [
        "drivers/gpio/g.c", "drivers/new/n.c", "kernel/a.c", "kernel/c.c", "kernel/trace/t.c"]
    assert state(tree) == before
    shutil.rmtree(view)
    assert state(tree) == before


def test_a_file_replaced_by_a_directory_is_a_directory_in_the_view(tree: Path, tmp_path: Path) -> None:
    patched = apply_changes(tree, patch(
        "diff --git a/kernel/b.c b/kernel/b.c\ndeleted file mode 100644\n--- a/kernel/b.c\n+++ /dev/null\n"
        "@@ -1 +0,0 @@\n-int b;\n"
        "diff --git a/kernel/b.c/x.c b/kernel/b.c/x.c\nnew file mode 100644\n--- /dev/null\n+++ b/kernel/b.c/x.c\n"
        "@@ -0,0 +1 @@\n+int x;\n"))
    view = materialise(tree, patched, tmp_path / "view")
    assert (view / "kernel" / "b.c" / "x.c").read_text() == "int x;\n"
    assert (tree / "kernel" / "b.c").read_text() == "int b;\n"


def test_the_walk_follows_links_to_directories_and_stops_at_a_loop(tree: Path) -> None:
    (tree / "arch" / "x86" / "include" / "asm" / "ptrace.h").write_text("\n")
    (tree / "kernel" / "asm").symlink_to(tree / "arch" / "x86" / "include" / "asm")
    (tree / "arch" / "x86" / "include" / "asm" / "loop").symlink_to(tree / "arch")
    (tree / "kernel" / "gone.h").symlink_to(tree / "nowhere.h")
    assert [path.relative_to(tree).as_posix() for path in files_below(tree, "*.h")] == [
        "arch/x86/include/asm/ptrace.h", "kernel/asm/ptrace.h"]
    assert files_below(tree / "kernel" / "asm", "*.h") == [tree / "kernel" / "asm" / "ptrace.h"]
    assert files_below(tree / "none", "*.h") == []
