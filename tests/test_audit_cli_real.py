"""`regaudit audit` and `regaudit report` on the real 7.3 tree (x86 only, to stay quick): the JSON contract,
exit codes, --config, and the report read back from the database being the audit's.

Citations (Linux 7.3.4): kernel/trace/bpf_trace.c:1353-1354 offer `bpf_override_return_proto` to kprobe
programs only under `#ifdef CONFIG_BPF_KPROBE_OVERRIDE`; its helper writes the frame's ax and ip
(arch/x86/include/asm/ptrace.h:197 `regs->ax = rc;`, arch/x86/lib/error-inject.c:23 `regs->ip = ...`).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from foreground import started
from kernel_trees import index_copy, kernel_tree, private_db

from regaudit.audit import run as audit_run
from regaudit.cli import main
from regaudit.errors import BadInput
from regaudit.flow.link import link_database

# An x86_64 tracing build as a distribution configures it (the symbols the checked code tests).
TRACING_BUILD = ("X86_64", "64BIT", "X86", "MMU", "SMP", "MODULES", "KALLSYMS", "FTRACE", "TRACING",
                 "FUNCTION_TRACER", "FUNCTION_GRAPH_TRACER", "DYNAMIC_FTRACE", "DYNAMIC_FTRACE_WITH_ARGS",
                 "DYNAMIC_FTRACE_WITH_REGS", "HAVE_DYNAMIC_FTRACE_WITH_ARGS", "HAVE_DYNAMIC_FTRACE_WITH_REGS",
                 "HAVE_FTRACE_REGS_HAVING_PT_REGS", "FPROBE", "FPROBE_EVENTS", "KPROBES", "KRETPROBES",
                 "KPROBE_EVENTS", "KPROBES_ON_FTRACE", "HAVE_KPROBES_ON_FTRACE", "HAVE_RETHOOK", "RETHOOK",
                 "KRETPROBE_ON_RETHOOK", "BPF", "BPF_SYSCALL", "BPF_EVENTS", "PERF_EVENTS", "HAVE_PERF_EVENTS",
                 "HAVE_PERF_REGS", "HAVE_PERF_USER_STACK_DUMP", "STACKTRACE", "UNWINDER_ORC",
                 "FUNCTION_ERROR_INJECTION", "HAVE_FUNCTION_ERROR_INJECTION", "EVENT_TRACING", "TRACEPOINTS")
CONTRACT_KEYS = {"fingerprint", "arch", "subsystem", "maintainers", "member", "access", "state", "producer",
                 "source", "consumer", "path", "conditions", "via", "mask", "reaches"}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return private_db("7.3", tmp_path_factory)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def audited(db: Path) -> dict:
    result = run("audit", str(kernel_tree("7.3")), "--db", str(db), "--arch", "x86", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_json_follows_the_documented_contract(audited: dict) -> None:
    assert audited["schema"] == "regaudit-audit/1"
    assert audited["tree"]["version"] == "7.3.4" and audited["arches"] == ["x86"]
    assert audited["findings"], "7.3 x86 has findings"
    for finding in audited["findings"]:
        assert set(finding) >= CONTRACT_KEYS
        assert finding["path"][-1]["line"] == finding["consumer"]["line"]
    assert audited["summary"]["findings"] == len(audited["findings"])
    assert {m["arch"] for m in audited["frames"]} == {"x86"}


def test_the_report_of_the_database_is_the_audit(db: Path, audited: dict) -> None:
    result = run("report", str(db), "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.output) == audited


def test_an_audit_of_an_unchanged_tree_is_the_stored_one_unless_fresh(db: Path, audited: dict,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing the stored audit was made from changed (facts, build files, rules, code, arches): it is the
    answer; --fresh runs the stages again, to the same result."""
    audits: list[list[str]] = []
    real = audit_run.audit_database

    def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        audits.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(audit_run, "audit_database", counted)
    tree = str(kernel_tree("7.3"))
    again = run("audit", tree, "--db", str(db), "--arch", "x86", "--format", "json")
    assert (json.loads(again.output), audits) == (audited, [])
    fresh = run("audit", tree, "--db", str(db), "--arch", "x86", "--format", "json", "--fresh")
    assert (json.loads(fresh.output), audits) == (audited, [["x86"]])


def test_a_cold_audit_of_one_arch_indexes_only_that_arch_and_finds_what_the_whole_index_finds(
        audited: dict, tmp_path: Path) -> None:
    """The audit indexes generic code and arch/x86/ only; other arches' C files cannot be in x86's program, so its
    findings, clean entries and frames are those of the x86 audit of the index of every arch (`audited`)."""
    db = tmp_path / "x86.db"
    result = run("audit", str(kernel_tree("7.3")), "--db", str(db), "--arch", "x86", "--format", "json")
    assert result.exit_code == 0, result.output
    scoped = json.loads(result.output)
    with sqlite3.connect(db) as conn:
        arches = {arch for (arch,) in conn.execute("SELECT DISTINCT arch FROM files")}
        sources = conn.execute("SELECT count(*) FROM sources WHERE path LIKE 'arch/%' "
                               "AND path NOT LIKE 'arch/x86/%'").fetchone()
    assert arches == {"generic", "x86"} and sources == (0,)
    for key in ("findings", "clean", "frames"):
        assert scoped[key] == audited[key], key
    assert scoped["findings"]
    with pytest.raises(BadInput, match="indexed without the C files of arm64"):  # not linked from missing facts
        link_database(db, kernel_tree("7.3"), ["arm64"])


def test_fail_on_findings_exits_1(db: Path) -> None:
    result = run("audit", str(kernel_tree("7.3")), "--db", str(db), "--arch", "x86", "--format", "json",
                 "--fail-on-findings")
    assert result.exit_code == 1


def test_a_config_without_kprobe_override_drops_the_return_override_writes(db: Path, audited: dict,
                                                                          tmp_path: Path) -> None:
    def overrides(document: dict) -> list[dict]:
        return [f for f in document["findings"] if any(h["function"] == "bpf_override_return" for h in f["path"])]

    assert overrides(audited), "with every guard open, bpf_override_return's writes are reported"
    assert all("defined(CONFIG_BPF_KPROBE_OVERRIDE)" in f["conditions"] for f in overrides(audited))
    dotconfig = tmp_path / ".config"
    dotconfig.write_text("".join(f"CONFIG_{symbol}=y\n" for symbol in TRACING_BUILD)
                         + "# CONFIG_BPF_KPROBE_OVERRIDE is not set\n")
    result = run("audit", str(kernel_tree("7.3")), "--db", str(db), "--arch", "x86", "--format", "json",
                 "--config", str(dotconfig))
    assert result.exit_code == 0, result.output
    configured = json.loads(result.output)
    assert configured["config"] == str(dotconfig)
    assert configured["findings"], "the rest of the tracing build still has findings"
    assert not overrides(configured)


@pytest.mark.parametrize(("args", "message"), [
    (["--arch", "vax"], "no frame rules or no arch/ directory for vax"),
    (["--config", "/nonexistent/.config"], "cannot read the config file"),
])
def test_bad_input_is_one_line_and_exit_2(db: Path, args: list[str], message: str) -> None:
    before = db.read_bytes()
    result = CliRunner().invoke(main, ["audit", str(kernel_tree("7.3")), "--db", str(db), *args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert db.read_bytes() == before


def test_ctrl_c_while_linking_and_checking_prints_one_line_and_leaves_no_link_and_no_audit(tmp_path: Path) -> None:
    """The audit's stages fork link and check workers and a process beside the link (frame models, helper lists): a
    Ctrl-C reaches them all (the terminal signals the whole group); only regaudit's own line may be printed."""
    db = index_copy("7.3", tmp_path / "linux-7.3.db")
    process = started("audit", str(kernel_tree("7.3")), "--db", str(db), "--format", "json", "-o", os.devnull,
                      "-j", "2")
    try:
        process.wait(timeout=2.5)  # the unchanged index takes ~1 s, linking six arches ~2 s more
        pytest.fail("the audit finished before it could be interrupted")
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
    errors = process.communicate()[1]
    assert process.returncode == 130
    assert errors == "regaudit: interrupted; the database is unchanged\n"
    time.sleep(0.5)
    assert subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True).stdout == b""
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM edges").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM audits").fetchone() == (0,)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
