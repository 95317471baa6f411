"""Applying a patch without touching the tree: contents are computed in memory like `git apply` (exact
context, nearest offset, patches of a series in order), refused with one line naming the file and hunk when
they do not apply, and materialised as a scratch tree whose writes never reach the user's files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fake_tree import make_tree

from regaudit.errors import BadInput
from regaudit.patch.diffs import parse_patch
from regaudit.patch.overlay import Patched, apply_changes, materialise

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


def test_the_scratch_tree_shares_untouched_files_and_never_writes_into_the_tree(tree: Path, tmp_path: Path) -> None:
    patched = apply_changes(tree, patch(two_line_hunk(5, "line 5", "line 6") + (
        "diff --git a/kernel/b.c b/kernel/b.c\ndeleted file mode 100644\n--- a/kernel/b.c\n+++ /dev/null\n"
        "@@ -1 +0,0 @@\n-int b;\n")))
    view = materialise(tree, patched, tmp_path / "view")
    assert (view / "kernel" / "a.c").read_bytes() == patched.files["kernel/a.c"]
    assert not (view / "kernel" / "b.c").exists()
    assert os.path.samefile(view / "Makefile", tree / "Makefile")
    assert (tree / "kernel" / "a.c").read_text() == SOURCE and (tree / "kernel" / "b.c").read_text() == "int b;\n"
