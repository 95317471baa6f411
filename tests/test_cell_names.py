"""How memory cells and the member paths of a changed function are named, so that `regaudit check` re-runs a
walk that filled a cell only when a changed function may read that cell (`regaudit.facts.cell_names`)."""

from __future__ import annotations

import pytest

from regaudit.facts.cell_names import member_words, touches


@pytest.mark.parametrize(("member", "declared", "words"), [
    ("ip", "struct pt_regs *", {"pt_regs.ip"}),  # regs->ip of `struct pt_regs *regs`
    ("regs[19]", "const struct pt_regs *", {"pt_regs.regs"}),  # a constant index names no variable
    ("regs[i]", "struct pt_regs *", {"pt_regs.regs", "i"}),  # a variable index is named as itself
    ("ctx", "union bpf_attr *", {"bpf_attr.ctx"}),
    ("regs_intr.regs", "struct perf_sample_data *", {"regs_intr", "regs"}),  # nested: innermost struct unknown
    ("a.regs->cs", "struct holder *", {"a", "regs", "cs"}),  # through a pointer held in a field
    ("ip", "pt_regs_t *", {"ip"}),  # a typedef: the declaration does not spell the struct
    ("ip", None, {"ip"}),  # not declared in the function: a global, or a macro parameter
])
def test_a_member_path_names_its_field_by_struct_only_when_the_declaration_spells_it(
        member: str, declared: str | None, words: set[str]) -> None:
    assert member_words(member, declared) == words


@pytest.mark.parametrize(("cells", "words", "touched"), [
    ({"perf_regs.regs"}, {"pt_regs.regs"}, False),  # arm64's pt_regs.regs[19] is not perf_regs.regs
    ({"perf_regs.regs"}, {"perf_regs.regs"}, True),
    ({"perf_regs.regs"}, {"regs"}, True),  # the change names the field without its struct
    ({"regs"}, {"pt_regs.regs"}, True),  # the cell's struct is unknown
    ({"bpf_pt_regs"}, {"bpf_pt_regs"}, True),  # a per-CPU variable named by a changed function
    ({"bpf_pt_regs"}, {"ip", "pt_regs.sp"}, False),
    (set(), {"regs"}, False),
])
def test_a_cell_is_touched_by_its_name_or_its_field_named_without_a_struct(
        cells: set[str], words: set[str], touched: bool) -> None:
    assert touches(cells, words) is touched
