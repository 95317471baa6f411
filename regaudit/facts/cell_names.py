"""How a memory cell is named where a function could read it: the words a walk's cells and a changed function
are compared by (`regaudit check` re-runs a walk that filled a cell a changed function may read).

A field cell is named `tag.field` by the innermost struct holding the field when that is known, else by the
field alone; a global or per-CPU variable by its name. A changed function names a field through a member
path: `v->f` of a variable declared `struct T *v` in it can read only cells of T's field f (`T.f`); any
other path (nested, through `->` again, or a variable whose struct the declaration does not spell) names
its fields alone, which match a cell of that field in any struct. A variable the function itself declares
is no cell another function filled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

STRUCT_TAG = re.compile(r"\b(?:struct|union)\s+(\w+)")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_ONE_FIELD = re.compile(r"([A-Za-z_]\w*)((?:\[[^\]]*\])*)")  # `f` or `f[i]`: one field, maybe indexed


def field_word(tag: str | None, field: str) -> str:
    """A field cell's name: `tag.field`, or `field` when its struct is not known."""
    return f"{tag}.{field}" if tag else field


def member_words(member: str, declared_type: str | None) -> set[str]:
    """What a member path of a variable declared with `declared_type` (None: not declared in the function)
    names: its fields, the one field of a simple path typed by the struct the declaration spells, and the
    variables of its array indexes."""
    simple = _ONE_FIELD.fullmatch(member)
    tag = STRUCT_TAG.search(declared_type or "")
    if simple is None or tag is None:
        return set(_IDENTIFIER.findall(member))
    return {field_word(tag[1], simple[1]), *_IDENTIFIER.findall(simple[2])}


def touches(cells: Iterable[str], words: set[str]) -> bool:
    """Whether a function naming `words` may read one of `cells`: the same name, or a field named without its
    struct on either side."""
    fields = {word.rpartition(".")[2] for word in words}
    for cell in cells:
        _tag, typed, field = cell.rpartition(".")
        if (cell in words or field in words) if typed else cell in fields:
            return True
    return False
