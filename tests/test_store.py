"""FactStore's two ways of writing: a working copy renamed over the target (a database the user keeps), or in
place for a database inside `disposable_databases` (regaudit check's scratch copy, removed with its directory)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from regaudit.facts.store import FactStore, disposable_databases


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


def test_a_disposable_database_is_written_in_place(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    target = scratch / "facts.db"
    write_warning(target)
    inode = target.stat().st_ino
    with disposable_databases(scratch):
        write_warning(target)
    assert target.stat().st_ino == inode
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM warnings").fetchone() == (2,)
    elsewhere = tmp_path / "kept.db"
    write_warning(elsewhere)
    kept_inode = elsewhere.stat().st_ino
    with disposable_databases(scratch):
        write_warning(elsewhere)  # outside the scratch directory: still a working copy
    assert elsewhere.stat().st_ino != kept_inode
