"""FactStore publishes a working copy renamed over the target, so the previous database is never written; a
database inside `disposable_databases` (regaudit check's scratch copy, removed with its directory) is written in
place, without the copy and the fsyncs that make a kept one survive a crash."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

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
