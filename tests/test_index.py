"""The index stage on small trees: validation, prefilter fixpoint, incremental reuse, bad files,
atomic publication. Real-tree acceptance is in test_index_real.py."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from db_rows import rows
from fake_tree import make_tree
from foreground import started

import regaudit.index as index_module
from regaudit.cli import main
from regaudit.errors import BadInput
from regaudit.facts.schema import SCHEMA_VERSION
from regaudit.index import index_tree

HEADER = """\
struct pt_regs { unsigned long ip; unsigned long cs; };
struct perf_regs { unsigned long abi; struct pt_regs *regs; };
struct perf_sample_data { int type; struct perf_regs regs_intr; };
"""
# Mentions neither pt_regs nor ftrace_regs: selected only through the token perf_sample_data.
CONSUMER = """\
unsigned long sample_ip(struct perf_sample_data *data)
{
	return data->regs_intr.regs->ip;
}
"""
UNRELATED = "int unrelated(int x) { return x + 1; }\n"


def tree_with(tmp_path: Path, extra: dict[str, str | bytes] | None = None) -> Path:
    files: dict[str, str | bytes] = {"include/linux/perf_event.h": HEADER, "kernel/events/consumer.c": CONSUMER,
                                     "drivers/misc/unrelated.c": UNRELATED}
    return make_tree(tmp_path / "linux", files | (extra or {}))


def test_prefilter_follows_struct_members_to_a_fixpoint(tmp_path: Path) -> None:
    tree = tree_with(tmp_path)
    result = index_tree(tree, tmp_path / "facts.db", workers=1)
    selected = dict(rows(result.db, "SELECT path, reason FROM sources WHERE selected = 1"))
    assert selected == {"include/linux/perf_event.h": "pt_regs",
                        "kernel/events/consumer.c": "struct perf_sample_data"}
    tokens = dict(rows(result.db, "SELECT token, origin FROM prefilter_tokens"))
    assert tokens["struct perf_regs"] == "struct member" and tokens["struct perf_sample_data"] == "struct member"
    assert rows(result.db, "SELECT member, access FROM accesses WHERE file = 'kernel/events/consumer.c'") == \
        [("regs_intr.regs->ip", "read")]


def test_facts_taken_over_while_the_workers_parse_are_the_facts_taken_over_at_the_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold index merges the workers' buffers every MERGE_EVERY parsed files, while they write the next: after
    every file here, against once per round. Every fact arrives once, its references intact."""
    functions = {f"kernel/f{i}.c": f"int f{i}(struct pt_regs *r) {{ return g{i}(r->ip, r); }}\n" for i in range(40)}
    tree = tree_with(tmp_path, functions)
    once = index_tree(tree, tmp_path / "once.db", workers=2).db
    monkeypatch.setattr(index_module, "MERGE_EVERY", 1)
    often = index_tree(tree, tmp_path / "often.db", workers=2).db
    facts = ("SELECT f.file, f.name, c.callee, a.position, a.expr FROM functions f "
             "JOIN calls c ON c.function_id = f.id JOIN call_args a ON a.call_id = c.id ORDER BY 1, 2, 3, 4")
    assert rows(often, facts) == rows(once, facts)
    assert len(rows(often, facts)) == 2 * 40 and rows(often, "SELECT count(*) FROM files") == [(42,)]


def selection(db: Path) -> tuple[list[tuple], list[tuple]]:
    return (rows(db, "SELECT path, selected, reason FROM sources ORDER BY path"),
            rows(db, "SELECT token, round, origin FROM prefilter_tokens ORDER BY token"))


@pytest.mark.parametrize("hints", [
    # every token the fixpoint derives: one pass over the tree instead of one per round
    {"struct perf_regs", "struct perf_sample_data"},
    # `unrelated` names a function of drivers/misc/unrelated.c that carries no pt_regs: never derived,
    # so its file is not selected; `struct perf_regs` is missing, so its round gets a pass of its own
    {"unrelated", "struct perf_sample_data"},
])
def test_hints_change_the_passes_over_the_tree_never_the_selection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hints: set[str]) -> None:
    tree = tree_with(tmp_path)
    monkeypatch.setattr(index_module, "token_hints", lambda: frozenset())
    plain = index_tree(tree, tmp_path / "plain.db", workers=1)
    monkeypatch.setattr(index_module, "token_hints", lambda: frozenset(hints))
    hinted = index_tree(tree, tmp_path / "hinted.db", workers=1)
    assert selection(hinted.db) == selection(plain.db)
    assert plain.scans == plain.rounds == 3  # seeds, then struct perf_regs, then struct perf_sample_data
    derived = {token for token, _round, _origin in selection(plain.db)[1]}
    assert hinted.scans == 1 + len(derived - hints - {"pt_regs", "ftrace_regs"})


def test_all_mode_parses_every_file(tmp_path: Path) -> None:
    result = index_tree(tree_with(tmp_path), tmp_path / "facts.db", prefilter="all", workers=1)
    assert rows(result.db, "SELECT count(*) FROM files") == [(3,)]


def test_second_run_reparses_nothing_and_one_edit_reparses_one_file(tmp_path: Path) -> None:
    tree = tree_with(tmp_path)
    db = tmp_path / "facts.db"
    first = index_tree(tree, db, workers=1)
    assert first.files_parsed == 2
    second = index_tree(tree, db, workers=1)
    assert second.unchanged and second.files_parsed == 0
    consumer = tree / "kernel/events/consumer.c"
    consumer.write_text(CONSUMER.replace("->ip", "->cs"))
    third = index_tree(tree, db, workers=1)
    assert (third.files_parsed, third.files_reused) == (1, 1)
    assert rows(db, "SELECT member FROM accesses WHERE file = 'kernel/events/consumer.c'") == [("regs_intr.regs->cs",)]
    assert rows(db, "SELECT count(*) FROM functions WHERE name = 'sample_ip'") == [(1,)], "no duplicated facts"
    assert [r[0] for r in rows(db, "SELECT stage FROM runs")] == ["index"] * 3


BUILD_FILES = {"arch/x86/Kconfig": "config X86\n\tdef_bool y\n", "kernel/events/Makefile": "obj-y += core.o\n",
               "arch/x86/kernel/ftrace_64.S": "SYM_CODE_START(ftrace_caller)\n", "MAINTAINERS": "PERF\nF:\tkernel/\n"}


@pytest.mark.parametrize("edited", sorted(BUILD_FILES))
def test_an_edited_build_file_is_a_change_of_the_tree_that_drops_links_and_audits(tmp_path: Path,
                                                                                  edited: str) -> None:
    """Later stages read Kconfig, Makefiles, assembly and MAINTAINERS as text: the index keeps their sizes and
    times, so that editing one makes the next run a changed one, which empties the derived tables."""
    tree = tree_with(tmp_path, {**BUILD_FILES, "Documentation/notes.rst": "not read\n"})
    db = tmp_path / "facts.db"
    index_tree(tree, db, workers=1)
    assert {path for (path,) in rows(db, "SELECT path FROM build_files")} == set(BUILD_FILES) | {"Makefile"}
    (tree / "Documentation/notes.rst").write_text("edited, still not read\n")
    assert index_tree(tree, db, workers=1).unchanged
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO link_arches (arch, run_id, calls, resolved_calls, edges) VALUES ('x86', 1, 0, 0, 0)")
    conn.close()
    with open(tree / edited, "a") as handle:
        handle.write("# edited\n")
    result = index_tree(tree, db, workers=1)
    assert not result.unchanged and result.files_parsed == 0
    assert rows(db, "SELECT count(*) FROM link_arches") == [(0,)]


def test_a_database_from_before_build_files_were_kept_is_indexed_again_and_migrated(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, BUILD_FILES)
    db = tmp_path / "facts.db"
    index_tree(tree, db, workers=1)
    conn = sqlite3.connect(db)  # as schema 9 left it
    conn.executescript("DROP TABLE build_files; ALTER TABLE audits DROP COLUMN code_hash; "
                       "ALTER TABLE runs DROP COLUMN arches; PRAGMA user_version = 9;")
    conn.close()
    result = index_tree(tree, db, workers=1)
    assert not result.unchanged and result.files_parsed == 0
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(db, "SELECT count(*) FROM build_files") == [(len(BUILD_FILES) + 1,)]  # and the top Makefile


def test_a_file_that_leaves_the_tree_leaves_the_database(tmp_path: Path) -> None:
    tree = tree_with(tmp_path)
    db = tmp_path / "facts.db"
    index_tree(tree, db, workers=1)
    (tree / "kernel/events/consumer.c").unlink()
    result = index_tree(tree, db, workers=1)
    assert result.files_removed == 1
    assert rows(db, "SELECT count(*) FROM functions WHERE file = 'kernel/events/consumer.c'") == [(0,)]


@pytest.mark.parametrize("layout", ["no Makefile", "no arch", "no include/linux", "no version"])
def test_a_path_that_is_not_a_kernel_tree_is_one_line_and_exit_2(tmp_path: Path, layout: str) -> None:
    tree = make_tree(tmp_path / "linux", {})
    if layout == "no Makefile":
        (tree / "Makefile").unlink()
    elif layout == "no arch":
        (tree / "arch" / "x86" / "include" / "asm").rmdir()
        (tree / "arch" / "x86" / "include").rmdir()
        (tree / "arch" / "x86").rmdir()
        (tree / "arch").rmdir()
    elif layout == "no include/linux":
        (tree / "include" / "linux").rmdir()
    else:
        (tree / "Makefile").write_text("all:\n\techo hi\n")
    with pytest.raises(BadInput):
        index_tree(tree, tmp_path / "facts.db", workers=1)
    result = CliRunner().invoke(main, ["index", str(tree), "--db", str(tmp_path / "facts.db")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("regaudit: error: ")
    assert "Traceback" not in result.output
    assert not (tmp_path / "facts.db").exists()


def test_bad_files_become_warning_rows_and_the_run_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tree_with(tmp_path, {
        "kernel/binary.c": b"\x7fELF\x00\x00 struct pt_regs",
        "kernel/latin1.c": "int f(struct pt_regs *r) { return r->ip; } /* caf\xe9 */".encode("latin-1"),
        "kernel/empty.c": "",
        "kernel/secret.c": "int g(struct pt_regs *r) { return r->cs; }\n",
    })
    os.symlink("loop.c", tree / "kernel" / "loop.c")  # a link to itself: a loop if followed
    os.symlink("..", tree / "kernel" / "up")  # a directory loop
    real_open = open

    def unreadable_secret(path: str, *args: object, **kwargs: object):
        if str(path).endswith("secret.c"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    # Root reads any file regardless of mode bits, so the permission failure is injected; the pool
    # forks after the patch, so the workers see it.
    monkeypatch.setattr(index_module, "open", unreadable_secret, raising=False)
    result = index_tree(tree, tmp_path / "facts.db", workers=2)
    warnings = dict(rows(result.db, "SELECT path, kind FROM warnings"))
    assert warnings == {"kernel/binary.c": "binary", "kernel/latin1.c": "encoding", "kernel/secret.c": "unreadable",
                        "kernel/loop.c": "symlink"}
    assert rows(result.db, "SELECT member FROM accesses WHERE file = 'kernel/latin1.c'") == [("ip",)]
    assert rows(result.db, "SELECT count(*) FROM files WHERE path = 'kernel/events/consumer.c'") == [(1,)]


def test_tokens_are_found_as_identifiers_of_bytes_whatever_the_locale(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """C identifiers are ASCII: a UTF-8 letter glued to `pt_regs` is no part of the name, though a UTF-8
    locale would make grep's -w say so. The selection must not depend on the user's locale."""
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    glued = "caf\u00e9pt_regs".encode()
    tree = tree_with(tmp_path, {"kernel/glued.c": b"/* " + glued + b" */\nint h(void) { return 0; }\n"})
    result = index_tree(tree, tmp_path / "facts.db", workers=2)
    assert rows(result.db, "SELECT count(*) FROM files WHERE path = 'kernel/glued.c'") == [(1,)]


def test_an_existing_non_regaudit_file_is_never_overwritten(tmp_path: Path) -> None:
    db = tmp_path / "precious.db"
    db.write_text("my notes, not a database\n")
    result = CliRunner().invoke(main, ["index", str(tree_with(tmp_path)), "--db", str(db)])
    assert result.exit_code == 2 and "not a regaudit database" in result.output
    assert db.read_text() == "my notes, not a database\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def large_tree_and_small_database(tmp_path: Path) -> tuple[Path, Path]:
    """A tree that takes seconds to index, and a database indexed from another (small) tree."""
    tree = tree_with(tmp_path, {f"kernel/gen{i}.c": f"int f{i}(struct pt_regs *r) {{ return r->ip + {i}; }}\n" * 300
                                for i in range(300)})
    db = tmp_path / "facts.db"
    index_tree(make_tree(tmp_path / "small", {"kernel/a.c": "int a(struct pt_regs *r) { return r->cs; }\n"}), db,
               workers=1)
    return tree, db


def index_interrupted(tree: Path, db: Path, signal_number: int) -> tuple[subprocess.Popen[str], str]:
    """`regaudit index` (two worker processes) sent `signal_number`, as a whole process group, after 1.5 s; what
    it wrote on stderr."""
    process = started("index", str(tree), "--db", str(db), "-j", "2")
    try:
        process.wait(timeout=1.5)
        pytest.fail("the index finished before it could be interrupted; make the tree larger")
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal_number)
    return process, process.communicate()[1]


def test_ctrl_c_stops_every_process_with_one_line_and_the_database_unchanged(tmp_path: Path) -> None:
    tree, db = large_tree_and_small_database(tmp_path)
    before = sha256(db)
    process, errors = index_interrupted(tree, db, signal.SIGINT)  # what a terminal sends the foreground group
    assert process.returncode == 130
    assert errors == "regaudit: interrupted; the database is unchanged\n"  # not one word from the workers
    time.sleep(0.5)
    assert subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True).stdout == b""  # no worker left
    assert sha256(db) == before


def test_a_killed_run_leaves_the_previous_database_usable(tmp_path: Path) -> None:
    tree, db = large_tree_and_small_database(tmp_path)
    before = sha256(db)
    index_interrupted(tree, db, signal.SIGKILL)
    assert sha256(db) == before
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    assert rows(db, "SELECT count(*) FROM functions WHERE name = 'a'") == [(1,)]
    index_tree(tree, db, workers=2)  # the next run cleans up after the killed one
    assert not list(tmp_path.glob(".regaudit-tmp-*"))
    # Another tree's facts are never reused: the small tree's are gone, its run stays in the history.
    assert rows(db, "SELECT count(*) FROM functions WHERE name = 'a'") == [(0,)]
    assert [r[0] for r in rows(db, "SELECT tree_path FROM runs")] == [str(tmp_path / "small"), str(tree)]
