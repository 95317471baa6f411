"""`index_overlay`: a copy of a tree's database re-indexed for a patch's files only — their facts replaced,
deleted files forgotten, files the prefilter would not select left out, the run recorded so the edges it keeps
are no longer current — while the original database stays byte for byte as it was."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

from fake_tree import make_tree

from regaudit.facts.link_facts import current_links
from regaudit.flow.link import link_database
from regaudit.index import index_overlay, index_tree

FILES = {
    "kernel/a.c": "int a(struct pt_regs *r) { return r->cs; }\n",
    "kernel/b.c": "int b(struct pt_regs *r) { return r->ip; }\n",
    "drivers/misc/x.c": "int x(int v) { return v; }\n",
    "arch/x86/Kconfig": "config X86\n\tdef_bool y\n",
}


def members(db: Path) -> dict[str, set[str]]:
    conn = sqlite3.connect(db)
    found: dict[str, set[str]] = {}
    for file, member in conn.execute("SELECT file, member FROM accesses"):
        found.setdefault(file, set()).add(member)
    conn.close()
    return found


def rows(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    conn.close()
    return count


def test_only_the_given_files_are_reindexed_into_the_copy(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux", FILES)
    base = tmp_path / "base.db"
    index_tree(tree, base)
    link_database(base, tree, ["x86"])
    before = hashlib.sha256(base.read_bytes()).hexdigest()
    copy = tmp_path / "copy.db"
    shutil.copyfile(base, copy)
    result = index_overlay(tree, copy, {
        "kernel/a.c": b"int a(struct pt_regs *r) { return r->sp; }\n",  # indexed: facts replaced
        "drivers/misc/x.c": b"int x(int v) { return v + 1; }\n",  # names no token: still not indexed
        "drivers/misc/y.c": b"int y(struct pt_regs *r) { return r->bx; }\n",  # new, names pt_regs
        "arch/x86/Kconfig": b"config X86\n\tdef_bool n\n",  # not C: never indexed
    }, removed=["kernel/b.c"])
    assert members(copy) == {"kernel/a.c": {"sp"}, "drivers/misc/y.c": {"bx"}}
    assert (result.files_parsed, result.files_removed) == (2, 1)
    assert rows(base, "link_arches") == rows(copy, "link_arches") == 1
    with sqlite3.connect(copy) as conn:
        assert current_links(conn) == []
    assert result.changes is not None
    assert result.changes.touched == {"kernel/a.c", "drivers/misc/x.c", "drivers/misc/y.c", "arch/x86/Kconfig",
                                      "kernel/b.c"}
    assert result.changes.before.names == {"a", "b"}
    assert hashlib.sha256(base.read_bytes()).hexdigest() == before


def test_a_file_of_an_arch_the_index_does_not_hold_stays_out(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux", {**FILES, "arch/mips/Kconfig": "config MIPS\n\tdef_bool y\n"})
    db = tmp_path / "facts.db"
    index_tree(tree, db, arches=["x86"])
    result = index_overlay(tree, db, {
        "arch/mips/kernel/m.c": b"int m(struct pt_regs *r) { return r->cp0_epc; }\n",  # names pt_regs, out of scope
        "arch/mips/include/asm/m.h": b"#define MIPS_MASK 0x1f\n",
        "arch/x86/kernel/k.c": b"int k(struct pt_regs *r) { return r->flags; }\n",
    }, removed=[])
    assert set(members(db)) == {"kernel/a.c", "kernel/b.c", "arch/x86/kernel/k.c"}
    assert result.files_parsed == 1 and rows(db, "header_defines") == 0
    assert result.arches == ("x86",)
