"""`regaudit check`'s usage errors: one line on stderr, exit 2, and no database created, because patches
are read and applied before the tree's database is opened."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_tree import make_tree

from regaudit.cli import main

PATCH = "--- a/kernel/a.c\n+++ b/kernel/a.c\n@@ -1 +1 @@\n-int a;\n+int b;\n"


@pytest.mark.parametrize(("arguments", "stdin", "message"), [
    ([], None, "give either PATCH... or --git BASE..HEAD"),
    (["p.patch", "--git", "a..b"], None, "give either PATCH... or --git BASE..HEAD"),
    (["missing.patch"], None, "missing.patch: cannot read: No such file or directory"),
    (["-"], "not a diff\n", "-: no unified diff found"),
    (["-"], PATCH.replace("int a;", "int z;"), "-: kernel/a.c: hunk #1 (@@ -1,1 +1,1 @@) does not apply"),
    (["--git", "main"], None, "--git main: expected a range BASE..HEAD"),
    (["--git", "a..b"], None, "--git a..b: fatal: not a git repository"),
    (["p.patch", "--arch", "vax"], None, "no frame rules or no arch/ directory for vax"),
])
def test_usage_errors_are_one_line_exit_2_and_create_no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 arguments: list[str], stdin: str | None,
                                                                 message: str) -> None:
    tree = make_tree(tmp_path / "linux", {"kernel/a.c": "int a;\n"})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    (tmp_path / "p.patch").write_text(PATCH)
    db = tmp_path / "linux.db"
    result = CliRunner().invoke(main, ["check", *arguments, "--tree", str(tree), "--db", str(db)], input=stdin)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"regaudit: error: {message}") and result.stderr.count("\n") == 1
    assert not db.exists()
