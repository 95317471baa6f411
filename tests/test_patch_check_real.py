"""`regaudit check` on the real 7.3 tree, like checkpatch.pl: a patch that leaves a frame member unpopulated,
or adds a read of one, is reported with the consumer's line in the patched tree and exits 1; a patch that
removes a read reports it fixed; comment, whitespace and unrelated patches exit 0; unusable patches exit 2
with one line, leaving the tree and the database as they were. The same holds for a git range.

One database with an x86 and arm64 audit of the tree is shared by the module; each check audits only the
arch it needs, on a scratch copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from kernel_trees import kernel_tree, private_db

from regaudit.audit import run as audit_run
from regaudit.audit.check import source_key
from regaudit.audit.run import audit_database
from regaudit.cli import main
from regaudit.patch import run as patch_run
from regaudit.patch.checkpatch import render
from regaudit.patch.diffs import parse_patch
from regaudit.patch.overlay import apply_changes
from regaudit.patch.run import CheckResult, check_patch, tree_audit
from regaudit.tree import open_tree

pytestmark = pytest.mark.slow
PATCHES = Path(__file__).parent / "fixtures" / "patches"
FTRACE_H = "arch/x86/include/asm/ftrace.h"


@pytest.fixture(scope="module")
def tree() -> Path:
    return kernel_tree("7.3")


@pytest.fixture(scope="module")
def db(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warm database: the tree indexed and audited for x86 and arm64 (never the shared cached one)."""
    copy = private_db("7.3", tmp_path_factory)
    audit_database(copy, tree, ["arm64", "x86"])
    return copy


def run_check(tree: Path, db: Path, *arguments: str) -> Result:
    return CliRunner().invoke(main, ["check", *arguments, "--tree", str(tree), "--db", str(db)])


def check_json(tree: Path, db: Path, *arguments: str) -> tuple[int, dict[str, Any]]:
    result = run_check(tree, db, *arguments, "--format", "json")
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def fingerprints(findings: list[dict[str, Any]]) -> set[str]:
    return {finding["fingerprint"] for finding in findings}


@pytest.fixture(scope="module")
def x86_drops_cs(tree: Path, db: Path) -> CheckResult:
    """The library call behind the command, rendered below in both formats from one audit."""
    patch = PATCHES / "x86-partial-regs-drops-cs.patch"
    return check_patch(tree, db, apply_changes(tree, parse_patch(patch.read_bytes(), patch.name)), ["x86"])


def test_a_partial_frame_that_no_longer_sets_cs_adds_x86_findings_reading_cs(x86_drops_cs: CheckResult) -> None:
    report = json.loads(render(x86_drops_cs, "json"))
    assert report["audited"] == ["x86"]
    reads_cs = [f for f in report["new"] if f["member"] == "cs" and f["access"] == "read"]
    assert {f["consumer"]["function"] for f in reads_cs} >= {"user_mode"}
    assert all(f["arch"] == "x86" and f["producer"]["api"] == "ftrace_partial_regs" for f in reads_cs)
    assert all(len(f["path"]) >= 2 for f in report["new"])
    assert report["counts"]["new"] == len(report["new"]) > 0


def test_the_text_report_is_checkpatch_lines_then_the_total(x86_drops_cs: CheckResult) -> None:
    lines = render(x86_drops_cs, "text").splitlines()
    comparison = x86_drops_cs.comparison
    new, fixed, unchanged = comparison.new, comparison.fixed, comparison.unchanged
    assert ("arch/x86/include/asm/ptrace.h:214: WARNING: x86: user_mode() reads cs that ftrace_partial_regs "
            "(exit) leaves unpopulated (via kprobe_multi_link_prog_run → ") in "\n".join(lines)
    assert [line.split(": ")[1] for line in lines[:-1]] == ["WARNING"] * len(new) + ["FIXED"] * len(fixed)
    assert lines[-1] == f"total: {len(new)} new, {len(fixed)} fixed, {unchanged} unchanged findings"


def test_sarif_holds_the_new_findings_only(x86_drops_cs: CheckResult) -> None:
    [run] = json.loads(render(x86_drops_cs, "sarif"))["runs"]
    assert [r["partialFingerprints"]["regauditFingerprint/v1"] for r in run["results"]] == [
        f["fingerprint"] for f in x86_drops_cs.comparison.new]


def test_a_write_of_x19_into_the_per_cpu_copy_is_worded_as_one_that_the_next_frame_sees(tree: Path, db: Path) -> None:
    """On arm64 only ftrace_partial_regs writes bpf_kprobe_multi_pt_regs (kernel/trace/bpf_trace.c:2358), and it
    never writes x19, which therefore stays zero. The patch zeroes regs->regs[19] right after the copy is made
    (kernel/trace/bpf_trace.c:2625): not the live frame, but what every later frame built there holds. One
    line per context, entry and exit, which the line tells apart."""
    result = run_check(tree, db, str(PATCHES / "arm64-kprobe-multi-writes-x19.patch"), "--arch", "arm64")
    assert result.exit_code == 1, result.output
    *warnings, total = result.stdout.splitlines()
    assert warnings == [
        "kernel/trace/bpf_trace.c:2626: WARNING: arm64: kprobe_multi_link_prog_run() writes regs[19] of per-cpu "
        "bpf_kprobe_multi_pt_regs (kernel/trace/bpf_trace.c:2358), written only by ftrace_partial_regs(): the next "
        f"frame ftrace_partial_regs ({context}) builds there holds it, not zero (via kprobe_multi_link_prog_run)"
        for context in ("entry", "exit")]
    assert total.startswith("total: 2 new, 0 fixed, ")


def test_a_read_of_x19_added_under_kprobe_multi_is_a_new_arm64_finding(tree: Path, db: Path) -> None:
    status, report = check_json(tree, db, str(PATCHES / "arm64-kprobe-multi-reads-x19.patch"), "--arch", "arm64")
    assert status == 1
    x19 = [f for f in report["new"] if f["member"] == "regs[19]"]
    assert x19 and {f["producer"]["context"] for f in x19} <= {"entry", "exit"}
    for finding in x19:
        assert finding["arch"] == "arm64" and finding["producer"]["api"] == "ftrace_partial_regs"
        assert finding["consumer"] == {"function": "kprobe_multi_trace_callee_saved",
                                       "file": "kernel/trace/bpf_trace.c", "line": 2597}
        assert finding["path"][0]["function"] == "kprobe_multi_link_prog_run"


def test_a_second_writer_of_the_per_cpu_copy_makes_riscv_kernel_stack_walks_feasible(tree: Path, db: Path) -> None:
    """Only ftrace_partial_regs writes bpf_kprobe_multi_pt_regs, so riscv's status stays 0 and user_mode() is true:
    get_perf_callchain skips the kernel stack (kernel/events/callchain.c:241). Poisoning the copy after each run
    (the patch: a memset at kernel/trace/bpf_trace.c:2631) makes status anything, and the exit frame's sp, never
    saved by the trampoline, is read by walk_stackframe (arch/riscv/kernel/stacktrace.c:57)."""
    status, report = check_json(tree, db, str(PATCHES / "kprobe-multi-poisons-its-per-cpu-regs.patch"), "--arch",
                                "riscv")
    assert status == 1 and report["fixed"] == []
    assert {(f["arch"], f["member"], f["consumer"]["function"], f["producer"]["context"]) for f in report["new"]} == {
        ("riscv", "sp", "user_stack_pointer", "exit")}
    for finding in report["new"]:
        functions = [hop["function"] for hop in finding["path"]]
        assert functions[0] == "kprobe_multi_link_prog_run"
        assert functions[-4:] == ["get_perf_callchain", "perf_callchain_kernel", "walk_stackframe",
                                  "user_stack_pointer"]


def test_removing_a_read_reports_it_fixed_and_line_shifts_change_nothing(tree: Path, db: Path) -> None:
    status, report = check_json(tree, db, str(PATCHES / "arm64-perf-reg-value-drops-sp-read.patch"), "--arch", "arm64")
    assert status == 0 and report["new"] == []
    assert {(f["member"], f["consumer"]["function"], f["consumer"]["line"]) for f in report["fixed"]} == {
        ("sp", "perf_reg_value", 67)}
    assert report["counts"]["unchanged"] > 0


def test_comment_and_whitespace_changes_add_nothing(tree: Path, db: Path) -> None:
    status, report = check_json(tree, db, str(PATCHES / "x86-ftrace-comment-and-whitespace.patch"), "--arch", "x86")
    assert (status, report["audited"], report["new"], report["fixed"]) == (0, ["x86"], [], [])


def test_a_patch_to_an_unrelated_driver_needs_no_audit(tree: Path, db: Path) -> None:
    status, report = check_json(tree, db, str(PATCHES / "leds-gpio-unrelated-driver.patch"), "--arch", "arm64,x86")
    assert (status, report["audited"], report["counts"]["new"], report["counts"]["fixed"]) == (0, [], 0, 0)
    assert report["counts"]["unchanged"] > 0


def outcome(result: CheckResult) -> tuple[set[str], set[str], int]:
    return fingerprints(result.comparison.new), fingerprints(result.comparison.fixed), result.comparison.unchanged


@pytest.mark.parametrize("patch", ["x86-partial-regs-drops-cs.patch", "arm64-kprobe-multi-reads-x19.patch",
                                   "arm64-perf-reg-value-drops-sp-read.patch",
                                   "x86-ftrace-comment-and-whitespace.patch", "perf-core-regs-intr-guard.patch",
                                   "kprobe-multi-poisons-its-per-cpu-regs.patch"])
def test_checking_only_the_seeds_a_patch_can_change_finds_what_checking_every_seed_finds(tree: Path, db: Path,
                                                                                          patch: str) -> None:
    patched = apply_changes(tree, parse_patch((PATCHES / patch).read_bytes(), patch))
    incremental = check_patch(tree, db, patched, ["arm64", "x86"])
    full = check_patch(tree, db, patched, ["arm64", "x86"], full=True)
    assert outcome(incremental) == outcome(full)
    assert full.selection is not None and not full.selection.kept
    # the seeds checked again found what a full check finds, to the line (helper walks taken over included)
    assert incremental.selection is not None and incremental.scratch is not None and full.scratch is not None
    run = incremental.selection.run  # an arch missing from it had every seed checked again
    assert sorted(map(json.dumps, incremental.scratch["findings"])) == sorted(
        json.dumps(finding) for finding in full.scratch["findings"]
        if source_key(finding["source"]) in run.get(finding["arch"], {source_key(finding["source"])}))


def test_a_change_inside_one_function_rechecks_only_the_seeds_that_reach_it(tree: Path, db: Path) -> None:
    """The x19 read is added in kernel/trace/bpf_trace.c, a file every arch builds: the seeds in that file and
    those whose walks entered a function it changes are checked again, the others keep their findings, and only
    arm64 gains one (x86's frame has no regs[19])."""
    patch = "arm64-kprobe-multi-reads-x19.patch"
    result = check_patch(tree, db, apply_changes(tree, parse_patch((PATCHES / patch).read_bytes(), patch)),
                         ["arm64", "x86"])
    assert result.selection is not None
    for arch in ("arm64", "x86"):
        rechecked, kept = result.selection.run[arch], result.selection.kept[arch]
        assert rechecked and kept
        assert not any(file == "kernel/trace/bpf_trace.c" for _rule, _function, file, _line in kept)
    assert {f["arch"] for f in result.comparison.new} == {"arm64"}


def test_the_tree_audit_is_reused_only_while_this_code_made_it(tree: Path, db: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkout newer than the audit keeps the version number: the audit says which code made it."""
    said: list[str] = []
    assert tree_audit(db, open_tree(tree), ["x86"], said.append)["findings"]
    assert said == ["reusing the audit of the tree"]
    monkeypatch.setattr(audit_run, "code_hash", lambda: "other code")
    monkeypatch.setattr(patch_run, "audit_database", lambda *_args, **_kwargs: {"audited": "again"})
    said.clear()
    assert tree_audit(db, open_tree(tree), ["x86"], said.append) == {"audited": "again"}
    assert said == ["auditing the tree"]


def tree_state(tree: Path) -> str:
    """Every file's size, mtime and inode, and the content of the file the bad patches name."""
    digest = hashlib.sha256((tree / FTRACE_H).read_bytes())
    for directory, _dirs, files in sorted(os.walk(tree)):
        for name in sorted(files):
            stat = os.lstat(os.path.join(directory, name))
            digest.update(f"{directory}/{name}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}\n".encode())
    return digest.hexdigest()


@pytest.mark.parametrize(("patch", "message"), [
    ("malformed-short-hunk.patch", "malformed patch: Hunk is shorter than expected"),
    ("does-not-apply.patch", f"{FTRACE_H}: hunk #1 (@@ -58,7 +58,6 @@) does not apply"),
    ("escapes-the-tree.patch", "a/../linux-7.3/arch/x86/include/asm/ftrace.h: path escapes the tree"),
])
def test_unusable_patches_exit_2_with_one_line_and_change_nothing(tree: Path, db: Path, patch: str,
                                                                   message: str) -> None:
    before = (tree_state(tree), hashlib.sha256(db.read_bytes()).hexdigest())
    result = run_check(tree, db, str(PATCHES / patch), "--arch", "x86")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"regaudit: error: {PATCHES / patch}: {message}")
    assert result.stderr.count("\n") == 1
    assert (tree_state(tree), hashlib.sha256(db.read_bytes()).hexdigest()) == before


def git(git_dir: Path, tree: Path, *arguments: str, stdin: bytes | None = None) -> None:
    """git with its repository outside the tree: only the index and objects in `git_dir` are written."""
    environment = {**os.environ, "GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(tree), "GIT_AUTHOR_NAME": "t",
                   "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
                   "GIT_COMMITTER_EMAIL": "t@example.org"}
    subprocess.run(["git", *arguments], cwd=tree, env=environment, input=stdin, check=True, capture_output=True)


@pytest.fixture
def repository(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository whose work tree is the real tree, tracking only ftrace.h: commit `base` is the file as
    the tree has it, `patched` the file with x86-partial-regs-drops-cs.patch applied (through the index)."""
    git_dir = tmp_path / "repo.git"
    git(git_dir, tree, "init", "-q")
    git(git_dir, tree, "add", "--force", FTRACE_H)
    git(git_dir, tree, "commit", "-q", "-m", "base")
    git(git_dir, tree, "tag", "base")
    git(git_dir, tree, "apply", "--cached", stdin=(PATCHES / "x86-partial-regs-drops-cs.patch").read_bytes())
    git(git_dir, tree, "commit", "-q", "-m", "patched")
    git(git_dir, tree, "tag", "patched")
    monkeypatch.setenv("GIT_DIR", str(git_dir))
    monkeypatch.setenv("GIT_WORK_TREE", str(tree))
    return git_dir


def test_a_git_range_is_checked_like_its_patch(tree: Path, db: Path, repository: Path,
                                               x86_drops_cs: CheckResult) -> None:
    status, report = check_json(tree, db, "--git", "base..patched", "--arch", "x86")
    assert status == 1
    assert fingerprints(report["new"]) == fingerprints(x86_drops_cs.comparison.new)
    assert fingerprints(report["fixed"]) == fingerprints(x86_drops_cs.comparison.fixed)


def test_a_range_the_work_tree_already_holds_is_checked_against_its_base(tree: Path, db: Path, repository: Path,
                                                                         x86_drops_cs: CheckResult) -> None:
    """The work tree holds `base`, the head of patched..base: the scratch tree gets `patched` as the base."""
    status, report = check_json(tree, db, "--git", "patched..base", "--arch", "x86")
    assert status == (1 if report["new"] else 0)
    assert fingerprints(report["fixed"]) == fingerprints(x86_drops_cs.comparison.new)
    assert fingerprints(report["new"]) == fingerprints(x86_drops_cs.comparison.fixed)


def test_a_bad_range_is_one_line_and_exit_2(tree: Path, db: Path, repository: Path) -> None:
    result = run_check(tree, db, "--git", "base..nosuchref", "--arch", "x86")
    assert result.exit_code == 2 and result.stderr.startswith("regaudit: error: --git base..nosuchref: ")
    assert result.stderr.count("\n") == 1
