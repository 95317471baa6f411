"""regaudit.subsystems: a kernel file's MAINTAINERS section and the coarse class findings report it under.

`fixtures/subsystems/MAINTAINERS` is a small fake with the real header's shape; each section exercises
one pattern kind. The coarse classes come from the real rules/subsystems.toml, so the fixture reuses
real section titles (PERFORMANCE EVENTS SUBSYSTEM, TRACING, ...) and demo titles for "other".
The real-tree tests pin the files the audit cares about on 6.1, 6.12 and 7.3.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kernel_trees import SERIES, kernel_tree

from regaudit.errors import RuleDataError
from regaudit.ruleset.load import load_rule_file
from regaudit.subsystems import COARSE_CLASSES, Maintainers, Subsystem

FIXTURE_TREE = Path(__file__).parent / "fixtures" / "subsystems"


@pytest.fixture(scope="module")
def fake() -> Maintainers:
    return Maintainers.load(FIXTURE_TREE, "7.3")


def section(maintainers: Maintainers, path: str) -> str:
    return maintainers.classify(path).section


# --- which section: the MAINTAINERS patterns ---------------------------------------------------------


def test_trailing_slash_matches_everything_below(fake: Maintainers) -> None:
    assert section(fake, "drivers/demo/sub/deeper/a.c") == "DEMO DRIVERS"


def test_star_matches_files_in_that_directory_only(fake: Maintainers) -> None:
    assert section(fake, "drivers/demo/a.c") == "DEMO DRIVERS TOP-LEVEL FILES"  # drivers/demo/*
    assert section(fake, "drivers/demo/sub/a.c") == "DEMO DRIVERS"  # * does not cross a /


def test_question_mark_is_one_character_and_double_star_crosses_directories(fake: Maintainers) -> None:
    assert section(fake, "drivers/demo/sub/q1.c") == "DEMO GLOBS"  # drivers/demo/*/q?.c
    assert section(fake, "drivers/demo/sub/q12.c") == "DEMO DRIVERS"
    assert section(fake, "fs/ext9/deep/xfooy.c") == "DEMO GLOBS"  # fs/**/*foo*.c


def test_exclusion_takes_the_file_out_of_the_section(fake: Maintainers) -> None:
    assert section(fake, "drivers/demo/legacy/old.c") == "THE REST"  # X: drivers/demo/legacy/


def test_literal_directory_without_trailing_slash_matches_below_it(fake: Maintainers) -> None:
    assert section(fake, "lib/demo/x.c") == "DEMO LIBRARY"  # F: lib/demo
    assert section(fake, "lib/demolition.c") == "THE REST"


def test_n_regex_is_searched_in_the_path(fake: Maintainers) -> None:
    assert section(fake, "sound/soc/tegra/pcm.c") == "DEMO TEGRA"  # N: [^a-z]tegra
    assert section(fake, "drivers/integrator.c") == "THE REST"


def test_deepest_pattern_wins(fake: Maintainers) -> None:
    assert section(fake, "kernel/kprobes.c") == "KPROBES"  # depth 2 beats THE REST's */ (-1)
    assert section(fake, "arch/x86/events/core.c") == "PERFORMANCE EVENTS SUBSYSTEM"  # arch/*/events/ 3 > arch/x86/ 2
    assert section(fake, "kernel/bpf/stackmap.c") == "BPF [GENERAL] (Safe Dynamic Programs and Tools)"


def test_equal_depth_goes_to_the_pattern_with_more_literal_characters(fake: Maintainers) -> None:
    assert section(fake, "kernel/events/uprobes.c") == "UPROBES"  # kernel/events/uprobes.c over kernel/events/*
    assert section(fake, "kernel/events/core.c") == "PERFORMANCE EVENTS SUBSYSTEM"


def test_a_full_tie_goes_to_the_first_section_in_the_file(fake: Maintainers) -> None:
    # BPF [GENERAL] and BPF [TRACING] both list kernel/trace/bpf_trace.c.
    assert section(fake, "kernel/trace/bpf_trace.c") == "BPF [GENERAL] (Safe Dynamic Programs and Tools)"


def test_the_header_documenting_the_tags_is_no_section(fake: Maintainers) -> None:
    assert section(fake, "drivers/net/e1000.c") == "THE REST"  # the header's example "F: drivers/net/"


# --- which coarse class: rules/subsystems.toml ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("kernel/events/core.c", Subsystem("PERFORMANCE EVENTS SUBSYSTEM", "perf")),  # exact title
        ("kernel/kprobes.c", Subsystem("KPROBES", "kprobes/fprobe")),
        ("kernel/bpf/stackmap.c", Subsystem("BPF [GENERAL] (Safe Dynamic Programs and Tools)", "BPF")),  # regex ^BPF
        ("kernel/trace/trace_event_perf.c", Subsystem("TRACING", "tracing")),
        ("drivers/demo/a.c", Subsystem("DEMO DRIVERS TOP-LEVEL FILES", "other")),  # a section no rule names
        ("kernel/events/uprobes.c", Subsystem("UPROBES", "other")),
    ],
)
def test_sections_fold_into_coarse_classes(fake: Maintainers, path: str, expected: Subsystem) -> None:
    assert fake.classify(path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("arch/x86/kernel/unwind_frame.c", Subsystem("X86 ARCHITECTURE (32-BIT AND 64-BIT)", "arch-unwind")),
        ("arch/arm64/kernel/stacktrace.c", Subsystem("ARM64 PORT (AARCH64 ARCHITECTURE)", "arch-unwind")),
        ("arch/x86/kernel/perf_regs.c", Subsystem("X86 ARCHITECTURE (32-BIT AND 64-BIT)", "perf")),
        ("kernel/trace/fprobe.c", Subsystem("TRACING", "kprobes/fprobe")),
    ],
)
def test_path_globs_win_over_the_section(fake: Maintainers, path: str, expected: Subsystem) -> None:
    assert fake.classify(path) == expected


def test_without_maintainers_only_the_globs_classify(tmp_path: Path) -> None:
    bare = Maintainers.load(tmp_path, "7.3")
    assert bare.classify("kernel/events/core.c") == Subsystem("", "other")
    assert bare.classify("arch/x86/kernel/unwind_orc.c") == Subsystem("", "arch-unwind")


def test_a_series_not_verified_uses_the_nearest_verified_one() -> None:
    assert Maintainers.load(FIXTURE_TREE, "6.6.30").classify("kernel/kprobes.c").coarse == "kprobes/fprobe"


def test_repeated_paths_are_answered_from_the_cache(fake: Maintainers) -> None:
    assert fake.classify("kernel/trace/ftrace.c") is fake.classify("kernel/trace/ftrace.c")


# --- the schema of rules/subsystems.toml ----------------------------------------------------------------

EVIDENCE = 'evidence = [{ at = "MAINTAINERS:1", expect = "TRACING" }]'


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (f'[[section]]\ntitle = "TRACING"\nclass = "ftrace"\n{EVIDENCE}', "section[0].class: 'ftrace' is not one of"),
        (
            f'[[section]]\ntitle = "TRACING"\nregex = "^TRAC"\nclass = "tracing"\n{EVIDENCE}',
            "section[0]: give exactly one of `title`",
        ),
        (f'[[section]]\nregex = "^(BPF"\nclass = "BPF"\n{EVIDENCE}', "section[0].regex: is not a regular expression"),
        ('[[path]]\nglob = "arch/*/kernel/unwind*.c"\nclass = "arch-unwind"', "path[0].evidence: missing"),
        (f'[[path]]\nglob = "../unwind.c"\nclass = "arch-unwind"\n{EVIDENCE}', "path[0].glob: '../unwind.c' must be"),
        (f'[[path]]\npattern = "a/*.c"\nclass = "perf"\n{EVIDENCE}', "path[0]: unknown key(s) pattern"),
        ("", "section: missing"),
    ],
)
def test_schema_violations_name_the_key(tmp_path: Path, body: str, error: str) -> None:
    rules = tmp_path / "subsystems.toml"
    rules.write_text(f'kernels = ["7.3"]\n{body}\n')
    with pytest.raises(RuleDataError) as raised:
        load_rule_file(rules, kind="subsystems")
    assert str(raised.value).startswith(f"{rules}: ")
    assert error in str(raised.value)


def test_coarse_classes_are_the_reported_ones() -> None:
    assert COARSE_CLASSES == ("perf", "kprobes/fprobe", "BPF", "tracing", "arch-unwind", "other")


# --- real kernel trees ----------------------------------------------------------------------------------

PERF = "PERFORMANCE EVENTS SUBSYSTEM"
BPF_GENERAL = "BPF [GENERAL] (Safe Dynamic Programs and Tools)"
# The same in 6.1, 6.12 and 7.3. No tree has an FPROBE or RETHOOK section: fprobe.c, rethook.c and
# trace_kprobe.c are TRACING's (kernel/trace/) and only rules/subsystems.toml's globs make them
# kprobes/fprobe, as they do trace_fprobe.c (6.12 and 7.3 only), the fprobe twin of trace_kprobe.c.
REAL_FILES = {
    "kernel/events/core.c": Subsystem(PERF, "perf"),
    "kernel/events/callchain.c": Subsystem(PERF, "perf"),
    "arch/x86/events/core.c": Subsystem(PERF, "perf"),
    "arch/arm64/kernel/perf_regs.c": Subsystem("ARM PMU PROFILING AND DEBUGGING", "perf"),
    "kernel/kprobes.c": Subsystem("KPROBES", "kprobes/fprobe"),
    "kernel/trace/fprobe.c": Subsystem("TRACING", "kprobes/fprobe"),
    "kernel/trace/trace_kprobe.c": Subsystem("TRACING", "kprobes/fprobe"),
    "kernel/trace/rethook.c": Subsystem("TRACING", "kprobes/fprobe"),
    "kernel/trace/bpf_trace.c": Subsystem(BPF_GENERAL, "BPF"),  # also BPF [TRACING], same pattern, later
    "kernel/bpf/stackmap.c": Subsystem("BPF [TRACING]", "BPF"),
    "kernel/trace/trace_event_perf.c": Subsystem("TRACING", "tracing"),
    "kernel/trace/ftrace.c": Subsystem("FUNCTION HOOKS (FTRACE)", "tracing"),
    "arch/x86/kernel/unwind_frame.c": Subsystem("X86 STACK UNWINDING", "arch-unwind"),
    "arch/arm64/kernel/stacktrace.c": Subsystem("ARM64 PORT (AARCH64 ARCHITECTURE)", "arch-unwind"),
    "drivers/net/ethernet/intel/e1000/e1000_main.c": Subsystem("INTEL ETHERNET DRIVERS", "other"),
}
TRACE_FPROBE = {"kernel/trace/trace_fprobe.c": Subsystem("TRACING", "kprobes/fprobe")}


@pytest.fixture(scope="module", params=SERIES)
def real(request: pytest.FixtureRequest) -> tuple[Path, Maintainers]:
    tree = kernel_tree(request.param)
    return tree, Maintainers.load(tree, request.param)


def test_real_trees_classify_the_audited_files(real: tuple[Path, Maintainers]) -> None:
    tree, maintainers = real
    expected = REAL_FILES | (TRACE_FPROBE if (tree / "kernel/trace/trace_fprobe.c").is_file() else {})
    assert all((tree / path).is_file() for path in expected), "an expected file is missing from the tree"
    assert {path: maintainers.classify(path) for path in expected} == expected


def test_real_trees_put_every_file_in_some_section(real: tuple[Path, Maintainers]) -> None:
    tree, maintainers = real
    paths = [str(path.relative_to(tree)) for path in (tree / "kernel" / "trace").glob("*.c")]
    assert paths
    assert all(maintainers.classify(path).section for path in paths)  # THE REST catches the rest
