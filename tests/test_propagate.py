"""Propagation on a fixture tree whose C file is the specification.

tests/fixtures/propagate/kernel/flow.c: `// reach: FRAME MEMBER ACCESS via f -> g` above a code line
promises that the line's access of MEMBER is reached from seed FRAME with a path through f, g (the
access's function last, consecutive repeats folded); `// ok:` lines promise nothing is reached there.
The test compares the exact set of reaches, and checks the unresolved call the frame escapes through.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fake_tree import make_tree

from regaudit.errors import BadInput
from regaudit.flow.link import link_database
from regaudit.flow.propagate import Escape, Reach, Seed, Transform, member_in_frame, propagate
from regaudit.index import index_tree

FIXTURE = Path(__file__).parent / "fixtures" / "propagate" / "kernel" / "flow.c"
SEEDS = [Seed("FRAME", "source", var="regs", line=81), Seed("BUF", buffer="frame_buf"), Seed("PARAM", "walk", param=0),
         Seed("RET", returned_by="other_regs")]
_SPEC = re.compile(r"//\s*reach: (?P<frame>\S+) (?P<member>\S+) (?P<access>\w+) via (?P<path>.+)$")

Promise = tuple[str, int, str, str, tuple[str, ...]]  # frame, line, member, access, function path


@pytest.fixture(scope="module")
def linked_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("propagate")
    files = {"kernel/flow.c": FIXTURE.read_text(), "arch/x86/Kconfig": "config X86\n\tdef_bool y\n"}
    tree = make_tree(root / "tree", files)
    db = root / "facts.db"
    index_tree(tree, db, prefilter="all")
    link_database(db, tree, ["x86"])
    return db


@pytest.fixture(scope="module")
def propagated(linked_db: Path) -> tuple[list[Reach], list[Escape]]:
    return propagate(linked_db, "x86", SEEDS)


def promised() -> set[Promise]:
    promises: set[Promise] = set()
    pending: list[re.Match[str]] = []
    for number, line in enumerate(FIXTURE.read_text().splitlines(), start=1):
        match = _SPEC.search(line.strip())
        if match:
            pending.append(match)
        elif pending and line.strip() and not line.strip().startswith("//"):
            for spec in pending:
                path = tuple(name.strip() for name in spec["path"].split("->"))
                promises.add((spec["frame"], number, spec["member"], spec["access"], path))
            pending = []
    return promises


def folded(reach: Reach) -> tuple[str, ...]:
    names = [hop.function for hop in reach.path] + [reach.function]
    return tuple(name for i, name in enumerate(names) if i == 0 or names[i - 1] != name)


def test_reaches_are_exactly_the_annotated_accesses(propagated: tuple[list[Reach], list[Escape]]) -> None:
    actual = {(r.frame, r.line, r.member, r.access, folded(r)) for r in propagated[0]}
    expected = promised()
    assert actual == expected, f"missing {sorted(expected - actual)}\nunexpected {sorted(actual - expected)}"


def test_a_frame_passed_to_an_unbound_pointer_or_undefined_function_escapes(
    propagated: tuple[list[Reach], list[Escape]],
) -> None:
    escapes = {(e.frame, e.function, e.callee_expr, e.position) for e in propagated[1]}
    assert escapes == {("FRAME", "source", "unknown_hook", 0), ("RET", "source", "ftrace_partial_regs", 1)}


@pytest.mark.parametrize(
    ("arch", "seed", "message"),
    [("x86", Seed("BAD", "source", var="regs", param=0), "exactly one"),
     ("x86", Seed("BAD", "nowhere", var="regs"), "no function nowhere"),
     ("arm64", Seed("BAD", "source", var="regs"), "not linked")],
)
def test_bad_seeds_and_unlinked_arches_are_refused(linked_db: Path, arch: str, seed: Seed, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        propagate(linked_db, arch, [seed])


@pytest.mark.parametrize(
    ("offset", "member", "expected"),
    [("", "cs", "cs"), ("^regs", "regs.cs", "cs"), ("^regs", "pad", None), ("^regs", "regs", "*"),
     ("ip", "x", "ip.x")],
)
def test_member_in_frame_strips_container_and_member_offsets(offset: str, member: str, expected: str | None) -> None:
    assert member_in_frame(offset, member) == expected


@pytest.mark.parametrize(
    ("offset", "transform", "expected"),
    [("", Transform(), ""), ("", Transform("container", "regs"), "^regs"), ("regs", Transform("container", "regs"), ""),
     ("^regs", Transform("member", "regs"), ""), ("^regs", Transform("member", "regs.ip"), "ip"),
     ("^regs", Transform("member", "pad"), None), ("", Transform("member", "ip"), "ip"),
     ("ip", Transform("container", "regs"), None)],
)
def test_transforms_follow_address_of_and_container_of(offset: str, transform: Transform,
                                                       expected: str | None) -> None:
    assert transform.apply(offset) == expected
