"""The tolerant Kconfig reader, the expression evaluator, arch capabilities and .config parsing.

Fixture tests use tests/fixtures/kconfig/tree, a made-up kernel tree whose arch/demo/Kconfig says
in comments what each block demonstrates. Real-tree tests check facts read from the kernel sources;
the path:line next to each assertion is where the fact sits in the Debian tree the fetch script
unpacks (line numbers are cited, not asserted, so a point release does not break the test).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kernel_trees import kernel_tree

from regaudit.arch.kconfig import (
    TRACE_FEATURES,
    Capabilities,
    ConfigEntry,
    Default,
    Select,
    arch_capabilities,
    evaluate,
    foreign_symbols,
    list_arches,
    parse_dotconfig,
    read_kconfig,
    trace_features,
)
from regaudit.errors import BadInput

FIXTURES = Path(__file__).parent / "fixtures" / "kconfig"
TREE = FIXTURES / "tree"
DEMO_KCONFIG = TREE / "arch" / "demo" / "Kconfig"


def line_of(text: str, path: Path = DEMO_KCONFIG) -> int:
    """The 1-based line of `path` whose stripped text starts with `text`."""
    lines = path.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.strip().startswith(text))


@pytest.fixture(scope="module")
def demo_entries() -> dict[str, ConfigEntry]:
    return {entry.name: entry for entry in read_kconfig(DEMO_KCONFIG, TREE)}


def depends(entry: ConfigEntry) -> list[tuple[str, str]]:
    return [(clause.expr, clause.origin) for clause in entry.depends_on]


# --- reading -------------------------------------------------------------------------------------


def test_list_arches_needs_a_kconfig() -> None:
    assert list_arches(TREE) == ["demo", "other"]


def test_entries_are_read_in_order_with_their_lines(demo_entries: dict[str, ConfigEntry]) -> None:
    assert list(demo_entries) == [
        "DEMO",
        "DEMO_64BIT",
        "HELPER_OK",
        "SINGLE_SPACE_HELP",
        "AFTER_SINGLE_SPACE_HELP",
        "OLD_STYLE_HELP",
        "IN_IF",
        "IN_NESTED_IF",
        "IN_MENU",
        "AFTER_IF",
        "IN_CHOICE",
        "PROMPT_WITH_HASH",
        "TRANSITIONAL_OPTION",
    ]
    assert all(entry.file == "arch/demo/Kconfig" for entry in demo_entries.values())
    assert demo_entries["AFTER_SINGLE_SPACE_HELP"].line == line_of("config AFTER_SINGLE_SPACE_HELP")


def test_help_text_is_not_parsed(demo_entries: dict[str, ConfigEntry]) -> None:
    # The help of DEMO contains `select`, `depends on` and `config` lines; none of them count.
    assert [select.symbol for select in demo_entries["DEMO"].selects] == [
        "HAVE_PLAIN",
        "HAVE_IF_64BIT",
        "HAVE_CONTINUED",
        "HAVE_VIA_HELPER",
    ]
    assert demo_entries["DEMO"].depends_on == []
    assert demo_entries["OLD_STYLE_HELP"].selects == []


def test_selects_keep_their_condition_without_comments_or_continuations(
    demo_entries: dict[str, ConfigEntry],
) -> None:
    selects = {select.symbol: select for select in demo_entries["DEMO"].selects}
    assert selects["HAVE_PLAIN"] == Select(
        "HAVE_PLAIN", None, "arch/demo/Kconfig", line_of("select HAVE_PLAIN"), "DEMO"
    )
    assert selects["HAVE_IF_64BIT"].condition == "DEMO_64BIT"
    # Three physical lines joined by backslashes; the select is reported at its first line.
    assert selects["HAVE_CONTINUED"].condition == "(DEMO_64BIT || DEMO_COMPAT)"
    assert selects["HAVE_CONTINUED"].line == line_of("select HAVE_CONTINUED")


def test_types_prompts_and_defaults(demo_entries: dict[str, ConfigEntry]) -> None:
    helper = demo_entries["HELPER_OK"]
    assert (helper.type, helper.prompt) == ("bool", None)
    assert helper.defaults == [Default("DEMO_64BIT", None, line_of("def_bool DEMO_64BIT"))]
    after_if = demo_entries["AFTER_IF"]
    assert (after_if.type, after_if.prompt) == ("tristate", "Outside every if again")
    assert [(default.value, default.condition) for default in after_if.defaults] == [("m", "AFTER_OK"), ("n", None)]


def test_a_hash_inside_quotes_is_text(demo_entries: dict[str, ConfigEntry]) -> None:
    entry = demo_entries["PROMPT_WITH_HASH"]
    assert (entry.prompt, entry.prompt_condition) == ("a # inside quotes is not a comment", "HASH_OK")
    assert entry.defaults[0].value == '"#"'


def test_enclosing_if_menu_and_choice_fold_into_depends(demo_entries: dict[str, ConfigEntry]) -> None:
    assert depends(demo_entries["IN_IF"]) == [("DEMO_64BIT", "if"), ("OWN_DEPENDENCY", "depends on")]
    assert depends(demo_entries["IN_NESTED_IF"]) == [("DEMO_64BIT", "if"), ("NESTED", "if")]
    assert depends(demo_entries["IN_MENU"]) == [("DEMO_64BIT", "if"), ("MENU_DEPENDENCY", "menu")]
    assert depends(demo_entries["IN_CHOICE"]) == [("CHOICE_DEPENDENCY", "choice")]
    # After endif, and past a comment whose own `depends on` must not leak into its neighbours.
    assert depends(demo_entries["AFTER_IF"]) == []
    if_clause = demo_entries["IN_IF"].depends_on[0]
    assert (if_clause.file, if_clause.line) == ("arch/demo/Kconfig", line_of("if DEMO_64BIT"))


def test_unknown_keywords_are_skipped(demo_entries: dict[str, ConfigEntry]) -> None:
    assert demo_entries["TRANSITIONAL_OPTION"].type == "bool"


def test_missing_kconfig_is_bad_input() -> None:
    with pytest.raises(BadInput, match="cannot read Kconfig"):
        read_kconfig(TREE / "arch" / "no_kconfig" / "Kconfig", TREE)


# --- the evaluator -------------------------------------------------------------------------------

KNOWN = {"A": True, "B": False, "M": True}  # M stands for a tristate set to m


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("A", True),
        ("!A", False),
        ("A && !B", True),
        ("B || A", True),
        ("!(A && B)", True),
        ("A && B || A", True),  # && binds tighter than ||
        ("!B && B", False),  # ! binds tighter than &&
        ("A = y", True),
        ("B = n", True),
        ("A != y", False),
        ("A = B", False),
        ("M = m", True),  # m counts as true
        ("y", True),
        ('"n"', False),
        # Three-valued: an unknown symbol only matters when the result depends on it.
        ("UNKNOWN", None),
        ("!UNKNOWN", None),
        ("B && UNKNOWN", False),
        ("A || UNKNOWN", True),
        ("A && UNKNOWN", None),
        ("UNKNOWN = y", None),
        ("$(cc-option,-fpatchable-function-entry=2)", None),
        ('"$(ARCH)" = "x86"', None),
        ("LD_VERSION >= 23600", None),
        ("AS_IS_GNU || (A && (B || LD_VERSION >= 23600))", None),
        ("B && (UNKNOWN || $(success,true))", False),
    ],
)
def test_evaluate(expr: str, value: bool | None) -> None:
    assert evaluate(expr, KNOWN) is value


@pytest.mark.parametrize("expr", ["", "A &&", "(A", "A B", "&& A", "$(unclosed"])
def test_evaluate_rejects_malformed_expressions(expr: str) -> None:
    with pytest.raises(BadInput, match="cannot parse Kconfig expression"):
        evaluate(expr, KNOWN)


# --- capabilities on the fixture -----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Capabilities:
    return arch_capabilities(TREE, "demo")


def test_capabilities_cover_kconfig_dot_files_but_not_sourced_subdirectories(demo: Capabilities) -> None:
    [from_debug] = demo.selected("HAVE_FROM_KCONFIG_DEBUG")
    assert (from_debug.file, from_debug.selected_by) == ("arch/demo/Kconfig.debug", "DEMO_DEBUG")
    assert demo.selected("HAVE_FROM_SUBDIR") == []


def test_select_values(demo: Capabilities) -> None:
    assert demo.value("HAVE_PLAIN", {}) is True  # selected by DEMO, which is def_bool y
    assert demo.value("HAVE_IF_64BIT", {}) is None  # DEMO_64BIT has a prompt: the user decides
    assert demo.value("HAVE_IF_64BIT", {"DEMO_64BIT": True}) is True
    assert demo.value("HAVE_IF_64BIT", {"DEMO_64BIT": False}) is False
    assert demo.value("HAVE_NOT_SELECTED", {}) is False  # HAVE_* is set only by selects
    assert demo.value("NOT_DEFINED_HERE", {}) is None
    assert demo.value("HAVE_PLAIN", {"HAVE_PLAIN": False}) is False  # an assumption wins


def test_values_follow_def_bool_and_depends(demo: Capabilities) -> None:
    # HAVE_VIA_HELPER is selected if HELPER_OK, which is def_bool DEMO_64BIT depends on !DEMO_NO_HELPER.
    assert demo.value("HAVE_VIA_HELPER", {"DEMO_64BIT": True}) is None
    assert demo.value("HAVE_VIA_HELPER", {"DEMO_64BIT": True, "DEMO_NO_HELPER": False}) is True
    assert demo.value("HAVE_VIA_HELPER", {"DEMO_NO_HELPER": True}) is False
    assert demo.value("AFTER_IF", {}) is None  # prompted


def test_unknown_arch_is_bad_input() -> None:
    with pytest.raises(BadInput, match=r"no arch/no_kconfig/Kconfig \(known arches: demo, other\)"):
        arch_capabilities(TREE, "no_kconfig")


# --- .config ----------------------------------------------------------------------------------------


def test_parse_dotconfig_keeps_bool_and_tristate_symbols() -> None:
    assert parse_dotconfig(FIXTURES / "good.config") == {
        "64BIT": True,
        "KPROBES": True,
        "BPF_EVENTS": True,  # =m
        "FPROBE": False,  # "is not set"
        "HAVE_KPROBES": True,
    }


def test_parse_dotconfig_names_the_bad_line() -> None:
    with pytest.raises(BadInput, match=r"bad\.config:2: not a \.config line: 'this is not a \.config line'$"):
        parse_dotconfig(FIXTURES / "bad.config")


def test_parse_dotconfig_missing_file() -> None:
    with pytest.raises(BadInput, match=r"cannot read \.config"):
        parse_dotconfig(FIXTURES / "missing.config")


# --- real trees ------------------------------------------------------------------------------------


def selects_of(capabilities: Capabilities, symbol: str) -> list[tuple[str | None, str, str]]:
    return [(select.condition, select.selected_by, select.file) for select in capabilities.selected(symbol)]


def test_x86_on_7_3() -> None:
    x86 = arch_capabilities(kernel_tree("7.3"), "x86")
    # arch/x86/Kconfig:232 `select HAVE_DYNAMIC_FTRACE_WITH_ARGS if X86_64`, inside `config X86` (:58)
    assert selects_of(x86, "HAVE_DYNAMIC_FTRACE_WITH_ARGS") == [("X86_64", "X86", "arch/x86/Kconfig")]
    # arch/x86/Kconfig:233 `select HAVE_FTRACE_REGS_HAVING_PT_REGS if X86_64`
    assert selects_of(x86, "HAVE_FTRACE_REGS_HAVING_PT_REGS") == [("X86_64", "X86", "arch/x86/Kconfig")]
    # arch/x86/Kconfig:231 `select HAVE_DYNAMIC_FTRACE_WITH_REGS`, unconditional
    assert selects_of(x86, "HAVE_DYNAMIC_FTRACE_WITH_REGS") == [(None, "X86", "arch/x86/Kconfig")]
    # X86_64 is def_bool y depends on 64BIT (arch/x86/Kconfig:23-25); 64BIT has a prompt (:3-4)
    assert x86.value("HAVE_DYNAMIC_FTRACE_WITH_ARGS", {"64BIT": True}) is True
    assert x86.value("HAVE_DYNAMIC_FTRACE_WITH_ARGS", {"64BIT": False}) is False
    assert x86.value("HAVE_DYNAMIC_FTRACE_WITH_ARGS", {}) is None


def test_arm64_on_7_3_has_args_but_not_regs() -> None:
    arm64 = arch_capabilities(kernel_tree("7.3"), "arm64")
    # arch/arm64/Kconfig:187-189, a select continued over three lines inside `config ARM64` (:2)
    assert selects_of(arm64, "HAVE_DYNAMIC_FTRACE_WITH_ARGS") == [
        (
            "(GCC_SUPPORTS_DYNAMIC_FTRACE_WITH_ARGS || CLANG_SUPPORTS_DYNAMIC_FTRACE_WITH_ARGS)",
            "ARM64",
            "arch/arm64/Kconfig",
        )
    ]
    # no `select HAVE_DYNAMIC_FTRACE_WITH_REGS` anywhere in arch/arm64/Kconfig*
    assert arm64.selected("HAVE_DYNAMIC_FTRACE_WITH_REGS") == []
    assert arm64.value("HAVE_DYNAMIC_FTRACE_WITH_REGS", {}) is False
    assert arm64.value("HAVE_DYNAMIC_FTRACE_WITH_ARGS", {"GCC_SUPPORTS_DYNAMIC_FTRACE_WITH_ARGS": True}) is True


def test_arm64_on_6_1_selects_regs_from_compiler_support_options() -> None:
    arm64 = arch_capabilities(kernel_tree("6.1"), "arm64")
    # arch/arm64/Kconfig:240 in `config CLANG_SUPPORTS_DYNAMIC_FTRACE_WITH_REGS` (:236) and
    # arch/arm64/Kconfig:245 in `config GCC_SUPPORTS_DYNAMIC_FTRACE_WITH_REGS` (:242)
    assert selects_of(arm64, "HAVE_DYNAMIC_FTRACE_WITH_REGS") == [
        (None, "CLANG_SUPPORTS_DYNAMIC_FTRACE_WITH_REGS", "arch/arm64/Kconfig"),
        (None, "GCC_SUPPORTS_DYNAMIC_FTRACE_WITH_REGS", "arch/arm64/Kconfig"),
    ]
    # GCC_SUPPORTS_... depends on $(cc-option,-fpatchable-function-entry=2) (:244): a compiler probe
    assert arm64.value("HAVE_DYNAMIC_FTRACE_WITH_REGS", {}) is None
    assert arm64.value("HAVE_DYNAMIC_FTRACE_WITH_REGS", {"GCC_SUPPORTS_DYNAMIC_FTRACE_WITH_REGS": True}) is True
    assert arm64.selected("HAVE_DYNAMIC_FTRACE_WITH_ARGS") == []  # WITH_ARGS came to arm64 later


FTRACE_SELECTS_7_3 = [
    # (arch, symbol, condition, selecting config block)
    ("riscv", "HAVE_DYNAMIC_FTRACE_WITH_ARGS", "HAVE_DYNAMIC_FTRACE", "RISCV"),  # arch/riscv/Kconfig:166
    ("loongarch", "HAVE_DYNAMIC_FTRACE_WITH_ARGS", None, "LOONGARCH"),  # arch/loongarch/Kconfig:141
    ("loongarch", "HAVE_FTRACE_REGS_HAVING_PT_REGS", None, "LOONGARCH"),  # arch/loongarch/Kconfig:142
    ("loongarch", "HAVE_DYNAMIC_FTRACE_WITH_REGS", None, "LOONGARCH"),  # arch/loongarch/Kconfig:144
    # arch/powerpc/Kconfig:243 and :246, inside `config PPC` (:118)
    (
        "powerpc",
        "HAVE_DYNAMIC_FTRACE_WITH_ARGS",
        "ARCH_USING_PATCHABLE_FUNCTION_ENTRY || MPROFILE_KERNEL || PPC32",
        "PPC",
    ),
    (
        "powerpc",
        "HAVE_DYNAMIC_FTRACE_WITH_REGS",
        "ARCH_USING_PATCHABLE_FUNCTION_ENTRY || MPROFILE_KERNEL || PPC32",
        "PPC",
    ),
    ("powerpc", "HAVE_FTRACE_REGS_HAVING_PT_REGS", None, "PPC"),  # arch/powerpc/Kconfig:251
    ("s390", "HAVE_DYNAMIC_FTRACE_WITH_ARGS", None, "S390"),  # arch/s390/Kconfig:210
    ("s390", "HAVE_FTRACE_REGS_HAVING_PT_REGS", None, "S390"),  # arch/s390/Kconfig:211
    ("s390", "HAVE_DYNAMIC_FTRACE_WITH_REGS", None, "S390"),  # arch/s390/Kconfig:213
]


@pytest.mark.parametrize(("arch", "symbol", "condition", "selected_by"), FTRACE_SELECTS_7_3)
def test_ftrace_capabilities_of_other_arches_on_7_3(
    arch: str, symbol: str, condition: str | None, selected_by: str
) -> None:
    capabilities = arch_capabilities(kernel_tree("7.3"), arch)
    assert selects_of(capabilities, symbol) == [(condition, selected_by, f"arch/{arch}/Kconfig")]


def test_riscv_on_7_3_has_neither_regs_nor_pt_regs_in_ftrace_regs() -> None:
    riscv = arch_capabilities(kernel_tree("7.3"), "riscv")
    assert riscv.value("HAVE_DYNAMIC_FTRACE_WITH_REGS", {}) is False
    assert riscv.value("HAVE_FTRACE_REGS_HAVING_PT_REGS", {}) is False


def test_fprobe_on_6_12_depends_on_regs() -> None:
    fprobe = trace_features(kernel_tree("6.12"))["FPROBE"]
    # kernel/trace/Kconfig:287 `config FPROBE` inside `if FTRACE` (:189), then :289-291
    assert depends(fprobe) == [
        ("FTRACE", "if"),
        ("FUNCTION_TRACER", "depends on"),
        ("DYNAMIC_FTRACE_WITH_REGS", "depends on"),
        ("HAVE_RETHOOK", "depends on"),
    ]
    assert [select.symbol for select in fprobe.selects] == ["RETHOOK"]  # :292


def test_fprobe_on_7_3_depends_on_args_and_selects_the_graph_tracer() -> None:
    fprobe = trace_features(kernel_tree("7.3"))["FPROBE"]
    # kernel/trace/Kconfig:363 inside `if FTRACE` (:211), depends :365-366, select :367
    assert depends(fprobe) == [
        ("FTRACE", "if"),
        ("HAVE_FUNCTION_GRAPH_FREGS && HAVE_FTRACE_GRAPH_FUNC", "depends on"),
        ("DYNAMIC_FTRACE_WITH_ARGS", "depends on"),
    ]
    assert [select.symbol for select in fprobe.selects] == ["FUNCTION_GRAPH_TRACER"]


@pytest.mark.parametrize(
    ("series", "absent"),
    [
        ("6.1", {"FPROBE_EVENTS", "HAVE_FTRACE_REGS_HAVING_PT_REGS"}),  # both arrived after 6.1
        ("6.12", {"HAVE_FTRACE_REGS_HAVING_PT_REGS"}),  # kernel/trace/Kconfig:74 in 7.3 only
        ("7.3", set()),
    ],
)
def test_trace_features_present_per_kernel(series: str, absent: set[str]) -> None:
    features = trace_features(kernel_tree(series))
    assert set(TRACE_FEATURES) - set(features) == absent
    # arch/Kconfig holds the kprobe options (7.3: KPROBES :131, KRETPROBES :262, KPROBES_ON_FTRACE :187)
    assert {features[name].file for name in ("KPROBES", "KRETPROBES", "KPROBES_ON_FTRACE")} == {"arch/Kconfig"}


def test_every_arch_of_the_tree_has_its_capabilities_read() -> None:
    tree = kernel_tree("7.3")
    capabilities = {arch: arch_capabilities(tree, arch) for arch in list_arches(tree)}
    assert len(capabilities) >= 20
    # arch/x86/Kconfig:232 `select HAVE_DYNAMIC_FTRACE_WITH_ARGS if X86_64`;
    # arch/arm64/Kconfig:232 `select HAVE_KPROBES`
    [with_args] = capabilities["x86"].selected("HAVE_DYNAMIC_FTRACE_WITH_ARGS")
    [kprobes] = capabilities["arm64"].selected("HAVE_KPROBES")
    assert (with_args.condition, with_args.line, kprobes.condition, kprobes.line) == ("X86_64", 232, None, 232)


def test_symbols_only_other_arches_declare_are_off() -> None:
    """Linux 7.3.4: `config ARM64` (arch/arm64/Kconfig), `config CPU_V7` (arch/arm/mm/Kconfig) exist only there;
    MMU and KVM are declared by x86 too (arch/x86/Kconfig, arch/x86/kvm/Kconfig), so they are x86's to decide."""
    foreign = foreign_symbols(kernel_tree("7.3"), "x86")
    assert {"ARM64", "CPU_V7", "RISCV"} <= foreign
    assert not {"X86", "X86_64", "MMU", "KVM", "FUNCTION_TRACER"} & foreign
