"""FactStore publishes a working copy renamed over the target, so the previous database is never written; a
database inside `disposable_databases` (regaudit check's scratch copy, removed with its directory) is written in
place, without the copy and the fsyncs that make a kept one survive a crash. Facts reach it through FactBuffers,
one per writing process, whose rows it takes over with their ids renumbered. `amended` adds rows in one transaction
on the database itself: all or nothing, even when its process is killed."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from regaudit.facts.store import FactBuffer, FactStore, amended, disposable_databases, open_existing
from regaudit.parse.extract import extract_file
from regaudit.parse.prepare import load_dialect


def write_warning(target: Path) -> None:
    with FactStore(target) as store:
        store.add_warning("kernel/a.c", "encoding", "not UTF-8")


def test_a_kept_database_is_replaced_by_a_new_file(tmp_path: Path) -> None:
    target = tmp_path / "facts.db"
    write_warning(target)
    inode = target.stat().st_ino
    write_warning(target)
    assert target.stat().st_ino != inode  # renamed over: the previous file was never written
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".regaudit-lock")) == ["facts.db"]


def test_a_disposable_database_is_written_in_place_without_fsync(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    scratch = tmp_path / "scratch"
    target = scratch / "facts.db"
    write_warning(target)
    inode, synced[:] = target.stat().st_ino, []
    with disposable_databases(scratch):
        write_warning(target)  # regaudit check's scratch copy
    assert target.stat().st_ino == inode and synced == []
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM warnings").fetchone() == (2,)
    with disposable_databases(scratch):
        write_warning(tmp_path / "kept.db")  # outside the scratch directory: a working copy, durable
    assert len(synced) == 2  # the database file and its directory


def c_file(name: str) -> bytes:
    """A file whose every fact points at the function `name` or at its call: a wrong id shows as a foreign name."""
    return f"""\
struct {name}_s {{ int {name}_member; }};
int {name}(struct pt_regs *{name}_regs, int {name}_n)
{{
	return {name}_callee({name}_regs->{name}_member, {name}_n);
}}
""".encode()


def test_facts_of_several_buffers_keep_their_references_when_merged(tmp_path: Path) -> None:
    dialect = load_dialect(Path("/nonexistent"))
    target = tmp_path / "facts.db"
    with FactStore(target) as store:
        spec = store.buffers
        first, second = (FactBuffer(Path(f"{spec.prefix}{n}"), spec.tables) for n in (1, 2))
        for buffer, names in ((first, ("alpha", "beta")), (second, ("gamma",))):
            for name in names:
                buffer.add(extract_file(f"kernel/{name}.c", c_file(name), dialect), "sha", 0, "generic")
        store.merge_buffers()
        second.add(extract_file("kernel/delta.c", c_file("delta"), dialect), "sha", 0, "generic")
        store.merge_buffers()  # a second merge: ids go on after the first's
        first.close()
        second.close()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".regaudit-lock")) == ["facts.db"]
    names = ["alpha", "beta", "gamma", "delta"]
    assert rows(target, "SELECT f.name, p.name FROM params p JOIN functions f ON f.id = p.function_id "
                        "WHERE p.position = 0") == {(n, f"{n}_regs") for n in names}
    assert rows(target, "SELECT f.name, c.callee FROM calls c JOIN functions f ON f.id = c.function_id") \
        == {(n, f"{n}_callee") for n in names}
    assert rows(target, "SELECT c.callee, a.expr FROM call_args a JOIN calls c ON c.id = a.call_id "
                        "WHERE a.position = 1") == {(f"{n}_callee", f"{n}_n") for n in names}
    assert rows(target, "SELECT s.name, m.name FROM struct_members m JOIN structs s ON s.id = m.struct_id") \
        == {(f"{n}_s", f"{n}_member") for n in names}
    assert rows(target, "SELECT path FROM files") == {(f"kernel/{n}.c",) for n in names}


def rows(db: Path, sql: str) -> set[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return set(conn.execute(sql))


def warnings_in(target: Path) -> int:
    return open_existing(target).conn.execute("SELECT count(*) FROM warnings").fetchone()[0]


def test_an_amendment_that_fails_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "facts.db"
    write_warning(target)
    with pytest.raises(RuntimeError), amended(target) as conn:
        conn.execute("INSERT INTO warnings (path, kind, message) VALUES ('b.c', 'encoding', 'x')")
        raise RuntimeError("the audit failed")
    assert warnings_in(target) == 1
    with amended(target) as conn:  # and the lock was let go
        conn.execute("INSERT INTO warnings (path, kind, message) VALUES ('b.c', 'encoding', 'x')")
    assert warnings_in(target) == 2


def test_an_amendment_killed_midway_is_rolled_back_before_anything_reads_or_copies_the_database(
        tmp_path: Path) -> None:
    target = tmp_path / "facts.db"
    write_warning(target)
    killed = subprocess.run([sys.executable, "-c", f"""
import os
from pathlib import Path
from regaudit.facts.store import amended
with amended(Path({str(target)!r})) as conn:
    conn.execute("PRAGMA cache_size = 1")  # the rows reach the database file before the commit
    conn.executemany("INSERT INTO warnings (path, kind, message) VALUES (?, 'encoding', 'x')",
                     [(f"f{{n}}.c",) for n in range(20000)])
    os._exit(9)
"""], check=False)
    assert killed.returncode == 9
    assert Path(f"{target}-journal").exists()  # a hot journal: the transaction is half in the file
    copy_source = tmp_path / "copy.db"
    shutil.copyfile(target, copy_source)
    shutil.copyfile(f"{target}-journal", f"{copy_source}-journal")
    assert warnings_in(target) == 1  # a reader sees the database as it was
    with FactStore(copy_source) as store:  # and so does a copy a FactStore makes
        assert store.conn.execute("SELECT count(*) FROM warnings").fetchone()[0] == 1
