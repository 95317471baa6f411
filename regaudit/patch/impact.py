"""Which seeds of the tree's audit a patch can change: the incremental part of `regaudit check`.

Owns the comparison of the base database with the scratch one after the touched files were re-indexed,
and the choice, per arch, of the seeds to check again. Every seed's result depends only on what its
scope names (`regaudit.flow.propagate.Scope`, stored with the audit in `seed_scopes`), so a seed is
checked again when
- its source is in a touched file, or it is new (no scope in the base audit);
- a function it analysed changed: its facts differ once line numbers are made relative to the
  function, so a line shift alone changes nothing;
- a name it calls, or a constant or macro its frame oracle read, is defined, undefined or redefined by
  the patch, or a field it calls through gains or loses a binding;
- a changed function names a field or variable of a memory cell the seed filled (it may now read it; the
  names are compared as `regaudit.facts.cell_names` gives them);
- its frame model changed on that arch.
Everything else would invalidate any seed, so the arch is checked whole: a touched file that is not C or
is added or removed, a changed `#define` or `#include` line (guards, constants, which asm-generic headers
an arch sees), BPF helper protos or func_proto functions and `PERF_REG_*` lines (read as text by the
bridges), or a changed struct, typedef or file-scope variable (types decide the memory cells). A function
changed when its facts (lines made relative to it) or its text differ: `return NAME;` is read from the
text. Findings of the seeds not checked again are taken over from the base audit, with its line numbers.
Seeds checked again take over its BPF helper lists and the walks of helper bodies the change cannot alter
(by the same test on each walk's scope), their lines moved by the patch (`regaudit.patch.line_map`).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from regaudit.arch.frames import FrameModel
from regaudit.audit.check import HelperWalk, SeedKey, seed_key, source_key
from regaudit.audit.seeds import SourceSeed
from regaudit.facts import audit_facts, change_facts
from regaudit.facts.cell_names import touches
from regaudit.facts.store import open_existing
from regaudit.flow.bpf_helpers import HelperEntry
from regaudit.flow.propagate import Scope
from regaudit.parse.text_scan import PROTO_TAG
from regaudit.patch.line_map import LineMap
from regaudit.tree import arch_of

T = TypeVar("T")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_CITATIONS = frozenset({"evidence", "member_evidence", "drift", "notes"})
# Text of a file that stages read directly, not through the facts: a difference re-runs every seed.
_TEXT_READ: dict[str, re.Pattern[bytes]] = {
    # guards are evaluated, and the frame oracle's constants read, from #define lines (header text included)
    "a #define": re.compile(rb"^[ \t]*#[ \t]*define\b.*$", re.MULTILINE),
    # asm-generic headers an arch's own header includes (or replaces) decide what its program sees
    "an #include": re.compile(rb"^[ \t]*#[ \t]*include\b.*$", re.MULTILINE),
    # the BPF helper bridges read func_proto functions and helper protos as text
    "a BPF helper proto": re.compile(rb"\bstruct\s+" + PROTO_TAG.encode() + rb"\b[^;{]*(?:\{.*?\n\}|=\s*\{.*?\};)",
                                     re.DOTALL),
    # the perf register table bridges read PERF_REG_* enumerators and the table functions' text
    "a perf register name": re.compile(rb"^.*\bPERF_REG_\w+.*$", re.MULTILINE),
}


@dataclass
class Change:
    """What the patch changed in the facts, by name."""

    functions: set[tuple[str, str]] = field(default_factory=set)  # (file, name) added, removed or changed
    names: set[str] = field(default_factory=set)  # definitions and binding fields whose resolution may differ
    words: set[str] = field(default_factory=set)  # fields and variables the changed functions name
    whole: str = ""  # why every seed must be checked again ('' when the change is local)


@dataclass
class Selection:
    """Per arch, the seeds to check again and the seeds whose base findings stand."""

    run: dict[str, set[SeedKey]] = field(default_factory=dict)
    kept: dict[str, set[SeedKey]] = field(default_factory=dict)


def compare_facts(base_db: Path, scratch_db: Path, contents: dict[str, tuple[bytes | None, bytes | None]]) -> Change:
    """The change between the base database and the scratch one; `contents`: each touched file's bytes before
    and after the patch (None: absent)."""
    change = Change()
    base, scratch = open_existing(base_db).conn, open_existing(scratch_db).conn
    try:
        for path, (old, new) in sorted(contents.items()):
            change.whole = _whole_file_change(base, scratch, path, old, new)
            if change.whole:
                break
            lines = _lines(old), _lines(new)
            _compare_functions(base, scratch, path, lines, change)
            change.names |= {row[0] for row in change_facts.binding_rows(base, path)
                             ^ change_facts.binding_rows(scratch, path)}
    finally:
        base.close()
        scratch.close()
    return change


def _whole_file_change(base: sqlite3.Connection, scratch: sqlite3.Connection, path: str, old: bytes | None,
                       new: bytes | None) -> str:
    """Why the change of this file can alter any seed ('' when its effect is local to its functions)."""
    if not path.endswith((".c", ".h")):
        return f"{path} is not C"
    if old is None or new is None:
        return f"{path} is {'added' if old is None else 'removed'}"
    for what, pattern in _TEXT_READ.items():
        if _matching_text(pattern, old) != _matching_text(pattern, new):
            return f"{what} in {path} changed"
    if change_facts.has_file(base, path) != change_facts.has_file(scratch, path):
        return f"{path} entered or left the index"
    for table in change_facts.FILE_TABLES:
        if change_facts.file_rows(base, table, path) != change_facts.file_rows(scratch, table, path):
            return f"a {table[:-1]} of {path} changed"
    return ""


def _code(lines: list[str]) -> str:
    """The text of a definition as the compiler sees it: comments and the amount of white space do not count."""
    return " ".join(_COMMENT.sub(" ", "\n".join(lines)).split())


def _lines(content: bytes | None) -> list[str]:
    return (content or b"").decode("utf-8", "replace").splitlines()


def _matching_text(pattern: re.Pattern[bytes], content: bytes) -> list[bytes]:
    return [match[0] for match in pattern.finditer(content)]


class SeedPlanner:
    """A `SeedPlan` for `audit_database` over the patched tree: per arch, the seeds the change can affect.

    What it chose stays in `selection` for the comparison with the base audit.
    """

    def __init__(self, base_scopes: list[dict[str, Any]], base_models: list[dict[str, Any]], change: Change,
                 arches: list[str], touched: list[str]) -> None:
        self.scopes: dict[str, dict[SeedKey, Scope]] = defaultdict(dict)
        for row in base_scopes:
            self.scopes[row["arch"]][source_key(row["source"])] = Scope.from_json(row["scope"])
        self.before = {_model_key(model): _model_text(model) for model in base_models}
        self.change, self.arches, self.touched = change, arches, set(touched)
        self.selection = Selection()

    def __call__(self, models: list[FrameModel], seeds: list[SourceSeed]) -> dict[str, set[SeedKey]]:
        after = {_model_key(model): _model_text(model) for model in (m.to_json() for m in models)}
        changed_models = {key for key in set(self.before) | set(after) if self.before.get(key) != after.get(key)}
        for arch in self.arches:
            if self.change.whole or not self.scopes.get(arch):
                continue  # every seed of the arch
            run, kept = set(), set()
            for source_seed in seeds:
                key = seed_key(source_seed)
                scope = self.scopes[arch].get(key)
                model_changed = any((arch, source_seed.source.producer, context) in changed_models
                                    for context in source_seed.contexts)
                if scope is None or source_seed.file in self.touched or model_changed or _touches(scope, self.change):
                    run.add(key)
                else:
                    kept.add(key)
            self.selection.run[arch], self.selection.kept[arch] = run, kept
        return dict(self.selection.run)


def base_scopes(db_path: Path) -> list[dict[str, Any]]:
    """The seed scopes of the database's latest audit."""
    return _of_latest_audit(db_path, audit_facts.scopes_of) or []


def _of_latest_audit(db_path: Path, read: Callable[[sqlite3.Connection, int], T]) -> T | None:
    """What `read` returns for the database's latest audit; None when it holds none."""
    conn = open_existing(db_path).conn
    try:
        audit = audit_facts.latest_audit(conn)
        return read(conn, audit["id"]) if audit else None
    finally:
        conn.close()


def standing_helper_lists(db_path: Path, change: Change, lines: LineMap) -> dict[str, list[HelperEntry]]:
    """The BPF helper lists of the database's latest audit that hold for the patched tree: no proto or
    func_proto function changed (else the change is whole), so a list stands, its lines moved by the patch,
    unless the patch removed or replaced a line it cites (the `return &X_proto;`)."""
    if change.whole:
        return {}
    lists = _of_latest_audit(db_path, audit_facts.helper_lists_of) or {}
    standing = {}
    for bridge, entries in lists.items():
        moved = [replace(entry, line=line) for entry in map(HelperEntry.from_json, entries)
                 if (line := lines.place(entry.file, entry.line)) is not None]
        if len(moved) == len(entries):
            standing[bridge] = moved
    return standing


def standing_helper_walks(db_path: Path, change: Change, lines: LineMap) -> dict[str, list[HelperWalk]]:
    """Per arch, the walks of BPF helper bodies of the database's latest audit that hold for the patched
    tree: their scope is untouched by the change (as a seed's) and no line they cite was removed or replaced
    (their lines moved by the patch). Which frame model takes a walk over is decided again: a model whose
    oracle answers as the walk recorded."""
    if change.whole:
        return {}
    walks = _of_latest_audit(db_path, audit_facts.helper_walks_of) or {}
    standing: dict[str, list[HelperWalk]] = {}
    for arch, arch_walks in walks.items():
        for walk in map(HelperWalk.from_json, arch_walks):
            moved = None if _touches(walk.scope, change) else walk.moved(lines.place)
            if moved is not None:
                standing.setdefault(arch, []).append(moved)
    return standing


def arches_touched(touched: list[str], arches: list[str]) -> list[str]:
    return [arch for arch in arches if any(arch_of(path) in ("generic", arch) for path in touched)]


def _touches(scope: Scope, change: Change) -> bool:
    return bool(scope.functions & change.functions or scope.names & change.names
                or touches(scope.cells, change.words))


def _model_key(model: dict[str, Any]) -> tuple[str, str, str]:
    return model["arch"], model["producer"], model["context"]


def _model_text(model: dict[str, Any]) -> str:
    """The model without its evidence (file:line citations shift with any edit above them, and so does drift)."""
    return json.dumps({k: v for k, v in model.items() if k not in _CITATIONS}, sort_keys=True)


def _compare_functions(base: sqlite3.Connection, scratch: sqlite3.Connection, path: str,
                       lines: tuple[list[str], list[str]], change: Change) -> None:
    """Functions whose facts or text differ (text: a `return NAME;` is no fact, yet the walk reads it)."""
    before = change_facts.function_signatures(base, path)
    after = change_facts.function_signatures(scratch, path)
    for key in set(before) | set(after):
        old, new = before.get(key), after.get(key)
        if old is None or new is None or old[0] != new[0] or (
                _code(lines[0][old[2] - 1:old[3]]) != _code(lines[1][new[2] - 1:new[3]])):
            name = key[0]
            change.functions.add((path, name))
            change.names.add(name)
            for signatures in (before, after):
                if key in signatures:
                    change.words |= signatures[key][1]
