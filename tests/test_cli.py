"""The command line's contract: every command has help and is documented in the README; errors
are one line with the documented exit status."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from fake_tree import make_tree

from regaudit.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths += command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


@pytest.mark.parametrize("path", command_paths(main), ids=" ".join)
def test_every_command_has_help_and_a_readme_entry(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
    assert f"regaudit {' '.join(path)}" in README, f"README does not document `regaudit {' '.join(path)}`"


def test_link_on_a_small_tree_reports_each_arch(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux", {
        "kernel/a.c": "int helper(struct pt_regs *r) { return r->cs; }\nint caller(struct pt_regs *r) "
                      "{ return helper(r); }\n",
        "arch/x86/Kconfig": "config X86\n\tdef_bool y\n",
    })
    result = CliRunner().invoke(main, ["link", str(tree), "--db", str(tmp_path / "f.db"), "--arch", "x86"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("x86: 1 of 1 calls resolved, 1 edges")


def test_an_unknown_arch_is_one_line_and_exit_2(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "linux", {"kernel/a.c": "int f(struct pt_regs *r) { return 0; }\n"})
    result = CliRunner().invoke(main, ["link", str(tree), "--db", str(tmp_path / "f.db"), "--arch", "vax"])
    assert result.exit_code == 2
    assert result.output.startswith("regaudit: error: ") and result.output.count("\n") == 1
