"""The text facts of Linux 7.3.4's index against a grep of the tree, the way the audit read them before the
index stored them (one `grep -r` per audit), and entries read in the tree:

- arch/x86/include/uapi/asm/processor-flags.h:13 `#define X86_EFLAGS_FIXED_BIT	1 /* Bit 1 - always on */`,
  :14 `#define X86_EFLAGS_FIXED	_BITUL(X86_EFLAGS_FIXED_BIT)`;
- arch/x86/include/asm/segment.h:107 `GDT_ENTRY_KERNEL_CS 12` (32-bit arm), :170 `2` (64-bit arm), :135 and
  :213 `__KERNEL_CS (GDT_ENTRY_KERNEL_CS*8)`;
- kernel/trace/bpf_trace.c:1441 `static const struct bpf_func_proto bpf_get_stackid_proto_tp = {`, :1342-1343
  `static const struct bpf_func_proto *` / `kprobe_prog_func_proto(enum bpf_func_id func_id, ...)`;
  kernel/bpf/helpers.c defines `bpf_base_func_proto` (not indexed: the helper walk reads its text).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from kernel_trees import indexed_db, kernel_tree

from regaudit.facts.text_facts import TextFacts

# The audit's former per-run reads of the tree. Defines: single-line constant-looking ones, name and value
# taken per printed line (the former code ran the name/value pattern over grep's whole output, so
# `#define FP_EX_DIVZERO ` with trailing blanks swallowed the next line: 12 names differed on x86).
_GREP_DEFINE = r"^\s*#\s*define\s+_*[A-Z][A-Z0-9_]*\s+[^\\]*$"
_SPLIT_DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)\s+(.*?)\s*(?:/\*.*)?$")
# Protos: the .c files naming the struct, and in them a variable initialised or a function returning a pointer.
_PROTO_KINDS = {"variable": re.compile(rb"struct\s+bpf_func_proto\s+(\w+)\s*=\s*\{"),
                "function": re.compile(rb"struct\s+bpf_func_proto\s*\*\s*(\w+)\s*\(")}


@pytest.fixture(scope="module")
def db() -> Path:
    return indexed_db("7.3")


def grep_define_table(arch: str) -> dict[str, set[str]]:
    tree = kernel_tree("7.3")
    printed = subprocess.run(["grep", "-rhE", "--include=*.h", _GREP_DEFINE, f"arch/{arch}/include", "include"],
                             cwd=tree, capture_output=True, text=True, errors="replace", check=False).stdout
    table: dict[str, set[str]] = {}
    for line in printed.split("\n"):
        match = _SPLIT_DEFINE.match(line)
        if match:
            table.setdefault(match[1], set()).add(match[2])
    return table


def db_define_table(db: Path, arch: str) -> dict[str, set[str]]:
    conn = sqlite3.connect(db)
    table: dict[str, set[str]] = {}
    for name, value in conn.execute("SELECT name, value FROM header_defines WHERE arch IN (?, 'generic')", (arch,)):
        table.setdefault(name, set()).add(value)
    conn.close()
    return table


@pytest.mark.parametrize("arch", ["x86", "arm64"])
def test_header_defines_are_what_a_grep_of_the_arch_and_generic_headers_finds(db: Path, arch: str) -> None:
    stored = db_define_table(db, arch)
    assert stored == grep_define_table(arch)
    with TextFacts(db) as text:
        for name in ("__KERNEL_CS", "PERF_SAMPLE_CALLCHAIN", "PSR_MODE_EL1h", "X86_EFLAGS_FIXED"):
            assert set(text.header_define_values(arch, name)) == stored.get(name, set()), name


def test_known_x86_constants(db: Path) -> None:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT file, line, value FROM header_defines WHERE name = ?", ("X86_EFLAGS_FIXED",))
    assert rows.fetchall() == [("arch/x86/include/uapi/asm/processor-flags.h", 14, "_BITUL(X86_EFLAGS_FIXED_BIT)")]
    rows = conn.execute("SELECT file, line, value FROM header_defines WHERE name = ?", ("X86_EFLAGS_FIXED_BIT",))
    assert rows.fetchall() == [("arch/x86/include/uapi/asm/processor-flags.h", 13, "1")]
    conn.close()
    with TextFacts(db) as text:
        assert text.header_define_values("x86", "GDT_ENTRY_KERNEL_CS") == ("12", "2")
        assert text.header_define_values("x86", "__KERNEL_CS") == ("(GDT_ENTRY_KERNEL_CS*8)",)
        assert text.header_define_values("arm64", "GDT_ENTRY_KERNEL_CS") == ()


def grep_proto_index() -> dict[tuple[str, str], list[str]]:
    tree = kernel_tree("7.3")
    listed = subprocess.run(["grep", "-rlF", "--include=*.c", "--exclude-dir=.git", "bpf_func_proto", "."],
                            cwd=tree, capture_output=True, text=True, check=False).stdout
    index: dict[tuple[str, str], list[str]] = {}
    for relative in sorted(line.removeprefix("./") for line in listed.splitlines()):
        data = (tree / relative).read_bytes()
        for kind, pattern in _PROTO_KINDS.items():
            for match in pattern.finditer(data):
                index.setdefault((match[1].decode(), kind), []).append(relative)
    return index


def test_bpf_proto_definitions_are_what_a_grep_of_the_c_files_finds(db: Path) -> None:
    expected = grep_proto_index()
    conn = sqlite3.connect(db)
    stored = {(name, kind) for name, kind in conn.execute("SELECT name, kind FROM bpf_proto_definitions")}
    rows = conn.execute("SELECT line, kind FROM bpf_proto_definitions WHERE file = 'kernel/trace/bpf_trace.c' "
                        "AND name IN ('bpf_get_stackid_proto_tp', 'kprobe_prog_func_proto') ORDER BY line")
    assert rows.fetchall() == [(1342, "function"), (1441, "variable")]
    conn.close()
    assert stored == set(expected)
    with TextFacts(db) as text:
        for (name, kind), files in expected.items():
            assert text.proto_files(name, kind) == tuple(files), name
        assert text.proto_files("bpf_get_stackid_proto_tp", "variable") == ("kernel/trace/bpf_trace.c",)
        assert text.proto_files("bpf_base_func_proto", "function") == ("kernel/bpf/helpers.c",)
