"""The link stage on a fixture tree whose C files carry the expected edges as `// link` comments.

tests/fixtures/link/tree/kernel/callchain.c is the specification: each `// link ARCH: KIND FILE:NAME
[if GUARD]` line names an edge the call on the next code line must have on ARCH (`none`: no edge).
The test compares the exact set of edges the link stage wrote for every annotated file.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from regaudit.errors import BadInput
from regaudit.facts.link_facts import Binding, current_links, edges_of
from regaudit.facts.store import FactStore
from regaudit.flow.link import StructNames, link_database
from regaudit.index import index_tree

FIXTURE = Path(__file__).parent / "fixtures" / "link" / "tree"
ARCHES = ["x86", "arm64"]
_SPEC = re.compile(
    r"//\s*link (?P<arch>\w+): (?:none|(?P<kind>\w+) (?P<file>\S+):(?P<name>\w+)(?: if (?P<guard>.+))?)$"
)

Edge = tuple[str, str, int, str, str, str, str]  # arch, call file, call line, kind, callee file, callee, condition


@pytest.fixture(scope="module")
def linked_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("link") / "facts.db"
    index_tree(FIXTURE, db, prefilter="all")
    link_database(db, FIXTURE, ARCHES)
    return db


def expected_edges(relative: str) -> tuple[set[Edge], set[tuple[str, int]]]:
    """The edges the `// link` comments of one fixture file promise, and the (arch, line) pairs they cover."""
    edges: set[Edge] = set()
    pending: list[re.Match[str]] = []
    covered: set[tuple[str, int]] = set()
    for number, line in enumerate((FIXTURE / relative).read_text().splitlines(), start=1):
        match = _SPEC.search(line.strip())
        if match:
            pending.append(match)
        elif pending and line.strip() and not line.strip().startswith("//"):
            for spec in pending:
                covered.add((spec["arch"], number))
                if spec["kind"]:
                    edges.add((spec["arch"], relative, number, spec["kind"], spec["file"], spec["name"],
                               spec["guard"] or ""))
            pending = []
    return edges, covered


def actual_edges(db: Path, relative: str) -> set[Edge]:
    with sqlite3.connect(db) as conn:
        return {
            (e.arch, e.call_file, e.call_line, e.kind, e.callee_file, e.callee, e.condition)
            for arch in ARCHES
            for e in edges_of(conn, arch)
            if e.call_file == relative
        }


def test_fixture_edges_match_the_spec_exactly(linked_db: Path) -> None:
    expected, covered = expected_edges("kernel/callchain.c")
    assert {arch for arch, _ in covered} == set(ARCHES), "the spec must cover both arches"
    actual = actual_edges(linked_db, "kernel/callchain.c")
    missing = "\n".join(f"  missing    {edge}" for edge in sorted(expected - actual))
    unexpected = "\n".join(f"  unexpected {edge}" for edge in sorted(actual - expected))
    assert actual == expected, f"edges differ from the // link spec:\n{missing}\n{unexpected}"


def test_every_spec_kind_is_exercised() -> None:
    expected, _ = expected_edges("kernel/callchain.c")
    assert {edge[3] for edge in expected} == {"direct", "macro", "weak", "pointer"}
    assert any(edge[6] for edge in expected), "an open guard must be kept on some edge"


def test_link_run_is_recorded_per_arch(linked_db: Path) -> None:
    with sqlite3.connect(linked_db) as conn:
        (run_id, finished) = conn.execute("SELECT id, finished FROM runs WHERE stage = 'link'").fetchone()
        summary = conn.execute("SELECT arch, run_id, calls, resolved_calls, edges FROM link_arches ORDER BY arch")
        rows = summary.fetchall()
    assert finished is not None
    expected, _ = expected_edges("kernel/callchain.c")
    per_arch = {arch: sum(edge[0] == arch for edge in expected) for arch in ARCHES}
    # 11 calls in walk() on each arch; shadowed() and not_defined_anywhere() stay unresolved.
    assert rows == [("arm64", run_id, 11, 9, per_arch["arm64"]), ("x86", run_id, 11, 9, per_arch["x86"])]


def test_relinking_one_arch_replaces_only_its_edges(linked_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.db"
    db.write_bytes(linked_db.read_bytes())
    before = actual_edges(db, "kernel/callchain.c")
    result = link_database(db, FIXTURE, ["x86"])
    assert [arch.arch for arch in result.arches] == ["x86"]
    assert actual_edges(db, "kernel/callchain.c") == before


def edge_indexes(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                                 "AND tbl_name = 'edges'")}


def test_edges_linked_anew_are_indexed_once_the_link_is_published(linked_db: Path, tmp_path: Path) -> None:
    # An arch linked anew inserts its edges with the indexes dropped (FactStore.defer_indexes); publish
    # builds them again, on a first link and on a relink that replaces one arch's edges alike.
    db = tmp_path / "copy.db"
    db.write_bytes(linked_db.read_bytes())
    link_database(db, FIXTURE, ["x86"])
    assert edge_indexes(linked_db) == edge_indexes(db) == {"edges_call", "edges_caller", "edges_callee"}


def test_a_database_without_an_index_run_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    FactStore(db).publish()  # the schema, but no index run
    with pytest.raises(BadInput):
        link_database(db, FIXTURE, ARCHES)


def test_reindexing_a_changed_file_makes_the_edges_stale(tmp_path: Path) -> None:
    tree = shutil.copytree(FIXTURE, tmp_path / "tree")
    db = tmp_path / "facts.db"
    index_tree(tree, db, prefilter="all")
    link_database(db, tree, ARCHES)
    with sqlite3.connect(db) as conn:
        assert current_links(conn) == ["arm64", "x86"]
    with (tree / "kernel" / "callchain.c").open("a") as source:
        source.write("\nint added(void) { return 0; }\n")
    index_tree(tree, db, prefilter="all")
    with sqlite3.connect(db) as conn:
        assert current_links(conn) == []


def test_without_arches_every_arch_of_the_tree_with_frame_rules_is_linked(linked_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.db"
    db.write_bytes(linked_db.read_bytes())
    assert [arch.arch for arch in link_database(db, FIXTURE, None).arches] == ["arm64", "x86"]


def test_an_arch_the_tree_does_not_have_is_refused(linked_db: Path) -> None:
    with pytest.raises(BadInput, match="no arch sparc"):
        link_database(linked_db, FIXTURE, ["sparc"])


def test_struct_names_follow_typedefs_and_nested_members_and_stop_on_cycles() -> None:
    names = StructNames(
        {"probe_ops_t": "struct probe_ops", "psw_t": "struct", "a_t": "b_t", "b_t": "a_t"},
        {("probe_link", "ops"): "struct probe_ops"},
    )
    assert names.of_type("const probe_ops_t *") == "probe_ops"
    assert names.of_type("psw_t") == "psw_t"  # a typedef of an anonymous struct names itself
    assert names.of_type("a_t *") is None
    nested = Binding("kernel/handlers.c", 17, "struct probe_link *", "ops.handler", "nested_handler", "")
    assert names.holding(nested) == "probe_ops"
    unknown_member = Binding("kernel/handlers.c", 17, "struct probe_link *", "other.handler", "nested_handler", "")
    assert names.holding(unknown_member) is None
