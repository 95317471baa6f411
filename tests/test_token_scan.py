"""token_scan: where a file first names each prefilter token, as a whole identifier of bytes. Both matchers
(Hyperscan, GNU grep) must give the same answer: the annotated files below say which, and on the real 7.3
tree the two agree on every file of kernel/, include/, arch/x86/ and arch/arm64/."""

from __future__ import annotations

import platform
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_tree import make_tree
from kernel_trees import indexed_db, kernel_tree

from regaudit import token_scan
from regaudit.cli import main
from regaudit.token_scan import UNREADABLE, first_occurrences, names_a_token

MATCHERS = ["grep", *(["hyperscan"] if token_scan._hyperscan() is not None else [])]
TOKENS = ("pt_regs", "struct pt_regs", "struct perf_regs", "perf_regs", "task_pt_regs", "struct frame")

# file -> (content, {token: offset of its first whole-word occurrence})
FILES: dict[str, tuple[bytes, dict[str, int]]] = {
    # `struct pt_regs` at 0 holds the token pt_regs at 7, before the bare one at 26
    "kernel/a.c": (b"struct pt_regs *r; int x; pt_regs y;", {"struct pt_regs": 0, "pt_regs": 7}),
    # glued to letters, digits or `_` on either side a token is part of another identifier
    "kernel/b.c": (b"user_pt_regs pt_regs2 task_pt_regs_plus_args xpt_regs", {}),
    # ...but not when glued to a non-ASCII byte: C identifiers are ASCII ("caf\xc3\xa9pt_regs")
    "kernel/c.c": ("/* caf\u00e9pt_regs */ task_pt_regs(t)".encode(), {"pt_regs": 8, "task_pt_regs": 19}),
    # a tag token needs its keyword and one blank; `struct frame_record` is another tag
    "kernel/d.c": (b"struct  pt_regs; struct frame_record f; struct frame *fp;",
                   {"pt_regs": 8, "struct frame": 40}),
    # only the first of several occurrences counts; a NUL byte does not stop the read
    "kernel/e.c": (b"\0perf_regs; struct perf_regs; perf_regs", {"perf_regs": 1, "struct perf_regs": 12}),
    "kernel/none.c": (b"int unrelated(void) { return 0; }\n", {}),
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for path, (content, _expected) in FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(content)
    (tmp_path / "kernel" / "dir.c").mkdir()  # a path that cannot be read as a file
    return tmp_path


@pytest.mark.parametrize("using", MATCHERS)
def test_each_token_is_found_at_its_first_whole_word_occurrence(tree: Path, using: str) -> None:
    found = first_occurrences(str(tree), [*FILES, "kernel/dir.c"], TOKENS, using)
    expected = {(path, token, offset) for path, (_content, first) in FILES.items() for token, offset in first.items()}
    assert set(found) == expected | {("kernel/dir.c", UNREADABLE, -1)}
    assert len(found) == len(set(found))


def test_bytes_in_memory_name_a_token_where_a_file_would() -> None:
    """What `regaudit check` asks of a patched file's new content, which is on no disk."""
    assert {path for path, (content, _first) in FILES.items() if names_a_token(content, TOKENS)} == \
        {path for path, (_content, first) in FILES.items() if first}
    assert not names_a_token(FILES["kernel/a.c"][0], ())


@pytest.mark.parametrize("using", MATCHERS)
def test_no_paths_or_no_tokens_read_nothing(tree: Path, using: str) -> None:
    assert first_occurrences(str(tree), [], TOKENS, using) == []
    assert first_occurrences(str(tree), list(FILES), (), using) == []


def test_grep_is_the_matcher_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(token_scan.MATCHER_VARIABLE, "grep")
    assert token_scan.matcher() == "grep"


def test_an_unknown_matcher_is_one_line_of_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(token_scan.MATCHER_VARIABLE, "ripgrep")
    result = CliRunner().invoke(main, ["index", str(make_tree(tmp_path / "linux", {"kernel/a.c": "int a;\n"})),
                                       "--db", str(tmp_path / "facts.db")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].endswith("REGAUDIT_MATCHER=ripgrep: the token matcher is 'grep' or "
                                                            "'hyperscan'")
    assert not (tmp_path / "facts.db").exists()


def test_hyperscan_is_installed_where_its_wheel_exists() -> None:
    """pyproject.toml asks for it on x86-64, where the ~5x faster scan is measured (bench/index_bench.py)."""
    if platform.machine() in ("x86_64", "AMD64"):
        assert token_scan.matcher() == "hyperscan"
    else:
        assert token_scan.matcher() == "grep"


def test_both_matchers_agree_on_a_real_tree() -> None:
    tree = kernel_tree("7.3")
    conn = sqlite3.connect(indexed_db("7.3"))
    tokens = tuple(sorted(token for (token,) in conn.execute("SELECT token FROM prefilter_tokens")))
    conn.close()
    paths = sorted(str(path.relative_to(tree)) for top in ("kernel", "arch/x86", "arch/arm64", "include")
                   for path in (tree / top).rglob("*.[ch]") if path.is_file() and not path.is_symlink())
    results = {using: set(first_occurrences(str(tree), paths, tokens, using)) for using in MATCHERS}
    assert len(paths) > 3000 and len(results["grep"]) > 500
    assert results["grep"] == results.get("hyperscan", results["grep"])
    assert ("kernel/trace/bpf_trace.c", "pt_regs") in {(path, token) for path, token, _ in results["grep"]}
