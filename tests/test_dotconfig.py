"""A user's .config decides every CONFIG_ guard: `read_dotconfig` reads it the way Kconfig writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from regaudit.arch.config import read_dotconfig
from regaudit.errors import BadInput

DOTCONFIG = """\
#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_FPROBE=y
CONFIG_KPROBES=m
# CONFIG_BPF_KPROBE_OVERRIDE is not set
CONFIG_LOG_BUF_SHIFT=17
CONFIG_DEFAULT_HOSTNAME="(none)"
CONFIG_EXPERT=n
"""


def test_builtin_module_valued_and_unset_symbols(tmp_path: Path) -> None:
    path = tmp_path / ".config"
    path.write_text(DOTCONFIG)
    assert read_dotconfig(path) == {
        "FPROBE": True,
        "KPROBES": True, "KPROBES_MODULE": True,  # =m: IS_ENABLED true, and CONFIG_KPROBES_MODULE is defined
        "BPF_KPROBE_OVERRIDE": False,
        "LOG_BUF_SHIFT": True, "DEFAULT_HOSTNAME": True,  # a value: the symbol is set
        "EXPERT": False,
    }


def test_a_file_without_config_lines_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(BadInput, match=r"not a kernel \.config"):
        read_dotconfig(path)


def test_a_missing_file_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read the config file"):
        read_dotconfig(tmp_path / "missing")
