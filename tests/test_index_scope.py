"""The index's arch scope: an index of some arches holds generic code and the C files of those arches'
arch/ directories only, grows when more are asked for, never shrinks, and later stages refuse an arch it
does not hold. Real-tree proof (an x86 audit of 7.3 from a scoped index) is in test_audit_cli_real.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from db_rows import rows
from fake_tree import make_tree

from regaudit.arch.producers import build_frame_models
from regaudit.cli import main
from regaudit.errors import BadInput
from regaudit.facts.schema import SCHEMA_VERSION
from regaudit.flow.link import link_database
from regaudit.index import index_tree

# Each arch's own pt_regs user: selected by the seed token, so only the scope decides whether it is indexed.
FILES = {
    "arch/x86/Kconfig": "config X86\n\tdef_bool y\n",
    "arch/arm64/Kconfig": "config ARM64\n\tdef_bool y\n",
    "arch/mips/Kconfig": "config MIPS\n\tdef_bool y\n",
    "arch/x86/kernel/ptrace.c": "unsigned long x86_ip(struct pt_regs *regs) { return regs->ip; }\n",
    "arch/arm64/kernel/ptrace.c": "unsigned long arm64_pc(struct pt_regs *regs) { return regs->pc; }\n",
    "arch/mips/kernel/ptrace.c": "unsigned long mips_epc(struct pt_regs *regs) { return regs->cp0_epc; }\n",
    "arch/arm64/include/asm/ptrace.h": "#define PSR_I_BIT 0x00000080\n",
    "kernel/events/core.c": "unsigned long perf_ip(struct pt_regs *regs) { return instruction_pointer(regs); }\n",
}


def indexed_files(db: Path) -> list[str]:
    return [path for (path,) in rows(db, "SELECT path FROM files ORDER BY path")]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "linux", FILES)


def test_an_index_of_one_arch_holds_generic_code_and_that_arch_only(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "facts.db"
    result = index_tree(tree, db, arches=["x86"], workers=1)
    assert result.arches == ("x86",)
    assert indexed_files(db) == ["arch/x86/kernel/ptrace.c", "kernel/events/core.c"]
    # other arches' C files are not even looked at, nor their headers' text facts
    assert rows(db, "SELECT count(*) FROM sources WHERE path LIKE 'arch/arm64/%' OR path LIKE 'arch/mips/%'") == [(0,)]
    assert rows(db, "SELECT count(*) FROM header_defines WHERE arch = 'arm64'") == [(0,)]
    # but their build files are, which every arch's link reads (other arches' Kconfig symbols)
    assert ("arch/arm64/Kconfig",) in rows(db, "SELECT path FROM build_files")
    assert rows(db, "SELECT arches FROM runs WHERE stage = 'index'") == [('["x86"]',)]


def test_asking_for_another_arch_adds_its_files_and_keeps_the_ones_held(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "facts.db"
    index_tree(tree, db, arches=["x86"], workers=1)
    result = index_tree(tree, db, arches=["arm64"], workers=1)
    assert result.arches == ("arm64", "x86")
    assert result.files_parsed == 1 and result.files_reused == 2  # arm64's; x86's and generic code kept
    assert indexed_files(db) == ["arch/arm64/kernel/ptrace.c", "arch/x86/kernel/ptrace.c", "kernel/events/core.c"]
    assert rows(db, "SELECT name FROM header_defines WHERE arch = 'arm64'") == [("PSR_I_BIT",)]


def test_asking_for_arches_an_index_holds_is_a_warm_run(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "facts.db"
    index_tree(tree, db, workers=1)  # every arch
    result = index_tree(tree, db, arches=["x86"], workers=1)
    assert result.unchanged and result.arches is None
    assert "arch/mips/kernel/ptrace.c" in indexed_files(db)
    assert index_tree(tree, db, arches=["x86"], workers=1).unchanged


def test_an_arch_the_tree_lacks_is_refused_before_the_database_is_touched(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "facts.db"
    with pytest.raises(BadInput, match=r"no arch sparc \(it has arm64, mips, x86\)"):
        index_tree(tree, db, arches=["x86", "sparc"], workers=1)
    assert not db.exists()


def test_link_and_frames_refuse_an_arch_the_index_does_not_hold(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "facts.db"
    index_tree(tree, db, arches=["x86"], workers=1)
    message = r"indexed without the C files of arm64 \(it holds generic code and x86\); add them with " \
              r"`regaudit index --arch arm64`"
    with pytest.raises(BadInput, match=message):
        link_database(db, tree, ["arm64", "x86"])
    assert rows(db, "SELECT count(*) FROM runs WHERE stage = 'link'") == [(0,)]
    with pytest.raises(BadInput, match=message):
        build_frame_models(tree, db, ["arm64"])


def test_the_index_command_takes_an_arch_list(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "facts.db"
    result = CliRunner().invoke(main, ["index", str(tree), "--db", str(db), "--arch", "arm64, mips", "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "arches: arm64, mips (and generic code; `--arch` adds more)" in result.output.splitlines()
    assert rows(db, "SELECT arches FROM runs WHERE stage = 'index'") == [('["arm64", "mips"]',)]
    assert "arch/x86/kernel/ptrace.c" not in indexed_files(db)
    # an --arch naming no arch keeps the default: every arch
    every = CliRunner().invoke(main, ["index", str(tree), "--db", str(db), "--arch", ",", "-j", "1"])
    assert "arches: every arch/ directory" in every.output.splitlines()
    assert "arch/x86/kernel/ptrace.c" in indexed_files(db)


def test_a_database_from_before_the_scope_was_kept_held_every_arch_and_is_migrated(tree: Path, tmp_path: Path) -> None:
    db = tmp_path / "facts.db"
    index_tree(tree, db, workers=1)
    conn = sqlite3.connect(db)  # as schema 10 left it
    conn.executescript("ALTER TABLE runs DROP COLUMN arches; PRAGMA user_version = 10;")
    conn.close()
    result = index_tree(tree, db, arches=["x86"], workers=1)
    assert result.arches is None  # what it held: every arch
    assert not result.unchanged and result.files_parsed == 0  # a changed run, which migrates it
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert "arch/mips/kernel/ptrace.c" in indexed_files(db)
