"""Rules files: the shared conventions, the frames schema, and the evidence drift check.

Fixtures under tests/fixtures/ruleset/: `invalid/` and `frames_invalid/` hold one broken file each,
whose first line `# error: ...` is the text the RuleDataError must contain; `tree/` is a tiny fake
kernel tree that `evidence_demo.toml` cites, one evidence item per outcome.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kernel_trees import SERIES, kernel_tree

from regaudit.arch.kconfig import list_arches
from regaudit.errors import BadInput, RuleDataError
from regaudit.resources import data_dir
from regaudit.ruleset.evidence import (
    Drift,
    check_evidence,
    format_drift,
    nearest_series,
    uncovered_files,
    verified_series,
)
from regaudit.ruleset.load import (
    applies_to,
    evidence_items,
    kernel_series,
    load_all_rules,
    load_rule_file,
    rule_paths,
    ruleset_hash,
)
from regaudit.tree import read_version

FIXTURES = Path(__file__).parent / "fixtures" / "ruleset"
DEMO_TREE = FIXTURES / "tree"
DEMO_RULES = FIXTURES / "evidence_demo.toml"


def expected_error(fixture: Path) -> str:
    first_line = fixture.read_text().splitlines()[0]
    assert first_line.startswith("# error: "), f"{fixture} must start with '# error: <message text>'"
    return first_line.removeprefix("# error: ")


def fixtures_in(directory: str) -> list[Path]:
    return sorted((FIXTURES / directory).glob("*.toml"))


# --- versions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "series"), [("7.3.4", "7.3"), ("6.12", "6.12"), ("6.1.0-13-amd64", "6.1"), ("7.3-rc2", "7.3")]
)
def test_kernel_series_is_major_dot_minor(version: str, series: str) -> None:
    assert kernel_series(version) == series


@pytest.mark.parametrize("version", ["7", "linux-7.3", ""])
def test_kernel_series_rejects_what_is_not_a_version(version: str) -> None:
    with pytest.raises(BadInput, match="is not a kernel version"):
        kernel_series(version)


def test_applies_to_unrestricted_data_and_to_listed_series_only() -> None:
    assert applies_to(None, "6.6")
    assert applies_to(["6.12", "7.3"], "7.3")
    assert not applies_to(["6.12", "7.3"], "6.1")


@pytest.mark.parametrize(
    ("available", "series", "nearest"),
    [
        (["6.1", "6.12", "7.3"], "6.6", "6.1"),  # highest not newer
        (["6.1", "6.12", "7.3"], "6.12", "6.12"),
        (["6.12", "6.1"], "6.13", "6.12"),  # numeric order: 6.12 > 6.1, unsorted input
        (["6.12", "7.3"], "5.10", "6.12"),  # nothing older: the oldest
        (["7.3"], "8.0", "7.3"),
        ([], "7.3", None),
    ],
)
def test_nearest_series(available: list[str], series: str, nearest: str | None) -> None:
    assert nearest_series(available, series) == nearest


# --- loading and the conventions -------------------------------------------------------------------


def test_kernels_are_inherited_by_nested_tables_and_overridden_by_evidence() -> None:
    rule = load_rule_file(DEMO_RULES)
    kernels = {item.entry: item.kernels for item in evidence_items(rule)}
    assert kernels["fact[0].evidence[0]"] == ("7.3",)  # from the top level
    assert kernels["fact[4].evidence[0]"] == ("6.1",)  # from its [[fact]]
    assert kernels["fact[5].evidence[0]"] == ("7.3",)  # its own list wins over the [[fact]]'s


def test_evidence_item_splits_at_into_path_and_line() -> None:
    first = evidence_items(load_rule_file(DEMO_RULES))[0]
    assert (first.at, first.path, first.line, first.expect) == (
        "arch/demo/entry.S:4",
        "arch/demo/entry.S",
        4,
        "movq %rdi, RDI(%rsp)",
    )


@pytest.mark.parametrize("fixture", fixtures_in("invalid"), ids=lambda path: path.stem)
def test_convention_violations_name_the_file_and_the_key(fixture: Path) -> None:
    with pytest.raises(RuleDataError) as raised:
        load_rule_file(fixture)
    assert str(raised.value).startswith(str(fixture))
    assert expected_error(fixture) in str(raised.value)


def test_valid_frames_file_loads() -> None:
    rule = load_rule_file(FIXTURES / "frames_valid.toml", kind="frames")
    assert rule.data["trampoline"][1]["name"] == "ftrace_regs_caller"


@pytest.mark.parametrize("fixture", fixtures_in("frames_invalid"), ids=lambda path: path.stem)
def test_frames_schema_violations_name_the_file_and_the_key(fixture: Path) -> None:
    with pytest.raises(RuleDataError) as raised:
        load_rule_file(fixture, kind="frames")
    assert str(raised.value).startswith(str(fixture))
    assert expected_error(fixture) in str(raised.value)


def test_frames_schema_applies_only_to_frames() -> None:
    """The same document is fine for a kind without a schema: only the shared conventions apply."""
    rule = load_rule_file(FIXTURES / "frames_invalid" / "bad_mode.toml")
    assert rule.data["trampoline"][0]["mode"] == "full"
    assert [item.at for item in evidence_items(rule)] == ["arch/x86/kernel/ftrace_64.S:87"]


def test_every_frames_file_in_rules_matches_the_schema() -> None:
    problems = []
    for path in rule_paths("frames"):
        try:
            load_rule_file(path, kind="frames")
        except RuleDataError as err:
            problems.append(str(err))
    assert not problems, "rules/frames/ has invalid files:\n" + "\n".join(problems)


def test_every_frames_file_names_a_real_arch() -> None:
    known = {arch for series in SERIES for arch in list_arches(kernel_tree(series))}
    for path in rule_paths("frames"):
        arch = load_rule_file(path, kind="frames").data["arch"]
        assert arch in known, f"{path}: arch = {arch!r} is not a directory under arch/ in {SERIES}"


def test_every_rules_file_loads() -> None:
    """Every rules/**/*.toml, each checked against its kind's schema, and each cites its evidence."""
    rules = load_all_rules()
    root = data_dir("rules")
    assert [rule.path for rule in rules] == sorted(root.rglob("*.toml"))
    assert all(evidence_items(rule) for rule in rules)


def test_unknown_kind_is_reported() -> None:
    with pytest.raises(RuleDataError, match="no rules of kind 'no-such-kind'"):
        rule_paths("no-such-kind")


def test_ruleset_hash_is_stable_between_calls() -> None:
    assert ruleset_hash() == ruleset_hash()
    assert len(ruleset_hash()) == 16


# --- the drift check on the fake tree ---------------------------------------------------------------


def drift_by_entry(drifts: list[Drift]) -> dict[str, tuple[str, int | None, str | None]]:
    return {drift.entry: (drift.status, drift.found_at, drift.line_text) for drift in drifts}


def test_drift_check_reports_each_outcome_once() -> None:
    drifts = check_evidence(DEMO_TREE, "7.3.4", [load_rule_file(DEMO_RULES)])
    assert drift_by_entry(drifts) == {
        # fact[0] and fact[5] are ok; fact[4] is for 6.1 only
        "fact[1].evidence[0]": (
            "moved",
            7,
            "\t/* this comment was inserted, pushing the next line down from 6 to 7 */",
        ),
        "fact[2].evidence[0]": ("changed", None, "\tmovq $0, ORIG_RAX(%rsp)"),
        "fact[3].evidence[0]": ("missing-file", None, None),
        "fact[6].evidence[0]": ("changed", None, None),
    }


def test_drift_check_on_another_series_checks_only_its_items() -> None:
    drifts = check_evidence(DEMO_TREE, "6.1", [load_rule_file(DEMO_RULES)])
    assert drift_by_entry(drifts) == {"fact[4].evidence[0]": ("changed", None, "\tmovq %rcx, RCX(%rsp)")}


def test_drift_lines() -> None:
    drifts = check_evidence(DEMO_TREE, "7.3", [load_rule_file(DEMO_RULES)])
    prefix = f"{DEMO_RULES}: "
    assert [format_drift(drift).removeprefix(prefix) for drift in drifts] == [
        'fact[1].evidence[0]: arch/demo/entry.S:6 expected "movq %rdx, RDX(%rsp)", now at line 7',
        'fact[2].evidence[0]: arch/demo/entry.S:8 expected "movq %rax, ORIG_RAX(%rsp)", '
        'line now reads "movq $0, ORIG_RAX(%rsp)"',
        'fact[3].evidence[0]: arch/demo/gone.S:1 expected "SYM_CODE_START(gone)", file is missing',
        'fact[6].evidence[0]: arch/demo/entry.S:40 expected "RET", the file no longer reaches that line',
    ]


def test_drift_line_names_a_ruleset_file_relative_to_rules() -> None:
    drift = Drift(
        data_dir("rules") / "frames" / "x86.toml",
        "trampoline[2].evidence[0]",
        "arch/x86/kernel/ftrace_64.S:83",
        "movq %rdi, RDI(%rsp)",
        "moved",
        85,
        "\tmovq %rsi, RSI(%rsp)",
    )
    assert format_drift(drift) == (
        "rules/frames/x86.toml: trampoline[2].evidence[0]: arch/x86/kernel/ftrace_64.S:83 "
        'expected "movq %rdi, RDI(%rsp)", now at line 85'
    )


def test_moved_text_is_looked_for_within_200_lines_only(tmp_path: Path) -> None:
    (tmp_path / "far.S").write_text("cited\n" + "filler\n" * 199 + "the text\n")
    rules = tmp_path / "far.toml"
    rules.write_text('evidence = [{ at = "far.S:1", expect = "the text" }]\n')
    [near] = check_evidence(tmp_path, "7.3", [load_rule_file(rules)])
    assert (near.status, near.found_at) == ("moved", 201)  # 200 lines below the cited one
    (tmp_path / "far.S").write_text("cited\n" + "filler\n" * 200 + "the text\n")
    [far] = check_evidence(tmp_path, "7.3", [load_rule_file(rules)])
    assert (far.status, far.found_at) == ("changed", None)


def test_files_without_evidence_for_a_series_are_uncovered() -> None:
    demo = load_rule_file(DEMO_RULES)
    assert verified_series(demo) == ["6.1", "7.3"]
    assert uncovered_files("6.12.5", [demo]) == [DEMO_RULES]
    assert uncovered_files("7.3.4", [demo]) == []


# --- real kernel trees ----------------------------------------------------------------------------


@pytest.fixture
def ftrace_copy(tmp_path: Path) -> tuple[Path, Path, int]:
    """A mini tree holding only 7.3's arch/x86/kernel/ftrace_64.S, and the line storing %rdi."""
    relative = Path("arch/x86/kernel/ftrace_64.S")
    copy = tmp_path / "tree" / relative
    copy.parent.mkdir(parents=True)
    shutil.copyfile(kernel_tree("7.3") / relative, copy)
    # Looked up rather than hard-coded so a Debian point release of 7.3 does not break the test;
    # in 7.3.4 it is arch/x86/kernel/ftrace_64.S:87 (save_mcount_regs).
    line = next(n for n, text in enumerate(copy.read_text().splitlines(), 1) if "movq %rdi, RDI(%rsp)" in text)
    return tmp_path / "tree", copy, line


def write_rule(directory: Path, line: int) -> Path:
    rules = directory / "ftrace.toml"
    rules.write_text(
        '[[trampoline]]\nkernels = ["7.3"]\n'
        f'evidence = [{{ at = "arch/x86/kernel/ftrace_64.S:{line}", expect = "movq %rdi, RDI(%rsp)" }}]\n'
    )
    return rules


def test_real_line_passes_then_drifts_when_edited(ftrace_copy: tuple[Path, Path, int], tmp_path: Path) -> None:
    tree, copy, line = ftrace_copy
    rules = [load_rule_file(write_rule(tmp_path, line))]
    assert check_evidence(tree, "7.3.4", rules) == []

    lines = copy.read_text().splitlines(keepends=True)
    lines[line - 1] = "\tmovq %rdi, ORIG_RAX(%rsp)\n"
    copy.write_text("".join(lines))
    [drift] = check_evidence(tree, "7.3.4", rules)
    assert (drift.status, drift.line_text) == ("changed", "\tmovq %rdi, ORIG_RAX(%rsp)")


def test_real_line_pushed_down_is_reported_moved(ftrace_copy: tuple[Path, Path, int], tmp_path: Path) -> None:
    tree, copy, line = ftrace_copy
    copy.write_text("/* two new */\n/* lines */\n" + copy.read_text())
    [drift] = check_evidence(tree, "7.3", [load_rule_file(write_rule(tmp_path, line))])
    assert (drift.status, drift.found_at) == ("moved", line + 2)


@pytest.mark.parametrize("series", SERIES)
def test_rules_in_the_ruleset_match_the_real_tree(series: str) -> None:
    tree = kernel_tree(series)
    drifts = check_evidence(tree, read_version(tree / "Makefile"))
    assert not drifts, f"rules/ disagrees with linux-{series}:\n" + "\n".join(map(format_drift, drifts))
