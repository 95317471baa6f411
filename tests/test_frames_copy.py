"""x86 frame models on a copy of the 7.3 sources: they follow C edits through the facts and asm edits
through drift, and `regaudit frames` shows them.

The copy holds only what the x86 models read: the Kconfig files, the C headers and sources whose facts
they use, and every file rules/frames/x86.toml and rules/producers.toml cite for 7.3, so an unedited
copy has no drift.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from kernel_trees import kernel_tree

from regaudit.arch.frames import FrameModel
from regaudit.arch.producers import build_frame_models
from regaudit.cli import main
from regaudit.index import index_tree
from regaudit.ruleset.load import applies_to, evidence_items, load_rules

C_SOURCES = (
    "arch/x86/Kconfig",
    "kernel/trace/Kconfig",
    "arch/Kconfig",
    "arch/x86/include/asm/ftrace.h",
    "arch/x86/include/asm/ptrace.h",
    "include/linux/ftrace.h",
    "include/linux/ftrace_regs.h",
    "kernel/trace/fgraph.c",
    "kernel/trace/rethook.c",
)
# arch/x86/include/asm/ftrace.h:59-62 in 7.3: the hook ftrace_partial_regs() applies in place.
CS_STORE = "\tregs->cs = __KERNEL_CS;\t\t\t\\\n"
# arch/x86/kernel/ftrace_64.S:175: the cs = 0 marker of the WITH_ARGS frame.
CS_MARKER = "\tmovq $0, CS(%rsp)\n"


@pytest.fixture
def x86_copy(tmp_path: Path) -> tuple[Path, Path]:
    source = kernel_tree("7.3")
    tree = tmp_path / "linux-7.3"
    cited = {
        item.path
        for rule in load_rules("frames") + load_rules("producers")
        for item in evidence_items(rule)
        if applies_to(item.kernels, "7.3") and (item.path.startswith("arch/x86/") or not item.path.startswith("arch/"))
    }
    for relative in {"Makefile", *C_SOURCES, *cited}:
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, tree / relative)
    db = tmp_path / "facts.db"
    index_tree(tree, db, workers=2)
    return tree, db


def x86_models(tree: Path, db: Path) -> dict[tuple[str, str, str], FrameModel]:
    return {(m.producer, m.context, m.trampoline): m for m in build_frame_models(tree, db, ["x86"])}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not one line of {path}"
    path.write_text(text.replace(old, new))


def test_dropping_the_cs_store_from_the_hook_changes_the_partial_regs_frames(x86_copy: tuple[Path, Path]) -> None:
    tree, db = x86_copy
    before = x86_models(tree, db)
    assert before["ftrace_partial_regs", "entry", "ftrace_caller"].constants["cs"] == "__KERNEL_CS"
    assert before["ftrace_partial_regs", "exit", "return_to_handler"].constants["cs"] == "__KERNEL_CS"

    edit(tree / "arch/x86/include/asm/ftrace.h", CS_STORE, "")
    index_tree(tree, db, workers=2)
    after = x86_models(tree, db)
    # On entry the trampoline's cs = 0 marker now reaches the consumer; on exit nothing wrote cs at all.
    assert after["ftrace_partial_regs", "entry", "ftrace_caller"].constants["cs"] == "0"
    assert after["ftrace_partial_regs", "exit", "return_to_handler"].states["cs"] == "uninitialised"
    assert after["ftrace_partial_regs", "entry", "ftrace_caller"].masks == {"flags": "X86_EFLAGS_FIXED"}


def test_an_unedited_copy_has_no_drift_and_an_edited_asm_line_drifts_the_models_built_on_it(
    x86_copy: tuple[Path, Path],
) -> None:
    tree, db = x86_copy
    assert all(model.drift == () for model in x86_models(tree, db).values())

    edit(tree / "arch/x86/kernel/ftrace_64.S", CS_MARKER, "\tmovq $1, CS(%rsp)\n")
    drifted = {key for key, model in x86_models(tree, db).items() if model.drift}
    assert drifted == {
        ("ftrace_regs", "entry", "ftrace_caller"),
        ("ftrace_get_regs", "entry", "ftrace_caller"),
        ("ftrace_partial_regs", "entry", "ftrace_caller"),
        ("ftrace_fill_perf_regs", "entry", "ftrace_caller"),
    }
    message = x86_models(tree, db)["ftrace_partial_regs", "entry", "ftrace_caller"].drift[0]
    assert 'arch/x86/kernel/ftrace_64.S:175 expected "movq $0, CS(%rsp)"' in message
    assert "movq $1, CS(%rsp)" in message


def test_frames_command_prints_json_and_plain_text(x86_copy: tuple[Path, Path]) -> None:
    tree, db = x86_copy
    result = CliRunner().invoke(main, ["frames", str(tree), "--arch", "x86", "--format", "json", "--db", str(db)])
    assert result.exit_code == 0, result.output
    keys = {(m["producer"], m["context"], m["trampoline"]) for m in json.loads(result.output)}
    assert keys == set(x86_models(tree, db))

    text = CliRunner().invoke(main, ["frames", str(tree), "--arch", "x86", "--db", str(db)])
    assert text.exit_code == 0
    assert (
        "x86 7.3 ftrace_partial_regs entry (ftrace_caller, args): a pt_regs in the trampoline's stack frame"
        in text.output
    )
    assert "flags (only X86_EFLAGS_FIXED set)" in text.output
    assert "\x1b[" not in text.output  # not a terminal: no escape codes


def test_frames_command_indexes_into_the_default_database(
    x86_copy: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree, _ = x86_copy
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["frames", str(tree), "--arch", "x86"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "linux-7.3.regaudit.db").is_file()


def test_frames_command_refuses_an_arch_without_frame_rules_in_one_line(x86_copy: tuple[Path, Path]) -> None:
    tree, db = x86_copy
    result = CliRunner().invoke(main, ["frames", str(tree), "--arch", "mips", "--db", str(db)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "regaudit: error: no frame rules or no arch/ directory for mips (auditable: x86)"
    ]
