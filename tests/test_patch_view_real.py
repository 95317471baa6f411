"""The sparse view `regaudit check` audits, on the real 7.3 tree: with arch/x86/include/asm/ftrace.h patched, the
tree's readers find through the view's links what they find in the tree itself (the Kconfig files and symbols of
every arch, the Makefiles' `obj-$(CONFIG_X)` lines, the arch include headers), and the walk finds in the tree what
`Path.rglob` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from kernel_trees import kernel_tree

from regaudit.arch.kconfig import arch_capabilities, foreign_symbols, list_arches
from regaudit.arch.makefiles import build_symbols
from regaudit.flow.link import program_for
from regaudit.flow.register_reads import _enumerator
from regaudit.patch.diffs import parse_patch
from regaudit.patch.overlay import apply_changes, materialise
from regaudit.tree import files_below, open_tree, walk_sources

pytestmark = pytest.mark.slow
PATCH = Path(__file__).parent / "fixtures" / "patches" / "x86-partial-regs-drops-cs.patch"


@pytest.fixture(scope="module")
def tree() -> Path:
    return kernel_tree("7.3")


@pytest.fixture(scope="module")
def view(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    patched = apply_changes(tree, parse_patch(PATCH.read_bytes(), PATCH.name))
    assert patched.touched == ["arch/x86/include/asm/ftrace.h"]
    return materialise(tree, patched, tmp_path_factory.mktemp("view") / tree.name)


def below(root: Path, directory: str, pattern: str) -> list[str]:
    return [path.relative_to(root).as_posix() for path in files_below(root / directory, pattern)]


def test_the_view_is_a_few_hundred_links_and_the_touched_file(tree: Path, view: Path) -> None:
    ftrace = view / "arch" / "x86" / "include" / "asm" / "ftrace.h"
    assert not ftrace.is_symlink() and ftrace.read_bytes() != (tree / ftrace.relative_to(view)).read_bytes()
    assert (view / "kernel").is_symlink() and (view / "arch" / "arm64").is_symlink()
    assert len(list(view.rglob("*"))) < 1000


def test_kconfig_files_and_symbols_are_the_trees(tree: Path, view: Path) -> None:
    assert list_arches(view) == list_arches(tree)
    for arch in list_arches(tree):
        assert below(view, f"arch/{arch}", "Kconfig*") == below(tree, f"arch/{arch}", "Kconfig*")
    assert below(tree, "arch/x86", "Kconfig*") == [
        path.relative_to(tree).as_posix() for path in sorted((tree / "arch" / "x86").rglob("Kconfig*"))]
    assert foreign_symbols(view, "x86") == foreign_symbols(tree, "x86") and "ARM64" in foreign_symbols(view, "x86")
    assert arch_capabilities(view, "x86") == arch_capabilities(tree, "x86")  # entries name tree-relative files


def test_makefile_obj_lines_are_the_trees(tree: Path, view: Path) -> None:
    sources = [source.path for source in walk_sources(open_tree(tree))[0] if source.path.endswith(".c")]
    in_tree, in_view = build_symbols(tree), build_symbols(view)
    assert [in_view[path] for path in sources] == [in_tree[path] for path in sources]
    assert in_view["kernel/bpf/stackmap.c"][0] == frozenset({"BPF"})


def test_arch_include_headers_are_the_trees(tree: Path, view: Path) -> None:
    headers = below(tree, "arch/x86/include", "*.h")
    assert headers == [path.relative_to(tree).as_posix() for path in sorted((tree / "arch/x86/include").rglob("*.h"))]
    assert below(view, "arch/x86/include", "*.h") == headers
    assert "arch/x86/include/uapi/asm/perf_regs.h" in headers
    assert _enumerator(view, "x86", "PERF_REG_X86_CS") == _enumerator(tree, "x86", "PERF_REG_X86_CS") is not None
    generic = below(tree, "include/asm-generic", "*.h")
    assert program_for(view, "x86", generic) == program_for(tree, "x86", generic)
