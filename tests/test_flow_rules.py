"""rules/sources.toml and rules/bridges.toml: their schema, what they hold per kernel series, and that
their evidence matches the real trees.

Schema failures use small inline TOML written to tmp_path; each must name the file and the key.
The real-file tests assert specific entries, with the kernel line that justifies each in a comment.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pytest
from kernel_trees import SERIES, kernel_tree

from regaudit.errors import RuleDataError
from regaudit.resources import data_dir
from regaudit.ruleset.evidence import check_evidence, format_drift
from regaudit.ruleset.flow_rules import Bridge, Source, load_bridges, load_sources
from regaudit.ruleset.load import load_rule_file
from regaudit.tree import read_version

Record = TypeVar("Record", Source, Bridge)

EVIDENCE = 'evidence = [{ at = "kernel/x.c:1", expect = "x" }]'

GOOD_SOURCE = f"""
kernels = ["7.3"]
[[source]]
name = "partial"
kind = "call_result"
function = "ftrace_partial_regs"
producer = "ftrace_partial_regs"
context = "both"
context_from = "the caller's fprobe handler"
{EVIDENCE}
"""

GOOD_BRIDGE = f"""
kernels = ["7.3"]
[[bridge]]
name = "run"
kind = "reads_any"
function = "bpf_prog_run"
position = 1
{EVIDENCE}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


def by_name(records: list[Record]) -> dict[str, Record]:
    return {record.name: record for record in records}


# --- schema ---------------------------------------------------------------------------------------


def test_minimal_files_load(tmp_path: Path) -> None:
    [source] = load_sources("7.3.4", write(tmp_path, GOOD_SOURCE))
    assert (source.kind, source.function, source.position, source.kernels) == (
        "call_result",
        "ftrace_partial_regs",
        None,
        ("7.3",),
    )
    [bridge] = load_bridges("7.3", write(tmp_path, GOOD_BRIDGE))
    assert (bridge.kind, bridge.function, bridge.position) == ("reads_any", "bpf_prog_run", 1)


def test_entries_for_other_kernels_are_left_out(tmp_path: Path) -> None:
    assert load_sources("6.1", write(tmp_path, GOOD_SOURCE)) == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('kind = "call_result"', 'kind = "return_value"'), "source[0].kind: 'return_value' is not one of"),
        (('producer = "ftrace_partial_regs"', 'producer = "magic"'), "source[0].producer: 'magic' is not one of"),
        (('context = "both"', 'context = "return"'), "source[0].context: 'return' is not one of"),
        (('context_from = "the caller\'s fprobe handler"\n', ""), "source[0].context_from: missing"),
        (('function = "ftrace_partial_regs"', 'function = "ftrace_partial_regs"\nposition = 1'),
         "source[0].position: not allowed for kind call_result"),
        (('kind = "call_result"', 'kind = "call_argument"'), "source[0].position: missing"),
        (('kind = "call_result"', 'kind = "parameter"'), "source[0].struct: missing"),
        (('function = "ftrace_partial_regs"', 'function = "ftrace_partial_regs"\nregs = 1'), "unknown key(s) regs"),
        ((EVIDENCE, 'evidence = []'), "source[0].evidence: missing"),
        (('kernels = ["7.3"]', ""), "source[0].kernels: missing here and at the top level"),
        (('name = "partial"', 'name = "not an id"'), "source[0].name: 'not an id' is not a plain identifier"),
    ],
)  # fmt: skip
def test_source_schema_violations_name_the_file_and_key(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    path = write(tmp_path, GOOD_SOURCE.replace(*edit))
    with pytest.raises(RuleDataError) as raised:
        load_sources("7.3", path)
    assert str(raised.value).startswith(str(path))
    assert message in str(raised.value)


def test_source_names_are_unique(tmp_path: Path) -> None:
    twice = GOOD_SOURCE + GOOD_SOURCE.replace('kernels = ["7.3"]', "")
    with pytest.raises(RuleDataError, match=r"source\[1\]\.name: 'partial' is already the name of source\[0\]"):
        load_sources("7.3", write(tmp_path, twice))


def test_parameter_source_needs_struct_field_and_position(tmp_path: Path) -> None:
    text = GOOD_SOURCE.replace('function = "ftrace_partial_regs"', 'struct = "fprobe"\nfield = "entry_handler"')
    text = text.replace('kind = "call_result"', 'kind = "parameter"')
    with pytest.raises(RuleDataError, match=r"source\[0\]\.position: missing"):
        load_sources("7.3", write(tmp_path, text))
    [source] = load_sources(
        "7.3", write(tmp_path, text.replace('field = "entry_handler"', 'field = "x"\nposition = 3'))
    )
    assert (source.struct, source.field, source.position) == ("fprobe", "x", 3)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('kind = "reads_any"', 'kind = "reads_some"'), "bridge[0].kind: 'reads_some' is not one of"),
        (("position = 1", "position = -1"), "bridge[0].position: -1 is not an argument index"),
        (("position = 1", "position = true"), "bridge[0].position: True is not an argument index"),
        (("position = 1\n", ""), "bridge[0].position: missing"),
        (('kind = "reads_any"', 'kind = "calls_helpers"'), "bridge[0].program_type: missing"),
        (('kind = "reads_any"', 'kind = "reads_by_table"'), "bridge[0].arch: missing"),
        (('kind = "reads_any"', 'kind = "dynamic_read"\narch = "x86"'), "bridge[0].bound: missing"),
        (("position = 1", 'position = 1\nbound = "MAX_REG_OFFSET"'), "bridge[0].bound: not allowed for kind reads_any"),
        (("position = 1", 'position = 1\nprogram_type = "kprobe"'), "not allowed for kind reads_any"),
    ],
)
def test_bridge_schema_violations_name_the_file_and_key(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    path = write(tmp_path, GOOD_BRIDGE.replace(*edit))
    with pytest.raises(RuleDataError) as raised:
        load_bridges("7.3", path)
    assert str(raised.value).startswith(str(path))
    assert message in str(raised.value)


def test_calls_helpers_bridge_names_a_program_type_and_proto_function(tmp_path: Path) -> None:
    text = GOOD_BRIDGE.replace(
        'kind = "reads_any"', 'kind = "calls_helpers"\nproto_function = "kprobe_prog_func_proto"'
    )
    with pytest.raises(RuleDataError, match="is not a plain identifier"):
        load_bridges("7.3", write(tmp_path, text + 'program_type = "kprobe"\n'))
    [bridge] = load_bridges("7.3", write(tmp_path, text + 'program_type = "BPF_PROG_TYPE_KPROBE"\n'))
    assert (bridge.program_type, bridge.proto_function) == ("BPF_PROG_TYPE_KPROBE", "kprobe_prog_func_proto")


def test_shared_conventions_are_checked_too(tmp_path: Path) -> None:
    text = GOOD_SOURCE.replace(EVIDENCE, 'evidence = [{ at = "kernel/x.c", expect = "x" }]')
    with pytest.raises(RuleDataError, match=r'source\[0\]\.evidence\[0\]\.at: .* is not "path:line"'):
        load_sources("7.3", write(tmp_path, text))


# --- the real files ---------------------------------------------------------------------------------


def test_sources_on_6_1_are_full_frames_only() -> None:
    sources = by_name(load_sources("6.1"))
    # No ftrace_partial_regs / ftrace_fill_perf_regs in 6.1 (grep of the tree: no definition).
    assert not any(source.producer in ("ftrace_partial_regs", "ftrace_fill_perf_regs") for source in sources.values())
    # include/linux/fprobe.h:37-38 void (*entry_handler)(fp, entry_ip, struct pt_regs *regs, entry_data);
    # kernel/trace/fprobe.c:130 fp->ops.flags |= FTRACE_OPS_FL_SAVE_REGS;
    entry = sources["fprobe_entry_handler_regs_6_1"]
    assert (entry.kind, entry.struct, entry.field, entry.position) == ("parameter", "fprobe", "entry_handler", 2)
    assert (entry.producer, entry.context) == ("save_regs", "entry")
    # kernel/trace/fprobe.c:90 fp->exit_handler(fp, fpr->entry_ip, regs, ...) inside the rethook handler
    assert sources["fprobe_exit_handler_regs_6_1"].producer == "rethook"
    # include/linux/rethook.h:37 void (__rcu *handler) (struct rethook_node *, void *, struct pt_regs *);
    assert sources["rethook_handler_regs_6_1"].position == 2


def test_sources_on_6_12() -> None:
    sources = by_name(load_sources("6.12"))
    # include/linux/fprobe.h:12-13 fprobe_entry_cb(fp, entry_ip, ret_ip, struct pt_regs *regs, entry_data)
    entry = sources["fprobe_entry_handler_regs"]
    assert (entry.position, entry.producer) == (3, "save_regs")
    assert sources["fprobe_exit_handler_regs"].producer == "rethook"
    # include/linux/ftrace.h:197 ftrace_partial_regs is defined but has no caller in 6.12
    partial = sources["ftrace_partial_regs_result"]
    assert partial.caller is None and "no caller" in (partial.notes or "")
    # include/linux/rethook.h:36 handler(node, data, unsigned long, struct pt_regs *)
    assert sources["rethook_handler_regs"].position == 3
    assert "kprobe_multi_prog_run_regs" not in sources


def test_sources_on_7_3() -> None:
    sources = by_name(load_sources("7.3"))
    # 7.3 fprobe handlers take struct ftrace_regs * (include/linux/fprobe.h:15): no pt_regs parameter source.
    assert not any(source.struct == "fprobe" for source in sources.values())
    # kernel/trace/bpf_trace.c:2625 regs = ftrace_partial_regs(fregs, bpf_kprobe_multi_pt_regs_ptr());
    multi = sources["kprobe_multi_prog_run_regs"]
    assert (multi.function, multi.caller, multi.context) == (
        "ftrace_partial_regs",
        "kprobe_multi_link_prog_run",
        "both",
    )
    # kernel/trace/trace_fprobe.c:471 / :506 regs = ftrace_fill_perf_regs(fregs, regs);
    assert (sources["fentry_perf_func_regs"].caller, sources["fentry_perf_func_regs"].context) == (
        "fentry_perf_func",
        "entry",
    )
    assert sources["fexit_perf_func_regs"].context == "exit"
    # ftrace_fill_perf_regs(fregs, regs): the buffer is argument 1 (include/linux/ftrace.h:236)
    buffer = sources["ftrace_fill_perf_regs_buffer"]
    assert (buffer.kind, buffer.position) == ("call_argument", 1)
    # arch/x86/kernel/kprobes/ftrace.c:20 struct pt_regs *regs = ftrace_get_regs(fregs); (SAVE_REGS ops)
    assert sources["kprobe_ftrace_handler_regs"].producer == "save_regs"
    # kernel/kprobes.c:2231 rp->handler(ri, regs); in kretprobe_rethook_handler
    assert sources["kretprobe_handler_regs_rethook"].position == 1


@pytest.mark.parametrize("series", SERIES)
def test_every_source_carries_evidence_for_its_series(series: str) -> None:
    for record in [*load_sources(series), *load_bridges(series)]:
        assert record.evidence, f"{record.name} has no evidence item for {series}"


@pytest.mark.parametrize("series", SERIES)
def test_bridges_in_every_series(series: str) -> None:
    bridges = by_name(load_bridges(series))
    # include/linux/filter.h bpf_prog_run(const struct bpf_prog *prog, const void *ctx): ctx is argument 1
    assert (bridges["bpf_prog_run"].kind, bridges["bpf_prog_run"].position) == ("reads_any", 1)
    # kernel/trace/bpf_trace.c kprobe_prog_func_proto: the helper switch, derived by the analyzer
    helpers = bridges["kprobe_prog_helpers"]
    assert (helpers.kind, helpers.program_type, helpers.proto_function) == (
        "calls_helpers",
        "BPF_PROG_TYPE_KPROBE",
        "kprobe_prog_func_proto",
    )
    # arch/x86/kernel/perf_regs.c:20 pt_regs_offset[PERF_REG_X86_MAX]; :60 perf_reg_value
    x86 = bridges["perf_reg_value_x86"]
    assert (x86.kind, x86.arch, x86.table_function, x86.table) == (
        "reads_by_table",
        "x86",
        "perf_reg_value",
        "pt_regs_offset",
    )
    assert bridges["perf_reg_value_arm64"].arch == "arm64"
    # arch/x86/include/asm/ptrace.h: #define MAX_REG_OFFSET (offsetof(struct pt_regs, ss))
    assert (bridges["regs_get_register_x86"].kind, bridges["regs_get_register_x86"].bound) == (
        "dynamic_read",
        "MAX_REG_OFFSET",
    )
    # kernel/trace/bpf_trace.c:173 trace_call_bpf_faultable exists in 7.3 only
    assert ("trace_call_bpf_faultable" in bridges) == (series == "7.3")


@pytest.mark.parametrize("series", SERIES)
def test_flow_rules_match_the_real_tree(series: str) -> None:
    tree = kernel_tree(series)
    files = [load_rule_file(data_dir("rules") / name) for name in ("sources.toml", "bridges.toml")]
    drifts = check_evidence(tree, read_version(tree / "Makefile"), files)
    assert not drifts, f"flow rules disagree with linux-{series}:\n" + "\n".join(map(format_drift, drifts))
