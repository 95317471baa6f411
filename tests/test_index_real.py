"""The index stage on the real kernel trees (acceptance of the index issue).

Facts checked here were read in the 7.3.4 source at the cited lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from db_rows import rows
from kernel_trees import SERIES, indexed_db, kernel_tree

import regaudit.index as index_module
from regaudit.index import index_tree
from regaudit.ruleset.load import applies_to, evidence_items, load_all_rules


@pytest.fixture(scope="module")
def db73() -> Path:
    return indexed_db("7.3")


def function(db: Path, name: str, file: str) -> tuple[int, int, int]:
    found = rows(db, "SELECT id, line, end_line FROM functions WHERE name = ? AND file = ?", name, file)
    assert len(found) == 1, f"{name} in {file}: {found}"
    return found[0]


def test_kprobe_multi_prog_run_assigns_ftrace_partial_regs_to_local_regs(db73: Path) -> None:
    # kernel/trace/bpf_trace.c:2595 kprobe_multi_link_prog_run; :2625 regs = ftrace_partial_regs(fregs, ...)
    fid, line, _ = function(db73, "kprobe_multi_link_prog_run", "kernel/trace/bpf_trace.c")
    assert line == 2595
    assert rows(db73, "SELECT line, lhs_var, lhs_var_kind, lhs_type, rhs_kind FROM assignments "
                       "WHERE function_id = ? AND rhs_callee = 'ftrace_partial_regs'", fid) == \
        [(2625, "regs", "local", "struct pt_regs *", "call")]
    call = rows(db73, "SELECT id, line FROM calls WHERE function_id = ? AND callee = 'ftrace_partial_regs'", fid)
    assert [c[1] for c in call] == [2625]
    assert rows(db73, "SELECT position, var, var_kind, param_index, inner_call FROM call_args WHERE call_id = ? "
                       "ORDER BY position", call[0][0]) == \
        [(0, "fregs", "param", 2, None), (1, None, None, None, "bpf_kprobe_multi_pt_regs_ptr")]


def test_bpf_get_stackid_from_bpf_call_3_with_typed_regs(db73: Path) -> None:
    # kernel/bpf/stackmap.c:625 BPF_CALL_3(bpf_get_stackid, struct pt_regs *, regs, struct bpf_map *, map, u64, flags)
    fid, line, _ = function(db73, "bpf_get_stackid", "kernel/bpf/stackmap.c")
    assert line == 625
    assert rows(db73, "SELECT kind, return_type FROM functions WHERE id = ?", fid) == [("BPF_CALL", "u64")]
    assert rows(db73, "SELECT name, type FROM params WHERE function_id = ? ORDER BY position", fid) == \
        [("regs", "struct pt_regs *"), ("map", "struct bpf_map *"), ("flags", "u64")]


def test_user_mode_reads_pstate_on_arm64_and_cs_on_x86(db73: Path) -> None:
    # arch/arm64/include/asm/ptrace.h:196-197 #define user_mode(regs) (((regs)->pstate & PSR_MODE_MASK) == ...)
    fid, line, _ = function(db73, "user_mode", "arch/arm64/include/asm/ptrace.h")
    assert line == 196
    assert rows(db73, "SELECT kind FROM functions WHERE id = ?", fid) == [("macro",)]
    assert rows(db73, "SELECT line, base_var, base_var_kind, param_index, member, access, mask FROM accesses "
                       "WHERE function_id = ?", fid) == [(197, "regs", "param", 0, "pstate", "read", "PSR_MODE_MASK")]
    # arch/x86/include/asm/ptrace.h:209 static __always_inline int user_mode(struct pt_regs *regs); cs at :212, :214
    fid, line, _ = function(db73, "user_mode", "arch/x86/include/asm/ptrace.h")
    assert rows(db73, "SELECT kind, storage, inline FROM functions WHERE id = ?", fid) == [("function", "static", 1)]
    members = rows(db73, "SELECT line, member, mask FROM accesses WHERE function_id = ? ORDER BY line, col", fid)
    assert members == [(212, "cs", "SEGMENT_RPL_MASK"), (212, "flags", "X86_VM_MASK"), (214, "cs", "3")]


def test_kprobe_multi_entry_handler_binding(db73: Path) -> None:
    # kernel/trace/bpf_trace.c:2889 link->fp.entry_handler = kprobe_multi_link_handler;
    assert rows(db73, "SELECT line, kind, struct_type, holder FROM bindings WHERE field = 'fp.entry_handler' "
                       "AND target = 'kprobe_multi_link_handler'") == \
        [(2889, "assignment", "struct bpf_kprobe_multi_link *", "link")]


def members_of(db: Path, file: str, condition_like: str = "%") -> list[tuple]:
    struct = rows(db, "SELECT id FROM structs WHERE name = 'pt_regs' AND file = ? AND condition LIKE ?",
                   file, condition_like)
    assert len(struct) == 1, struct
    return rows(db, "SELECT name, type, array_len, anon_path FROM struct_members WHERE struct_id = ? "
                     "ORDER BY position", struct[0][0])


def test_struct_pt_regs_members_as_written(db73: Path) -> None:
    # arch/x86/include/asm/ptrace.h:103-170, the 64-bit struct (the 32-bit one is under #ifdef __i386__)
    x86 = members_of(db73, "arch/x86/include/asm/ptrace.h", "%!(defined(__i386__))")
    assert [m[0] for m in x86] == ["r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx",
                                   "si", "di", "orig_ax", "ip", "cs", "csx", "fred_cs", "flags", "sp", "ss", "ssx",
                                   "fred_ss"]
    assert ("cs", "u16", None, "union") in x86
    # arch/arm64/include/asm/ptrace.h:154-170: union { user_pt_regs; anonymous struct { regs[31], sp, pc, pstate } }
    arm64 = members_of(db73, "arch/arm64/include/asm/ptrace.h")
    assert arm64[:5] == [("user_regs", "struct user_pt_regs", None, "union"), ("regs", "u64", "31", "union/struct"),
                         ("sp", "u64", None, "union/struct"), ("pc", "u64", None, "union/struct"),
                         ("pstate", "u64", None, "union/struct")]
    # arch/arm64/include/uapi/asm/ptrace.h: struct user_pt_regs { __u64 regs[31]; __u64 sp; __u64 pc; __u64 pstate; }
    user = rows(db73, "SELECT m.name, m.array_len FROM structs s JOIN struct_members m ON m.struct_id = s.id "
                       "WHERE s.name = 'user_pt_regs' AND s.file = 'arch/arm64/include/uapi/asm/ptrace.h' "
                       "ORDER BY m.position")
    assert user == [("regs", "31"), ("sp", None), ("pc", None), ("pstate", None)]


@pytest.mark.slow
@pytest.mark.parametrize("series", SERIES)
def test_every_tree_indexes_with_its_version_and_the_key_facts(series: str) -> None:
    db = indexed_db(series)
    run = rows(db, "SELECT kernel_version, prefilter FROM runs WHERE stage = 'index' ORDER BY id DESC LIMIT 1")
    assert run[0][0].startswith(series + ".") and run[0][1] == "fixpoint"
    # Every tree has the arm64 user_mode macro and bpf_get_stackid with typed regs.
    assert rows(db, "SELECT count(*) FROM functions WHERE name = 'user_mode' AND kind = 'macro' "
                     "AND file = 'arch/arm64/include/asm/ptrace.h'") == [(1,)]
    assert rows(db, "SELECT p.type FROM functions f JOIN params p ON p.function_id = f.id "
                     "WHERE f.name = 'bpf_get_stackid' AND f.kind = 'BPF_CALL' AND p.position = 0") == \
        [("struct pt_regs *",)]
    files = rows(db, "SELECT count(*), sum(parse_errors > 0) FROM files")[0]
    assert files[0] > 1000 and files[1] < files[0]


@pytest.mark.slow
def test_without_hints_the_fixpoint_selects_the_same_7_3_files_in_a_pass_per_round(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db73: Path) -> None:
    """rules/prefilter_hints.txt only saves passes over the tree (see test_index.py for the rule)."""
    monkeypatch.setattr(index_module, "token_hints", lambda: frozenset())
    plain = index_tree(kernel_tree("7.3"), tmp_path / "plain.db")
    for sql in ("SELECT path, selected, reason FROM sources ORDER BY path",
                "SELECT token, round, origin FROM prefilter_tokens ORDER BY token"):
        assert rows(plain.db, sql) == rows(db73, sql), sql
    assert plain.scans == plain.rounds > 1


def test_every_non_c_file_the_7_3_rules_cite_is_a_build_file_the_index_watches(db73: Path) -> None:
    """Frame models read the rules' cited lines (trampolines in .S files, Kconfig, MAINTAINERS): the index keeps
    their sizes and times, so an edit to one drops the audits made from the old text."""
    cited = {item.path for rule in load_all_rules() for item in evidence_items(rule)
             if applies_to(item.kernels, "7.3") and not item.path.endswith((".c", ".h"))}
    watched = {path for (path,) in rows(db73, "SELECT path FROM build_files")}
    assert {"arch/x86/kernel/ftrace_64.S", "arch/arm64/kernel/entry-ftrace.S", "MAINTAINERS"} <= cited
    assert cited <= watched
    assert {"Makefile", "arch/Kconfig", "arch/x86/Kconfig", "kernel/trace/Kconfig", "kernel/events/Makefile"} <= watched
    assert not any(path.startswith(("tools/", "Documentation/", "scripts/")) for path in watched)
