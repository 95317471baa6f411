"""Reading patches: git diffs and format-patch mails become per-file changes with tree-relative paths;
anything `regaudit check` cannot apply safely is refused with one line naming the patch."""

from __future__ import annotations

import pytest

from regaudit.errors import BadInput
from regaudit.patch.diffs import parse_patch

MODIFY = b"""diff --git a/kernel/a.c b/kernel/a.c
index 1111111..2222222 100644
--- a/kernel/a.c
+++ b/kernel/a.c
@@ -1,3 +1,3 @@
 int f(struct pt_regs *r)
-{ return r->cs; }
+{ return r->ip; }
 /* end */
"""

MAIL = b"""From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001
From: A Developer <dev@example.org>
Date: Wed, 25 Nov 2026 10:00:00 +0000
Subject: [PATCH] kernel: read ip, not cs

The line below looks like a diff header but is prose.
---
 kernel/a.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

""" + MODIFY + b"""--
2.43.0

"""


def test_a_git_diff_names_tree_relative_paths_and_its_hunk_lines() -> None:
    [change] = parse_patch(MODIFY, "p.patch")
    assert (change.old, change.new) == ("kernel/a.c", "kernel/a.c")
    [hunk] = change.hunks
    assert hunk.start == 0
    assert hunk.before == ("int f(struct pt_regs *r)\n", "{ return r->cs; }\n", "/* end */\n")
    assert hunk.after == ("int f(struct pt_regs *r)\n", "{ return r->ip; }\n", "/* end */\n")


def test_a_format_patch_mail_is_read_like_its_diff() -> None:
    assert parse_patch(MAIL, "0001.patch") == parse_patch(MODIFY, "0001.patch")


def test_a_missing_newline_at_the_end_is_kept_on_the_right_side() -> None:
    patch = b"""--- a/kernel/a.c
+++ b/kernel/a.c
@@ -1 +1 @@
-old
\\ No newline at end of file
+new
"""
    [change] = parse_patch(patch, "p")
    assert (change.hunks[0].before, change.hunks[0].after) == (("old",), ("new\n",))


def test_new_deleted_and_renamed_files() -> None:
    patch = b"""diff --git a/kernel/new.c b/kernel/new.c
new file mode 100644
--- /dev/null
+++ b/kernel/new.c
@@ -0,0 +1 @@
+int x;
diff --git a/kernel/gone.c b/kernel/gone.c
deleted file mode 100644
--- a/kernel/gone.c
+++ /dev/null
@@ -1 +0,0 @@
-int y;
diff --git a/kernel/old.c b/kernel/moved.c
similarity index 100%
rename from kernel/old.c
rename to kernel/moved.c
"""
    changes = parse_patch(patch, "p")
    assert [(c.old, c.new, len(c.hunks)) for c in changes] == [
        (None, "kernel/new.c", 1), ("kernel/gone.c", None, 1), ("kernel/old.c", "kernel/moved.c", 0)]
    assert changes[0].reversed().new is None and changes[1].reversed().old is None


def test_reversing_a_change_swaps_its_sides() -> None:
    [change] = parse_patch(MODIFY, "p")
    reverse = change.reversed().hunks[0]
    assert (reverse.before, reverse.after) == (change.hunks[0].after, change.hunks[0].before)


@pytest.mark.parametrize(("patch", "message"), [
    (b"just some text\n", "p: no unified diff found"),
    (MODIFY.replace(b"@@ -1,3 +1,3 @@", b"@@ -1,5 +1,5 @@"), "p: malformed patch: Hunk is shorter than expected"),
    (MODIFY.replace(b" /* end */", b"?/* end */"), "p: malformed patch: Hunk diff line expected: ?/* end */"),
    (b"diff --git a/fw.bin b/fw.bin\nBinary files a/fw.bin and b/fw.bin differ\n",
     "p: fw.bin: binary diffs are not supported"),
    (MODIFY.replace(b"b/kernel/a.c\n", b"b/../../etc/passwd\n").replace(b"a/kernel/a.c\n", b"a/../../etc/passwd\n"),
     "p: b/../../etc/passwd: path escapes the tree"),
    (b"--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n", "p: /etc/passwd: absolute path"),
    (b"--- a/kernel/a.c\n+++ b/kernel/a.c\n", "p: kernel/a.c: file header without any hunk"),
])
def test_unusable_patches_are_refused_with_one_line(patch: bytes, message: str) -> None:
    with pytest.raises(BadInput) as error:
        parse_patch(patch, "p")
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
