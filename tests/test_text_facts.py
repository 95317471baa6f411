"""Text facts on small trees: the `header_defines` and `bpf_proto_definitions` rows `index_tree` writes,
`index_overlay` replacing the rows of a patch's files only, the readers the audit uses, and one file's
bytes (`scan_data`, the overlay's path) giving what the index reads from the tree (grep, token scan).
Real-tree agreement with a grep of the whole tree is in test_text_facts_real.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from db_rows import rows
from fake_tree import make_tree

from regaudit.facts.text_facts import TextFacts
from regaudit.index import index_overlay, index_tree
from regaudit.parse.text_scan import (
    PROTO_TAG,
    TextScan,
    has_protos,
    header_defines,
    proto_definitions,
    scan_data,
)
from regaudit.token_scan import first_occurrences

X86_FLAGS = (
    "#ifndef _ASM_X86_FLAGS_H\n"
    "#define _ASM_X86_FLAGS_H\n"  # no replacement: not a constant
    "#define X86_FLAG_A\t0x200 /* bit 9 */\n"
    "  #  define SPACED_OUT (1 << 2)\n"
    "#define lower_case 1\n"  # not spelled like a constant
    "#define CONTINUED (1 | \\\n\t2)\n"  # continued: not single-line
    "#define FN_LIKE(x) ((x) + 1)\n"  # function-like
    "#define TRAILING_BLANKS \t\n"  # empty replacement: its own row, the next line is not swallowed
    "#define AFTER_BLANKS 4\r\n"
    "#endif\n"
)
FILES: dict[str, str | bytes] = {
    "arch/x86/include/asm/flags.h": X86_FLAGS,
    "arch/arm64/include/uapi/asm/flags.h": "#define ARM_ONLY 5\n#define X86_FLAG_A 7\n",
    "include/linux/consts.h": "#define GENERIC_ONE 1\n#define X86_FLAG_A 0x100 // generic\n#define X86_FLAG_A 0x100\n",
    "drivers/misc/local.h": "#define NOT_A_HEADER_DEFINE 1\n",  # outside include/ and arch/*/include/
    "kernel/bpf/helpers.c": (
        "const struct bpf_func_proto bpf_x_proto = {\n\t.func = bpf_x,\n};\n\n"
        "static const struct bpf_func_proto *\nx_func_proto(enum bpf_func_id id)\n{\n\treturn &bpf_x_proto;\n}\n"
    ),
    "kernel/trace/other.c": "static const struct bpf_func_proto bpf_x_proto = { };\n",
    "tools/lib/bpf/user.c": "struct bpf_func_proto tool_proto = { };\n",  # a top directory the index skips
    "include/linux/bpf.h": "const struct bpf_func_proto *declared_only(int id);\n",  # .h: not a proto file
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "linux", FILES)


@pytest.fixture
def db(tree: Path, tmp_path: Path) -> Path:
    return index_tree(tree, tmp_path / "facts.db", workers=1).db


def test_index_stores_every_constant_define_of_the_include_directories(db: Path) -> None:
    assert rows(db, "SELECT file, arch, line, name, value FROM header_defines ORDER BY file, line") == [
        ("arch/arm64/include/uapi/asm/flags.h", "arm64", 1, "ARM_ONLY", "5"),
        ("arch/arm64/include/uapi/asm/flags.h", "arm64", 2, "X86_FLAG_A", "7"),
        ("arch/x86/include/asm/flags.h", "x86", 3, "X86_FLAG_A", "0x200"),
        ("arch/x86/include/asm/flags.h", "x86", 4, "SPACED_OUT", "(1 << 2)"),
        ("arch/x86/include/asm/flags.h", "x86", 9, "TRAILING_BLANKS", ""),
        ("arch/x86/include/asm/flags.h", "x86", 10, "AFTER_BLANKS", "4"),
        ("include/linux/consts.h", "generic", 1, "GENERIC_ONE", "1"),
        ("include/linux/consts.h", "generic", 2, "X86_FLAG_A", "0x100 // generic"),
        ("include/linux/consts.h", "generic", 3, "X86_FLAG_A", "0x100"),
    ]


def test_index_stores_the_bpf_proto_definitions_of_c_files(db: Path) -> None:
    assert rows(db, "SELECT file, line, name, kind FROM bpf_proto_definitions ORDER BY file, line") == [
        ("kernel/bpf/helpers.c", 1, "bpf_x_proto", "variable"),
        ("kernel/bpf/helpers.c", 5, "x_func_proto", "function"),
        ("kernel/trace/other.c", 1, "bpf_x_proto", "variable"),
    ]


def test_readers_answer_per_arch_arch_headers_first(db: Path) -> None:
    with TextFacts(db) as text:
        assert text.header_define_values("x86", "X86_FLAG_A") == ("0x200", "0x100 // generic", "0x100")
        assert text.header_define_values("arm64", "X86_FLAG_A") == ("7", "0x100 // generic", "0x100")
        assert text.header_define_values("riscv", "X86_FLAG_A") == ("0x100 // generic", "0x100")
        assert text.header_define_values("x86", "ARM_ONLY") == ()
        assert text.header_define_values("x86", "NOT_A_HEADER_DEFINE") == ()
        assert text.proto_files("bpf_x_proto", "variable") == ("kernel/bpf/helpers.c", "kernel/trace/other.c")
        assert text.proto_files("x_func_proto", "function") == ("kernel/bpf/helpers.c",)
        assert text.proto_files("x_func_proto", "variable") == ()
        assert text.proto_files("tool_proto", "variable") == ()


def test_a_changed_tree_recomputes_the_text_facts(tree: Path, db: Path) -> None:
    (tree / "include/linux/consts.h").write_text("#define GENERIC_ONE 11\n")
    index_tree(tree, db, workers=1)
    assert rows(db, "SELECT name, value FROM header_defines WHERE file = 'include/linux/consts.h'") == \
        [("GENERIC_ONE", "11")]
    assert rows(db, "SELECT count(*) FROM header_defines") == [(7,)]


def test_overlay_replaces_the_rows_of_touched_and_removed_files_only(db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    shutil.copyfile(db, copy)
    before = rows(db, "SELECT file, line, name, value FROM header_defines WHERE file LIKE 'arch/x86/%'")
    index_overlay(tmp_path / "linux", copy, {
        "include/linux/consts.h": b"#define GENERIC_ONE 2\n#define GENERIC_TWO (GENERIC_ONE + 1)\n",
        "include/linux/new.h": b"#define BRAND_NEW 3\n",
        "kernel/trace/other.c": b"int no_proto_any_more;\n",
        "net/core/filter.c": b"static const struct bpf_func_proto *\nnet_func_proto(int id)\n{ return 0; }\n",
    }, removed=["arch/arm64/include/uapi/asm/flags.h"])
    assert rows(copy, "SELECT file, line, name, value FROM header_defines WHERE file LIKE 'include/%' "
                      "ORDER BY file, line") == [
        ("include/linux/consts.h", 1, "GENERIC_ONE", "2"),
        ("include/linux/consts.h", 2, "GENERIC_TWO", "(GENERIC_ONE + 1)"),
        ("include/linux/new.h", 1, "BRAND_NEW", "3"),
    ]
    assert rows(copy, "SELECT count(*) FROM header_defines WHERE arch = 'arm64'") == [(0,)]
    assert rows(copy, "SELECT file, line, name, value FROM header_defines WHERE file LIKE 'arch/x86/%'") == before
    assert rows(copy, "SELECT file, line, name, kind FROM bpf_proto_definitions ORDER BY file, line") == [
        ("kernel/bpf/helpers.c", 1, "bpf_x_proto", "variable"),
        ("kernel/bpf/helpers.c", 5, "x_func_proto", "function"),
        ("net/core/filter.c", 1, "net_func_proto", "function"),
    ]
    assert rows(db, "SELECT count(*) FROM header_defines WHERE arch = 'arm64'") == [(2,)], "the original is kept"


def test_one_files_bytes_give_what_the_index_reads_from_the_tree(tree: Path) -> None:
    """The index greps the headers for defines, and reads proto definitions from the .c files its token scan
    saw the proto tag in."""
    naming = {path for path, _token, _offset in first_occurrences(str(tree), list(FILES), (PROTO_TAG,))}
    assert naming == {"kernel/bpf/helpers.c", "kernel/trace/other.c", "tools/lib/bpf/user.c", "include/linux/bpf.h"}
    for path in FILES:
        protos = proto_definitions(tree, [path]) if has_protos(path) and path in naming else []
        assert scan_data(path, (tree / path).read_bytes()) == TextScan(header_defines(tree, [path]), protos), path


def test_the_prefilter_mode_changes_no_text_fact(tree: Path, db: Path, tmp_path: Path) -> None:
    """`--prefilter all` makes no token pass: the index looks for the proto tag in a pass of its own."""
    everything = index_tree(tree, tmp_path / "all.db", prefilter="all", workers=1).db
    for table in ("header_defines", "bpf_proto_definitions"):
        assert sorted(rows(everything, f"SELECT * FROM {table}")) == sorted(rows(db, f"SELECT * FROM {table}"))
    assert rows(everything, "SELECT count(*) FROM bpf_proto_definitions") == [(3,)]
