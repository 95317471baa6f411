"""Frame models on a made-up arch: layouts, C stores, buffers and guards, one idiom at a time.

tests/fixtures/frames/demo is a tiny kernel tree for the arch `demo`; the comments in its
arch/demo/include/asm/ptrace.h and ftrace.h say what each line must turn into, and
tests/fixtures/frames/demo.toml is its rules/frames file (the trampoline in
arch/demo/kernel/entry-ftrace.S). Each test indexes a fresh copy (a fraction of a second).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import rich.console

from regaudit.arch.catalogue import load_catalogue, trampolines_for
from regaudit.arch.config import BuildConfig, ConfigRules
from regaudit.arch.frames import FrameModel
from regaudit.arch.frames_report import folded_evidence, frames_json, frames_table, frames_text
from regaudit.arch.layout import Layout, struct_layout
from regaudit.arch.producers import build_frame_models
from regaudit.facts.arch_facts import ArchFacts
from regaudit.index import index_tree
from regaudit.ruleset.load import load_rule_file, load_rules

FIXTURE = Path(__file__).parent / "fixtures" / "frames"
DEMO_RULES = FIXTURE / "demo.toml"


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, Path]:
    """(tree, fact database) of a fresh copy of the demo tree."""
    tree = tmp_path / "linux"
    shutil.copytree(FIXTURE / "demo", tree)
    db = tmp_path / "facts.db"
    index_tree(tree, db, workers=1)
    return tree, db


def models_of(tree: Path, db: Path) -> dict[str, FrameModel]:
    models = build_frame_models(tree, db, frame_rules=[load_rule_file(DEMO_RULES, "frames")])
    return {model.producer: model for model in models}


def demo_layout(tree: Path, db: Path, name: str) -> Layout:
    facts = ArchFacts(db)
    config = BuildConfig.load(tree, "demo", facts, ConfigRules.for_arch(load_catalogue("7.3").config, "demo"))
    layout = struct_layout(name, config, lambda path: (tree / path).read_text().splitlines())
    assert layout is not None
    return layout


def test_pt_regs_layout_names_storage_as_c_code_does(demo: tuple[Path, Path]) -> None:
    layout = demo_layout(*demo, "pt_regs")
    assert layout.members == (
        "gprs[0]",
        "gprs[1]",
        "gprs[2]",
        "gprs[3]",
        "psw.mask",
        "psw.addr",
        "cs",
        "ss",
        "flags",
        "extra",
    )
    assert layout.resolve("csx") == ("cs",)  # two adjacent unions stay two
    assert layout.resolve("ssx") == ("ss",)
    assert layout.resolve("user_regs.gprs[1]") == ("gprs[1]",)
    assert layout.resolve("gprs") == ("gprs[0]", "gprs[1]", "gprs[2]", "gprs[3]")
    assert layout.resolve("psw") == ("psw.mask", "psw.addr")
    assert layout.resolve("es") == ()  # 32-bit only
    assert layout.open_guards == {"extra": "defined(CONFIG_DEMO_EXTRA)"}


def test_builder_that_copies_into_a_per_cpu_buffer(demo: tuple[Path, Path]) -> None:
    model = models_of(*demo)["ftrace_partial_regs"]
    assert model.result == "frame"
    assert model.populated == ["gprs[0]", "gprs[1]", "gprs[2]", "gprs[3]", "psw.addr"]
    assert model.constants == {"cs": "0x10"}
    # Only the builder writes demo_partial_regs (demo_regs_update only reads it): what it leaves alone
    # was never written and holds the zero of per-cpu storage.
    assert model.states["psw.mask"] == model.states["ss"] == model.states["extra"] == "zero"
    assert model.masks == {"flags": "0x2"} and model.states["flags"] == "zero"
    assert model.never_written == ("psw.mask", "ss", "extra")  # flags had bits set
    assert model.storage == ("per-cpu demo_partial_regs (kernel/trace/demo_callers.c:6), "
                             "written only by ftrace_partial_regs()")
    assert model.members["gprs[3]"].evidence == (
        "arch/demo/kernel/entry-ftrace.S:7",
        "arch/demo/include/asm/ftrace.h:36",
    )
    assert "arch/demo/include/asm/ftrace.h:34" in model.members["gprs[0]"].evidence  # the memcpy


@pytest.mark.parametrize("writer", [
    # a callee writing through the buffer it is handed
    "static void demo_scrub(struct pt_regs *regs)\n{\n\tregs->ss = 1;\n}\n"
    "void demo_other(void)\n{\n\tdemo_scrub(demo_partial_regs_ptr());\n}\n",
    # the helper's result kept in a local: where it goes is not followed
    "void demo_other(void)\n{\n\tstruct pt_regs *r = demo_partial_regs_ptr();\n\tdemo_use(r);\n}\n",
    # the variable named outside its helper
    "void demo_other(void)\n{\n\tthis_cpu_write(demo_partial_regs.ss, 1);\n}\n",
])
def test_a_per_cpu_buffer_that_anything_else_may_write_is_stale(demo: tuple[Path, Path], writer: str) -> None:
    tree, db = demo
    callers = tree / "kernel/trace/demo_callers.c"
    callers.write_text(callers.read_text() + writer)
    index_tree(tree, db, workers=1)
    model = models_of(tree, db)["ftrace_partial_regs"]
    assert model.states["ss"] == model.states["psw.mask"] == "stale" and model.never_written == ()
    assert model.storage == "per-cpu demo_partial_regs (kernel/trace/demo_callers.c:6)"


def test_generic_builder_with_an_arch_macro_and_an_out_parameter_buffer(demo: tuple[Path, Path]) -> None:
    model = models_of(*demo)["ftrace_fill_perf_regs"]
    assert model.populated == ["psw.addr"]
    assert model.constants == {"ss": "0"}  # written through the alias ssx
    assert model.storage == "per-cpu demo_perf_regs (kernel/trace/demo_callers.c:19)"
    assert set(model.unpopulated) == {"gprs[0]", "gprs[1]", "gprs[2]", "gprs[3]", "psw.mask", "cs", "flags", "extra"}


def test_get_regs_macro_that_is_null(demo: tuple[Path, Path]) -> None:
    model = models_of(*demo)["ftrace_get_regs"]
    assert (model.result, model.members) == ("null", {})
    assert "arch/demo/include/asm/ftrace.h:21" in model.evidence


def test_raw_frame_is_the_rules_entry_in_the_arch_ftrace_regs_layout(demo: tuple[Path, Path]) -> None:
    model = models_of(*demo)["ftrace_regs"]
    assert (model.layout, model.populated) == ("__arch_ftrace_regs", ["args[0]", "args[1]", "args[2]", "sp", "pc"])
    assert model.constants == {"marker": "0"}
    assert model.drift == ()


def test_editing_a_cited_trampoline_line_shows_as_drift_in_the_model(demo: tuple[Path, Path]) -> None:
    tree, db = demo
    source = tree / "arch/demo/kernel/entry-ftrace.S"
    source.write_text(source.read_text().replace("str\tx9, [sp, #FREGS_SP]", "str\tx10, [sp, #FREGS_SP]"))
    model = models_of(tree, db)["ftrace_partial_regs"]
    assert len(model.drift) == 1
    assert "arch/demo/kernel/entry-ftrace.S:7" in model.drift[0] and "x10" in model.drift[0]


def test_editing_the_c_builder_changes_the_model(demo: tuple[Path, Path]) -> None:
    tree, db = demo
    header = tree / "arch/demo/include/asm/ftrace.h"
    header.write_text(header.read_text().replace("\tregs->cs = 0x10;", "\t"))
    index_tree(tree, db, workers=1)
    assert models_of(tree, db)["ftrace_partial_regs"].states["cs"] == "zero"


def test_guards_are_evaluated_against_the_modelled_build(demo: tuple[Path, Path]) -> None:
    tree, db = demo
    config = BuildConfig.load(tree, "demo", ArchFacts(db), ConfigRules.for_arch(load_catalogue("7.3").config, "demo"))
    assert config.holds("defined(CONFIG_DYNAMIC_FTRACE_WITH_ARGS) && !defined(__ASSEMBLER__)") is True
    assert config.holds("IS_ENABLED(CONFIG_DYNAMIC_FTRACE)") is True
    assert config.holds("defined(__i386__)") is False  # the 64-bit build (rules/producers.toml [config])
    assert config.holds("defined(CONFIG_DEMO_EXTRA)") is None  # a user choice stays open
    assert config.holds("CONFIG_PGTABLE_LEVELS > 2") is None  # not something the model decides
    # A macro is defined when a definition not guarded by its own `#ifndef` applies: the arch's.
    assert config.holds("defined(HAVE_ARCH_FTRACE_REGS)") is True
    assert config.holds("!defined(arch_ftrace_fill_perf_regs)") is False
    chosen = config.choose("arch_ftrace_get_regs")
    assert chosen is not None and chosen.at == "arch/demo/include/asm/ftrace.h:21"


def test_renderings(demo: tuple[Path, Path]) -> None:
    models = build_frame_models(*demo, frame_rules=[load_rule_file(DEMO_RULES, "frames")])
    data = json.loads(frames_json(models))
    assert [entry["producer"] for entry in data] == [
        "ftrace_regs",
        "ftrace_get_regs",
        "ftrace_partial_regs",
        "ftrace_fill_perf_regs",
    ]
    text = frames_text(models)
    assert "demo 7.3 ftrace_partial_regs entry (ftrace_caller, args): a pt_regs in per-cpu demo_partial_regs" in text
    assert "  populated: gprs[0..3] psw.addr" in text
    assert "  zero: psw.mask ss extra flags (only 0x2 set)" in text
    screen = io.StringIO()
    rich.console.Console(file=screen, force_terminal=True, width=160).print(frames_table(models))
    assert "ftrace_partial_regs" in screen.getvalue()


def test_evidence_prints_one_file_at_a_time_with_runs_of_lines_folded() -> None:
    evidence = ["arch/x86/kernel/ftrace_64.S:83", "arch/x86/kernel/ftrace_64.S:84", "arch/x86/kernel/ftrace_64.S:85",
                "include/linux/ftrace.h:204", "arch/x86/kernel/ftrace_64.S:100", "arch/x86/kernel/ftrace_64.S:84",
                "include/linux/ftrace.h:188"]
    assert folded_evidence(evidence) == "arch/x86/kernel/ftrace_64.S:83-85,100; include/linux/ftrace.h:188,204"
    assert folded_evidence(["a rules note", "x.c:7"]) == "a rules note; x.c:7"


def test_a_series_without_rule_data_falls_back_to_the_nearest_verified_one() -> None:
    trampolines, verified = trampolines_for(load_rule_file(DEMO_RULES, "frames"), "7.4")
    assert verified == "7.3"
    assert [(t.name, t.context, t.mode) for t in trampolines] == [("ftrace_caller", "entry", "args")]


@pytest.mark.parametrize("series", ["6.1", "6.12", "7.3"])
def test_producers_toml_covers_every_kind_of_trampoline_in_rules_frames(series: str) -> None:
    catalogue = load_catalogue(series)
    kinds = {(t["mode"], t["context"]) for rule in load_rules("frames") for t in rule.data["trampoline"]}
    assert kinds <= set(catalogue.kinds)
    assert {builder.producer for builder in catalogue.builders} == {
        "ftrace_get_regs",
        "ftrace_partial_regs",
        "ftrace_fill_perf_regs",
    }
