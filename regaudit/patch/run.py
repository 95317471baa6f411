"""`regaudit check`'s pipeline after the patch applied in memory: tree audit, patched audit, comparison.

Owns the order of the stages and the scratch directory. The database gets only what `regaudit audit` would
store for the tree on disk (its audit, reused while it is for the same kernel version, tool version, rules
hash, code and a superset of the arches, without a .config); everything of the patch happens in a scratch
directory removed at the end: a copy of the database, the re-index of the touched files
(`regaudit.index.index_overlay`, with the tree's attribute macros), the patched tree (`overlay.materialise`,
a sparse view of links into the tree) and its audit for the arches whose build the touched files can be
part of (a file under arch/<a>/ only arch <a>, any other file every arch), linked incrementally from the
tree's edges when the touched files allow it (`regaudit.flow.link.relink_scope`). That audit checks only
the seeds the patch can change (`regaudit.patch.impact`); the base audit's findings of the other seeds
stand on the patched side.

No audit is needed when the patch is inert: the facts did not change (every touched file is a .c file the
index neither held nor would select) and no touched file is read as text by later stages (a .c file naming
`bpf_func_proto` is, by the BPF helper bridges; a file cited by rule evidence is). A driver patch usually is.

`reverse`: the tree on disk already holds the patch (a work tree checked out at HEAD) and `patched` undoes
it, so the scratch side is the base and the disk side the patched tree.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from regaudit.audit.check import HelperWalk, source_key
from regaudit.audit.run import audit_database, auditable_arches, stored_audit
from regaudit.facts.bridge_facts import PROTO_TAG
from regaudit.facts.store import disposable_databases
from regaudit.flow.bpf_helpers import HelperEntry
from regaudit.index import index_overlay
from regaudit.patch.compare import Comparison, compare
from regaudit.patch.impact import (
    SeedPlanner,
    Selection,
    arches_touched,
    base_scopes,
    compare_facts,
    standing_helper_lists,
    standing_helper_walks,
)
from regaudit.patch.line_map import LineMap
from regaudit.patch.overlay import Patched, materialise
from regaudit.resources import data_dir
from regaudit.tree import KernelTree, open_tree

Progress = Callable[[str], None]


@dataclass
class CheckResult:
    """The comparison and the documents it came from (`scratch` is None when no arch needed a new audit)."""

    comparison: Comparison
    arches: list[str]  # compared
    audited: list[str]  # audited again on the scratch tree
    on_disk: dict[str, Any]  # the audit of the tree on disk
    scratch: dict[str, Any] | None  # the audit of the scratch tree (the seeds checked again)
    seconds: dict[str, float] = field(default_factory=dict)  # per stage
    selection: Selection | None = None  # per arch, the seeds checked again and those taken over


def check_patch(tree_path: str | Path, db_path: Path, patched: Patched, arches: list[str] | None = None,
                progress: Progress | None = None, reverse: bool = False, full: bool = False) -> CheckResult:
    """Audit the indexed tree and the tree with `patched` applied for `arches` (default: every auditable arch);
    `full`: check every seed of the patched tree, not only those the patch can change."""
    say = progress or (lambda _message: None)
    tree = open_tree(tree_path)
    chosen = auditable_arches(tree.root, arches)
    seconds: dict[str, float] = {}
    with _timed(seconds, "tree audit"):
        on_disk = tree_audit(db_path, tree, chosen, say)
    touched = arches_touched(patched.touched, chosen)
    document, selection = _patched_audit(tree, db_path, patched, touched, on_disk, say, seconds, full) if touched \
        else (None, None)
    audited = document["arches"] if document else []
    disk_findings = [f for f in on_disk["findings"] if f["arch"] in chosen]
    kept = selection.kept if selection else {}  # seeds not checked again: their base findings stand
    scratch_findings = [f for f in disk_findings
                        if f["arch"] not in audited or source_key(f["source"]) in kept.get(f["arch"], ())]
    scratch_findings += (document or {}).get("findings", [])
    sides = (scratch_findings, disk_findings) if reverse else (disk_findings, scratch_findings)
    return CheckResult(compare(*sides), chosen, audited, on_disk, document, seconds, selection)


def tree_audit(db_path: Path, tree: KernelTree, arches: list[str], say: Progress) -> dict[str, Any]:
    """The database's latest audit when it holds `arches` of this tree (`stored_audit`), else a new one."""
    document = stored_audit(db_path, tree, arches)
    if document is not None:
        say("reusing the audit of the tree")
        return document
    say("auditing the tree")
    return audit_database(db_path, tree.root, arches, progress=say)


def _patched_audit(tree: KernelTree, db_path: Path, patched: Patched, arches: list[str], on_disk: dict[str, Any],
                   say: Progress, seconds: dict[str, float],
                   full: bool) -> tuple[dict[str, Any] | None, Selection | None]:
    """The audit of the patched tree for `arches`, of the seeds the patch can change, and which those are;
    (None, None) when the patch is inert."""
    with _scratch() as scratch, disposable_databases(scratch), ThreadPoolExecutor(1) as background:
        # The view is links (slow to create on some file systems, and no CPU): made while the re-index runs.
        view = background.submit(materialise, tree.root, patched, scratch / tree.root.name)
        with _timed(seconds, "re-index"):
            db = scratch / "facts.db"
            shutil.copyfile(db_path, db)
            say(f"re-indexing {len(patched.touched)} touched file(s)")
            reindexed = index_overlay(tree.root, db, patched.files, list(patched.removed))
        contents = {path: (_read(tree.root / path), patched.files.get(path)) for path in patched.touched}
        if not (reindexed.files_parsed or reindexed.files_removed or _read_as_text(contents)) and all(
                path.endswith(".c") for path in patched.touched):
            say("the patch changes no fact and no file read as text: no audit needed")
            return None, None
        with _timed(seconds, "impact"):
            change = compare_facts(db_path, db, contents)
            planner = SeedPlanner([] if full else base_scopes(db_path), on_disk["frames"], change, arches,
                                  patched.touched)
            helpers: dict[str, list[HelperEntry]] = {}
            walks: dict[str, list[HelperWalk]] = {}
            if not full:  # what of the base audit stands, its lines carried over to the patched files
                lines = LineMap(contents)
                helpers = standing_helper_lists(db_path, change, lines)
                walks = standing_helper_walks(db_path, change, lines)
        with _timed(seconds, "overlay"):
            root = view.result()
        with _timed(seconds, "patched audit"):
            say(f"auditing the patched tree ({', '.join(arches)})")
            return (audit_database(db, root, arches, progress=say, plan=planner, changes=reindexed.changes,
                                   helper_lists=helpers, helper_walks=walks), planner.selection)


def _read_as_text(contents: dict[str, tuple[bytes | None, bytes | None]]) -> bool:
    """Whether a touched file is read as text by a stage: cited by rules evidence (frame models), or naming
    `bpf_func_proto` (the helper bridges)."""
    cited = _rule_text()
    return any(path in cited or any(PROTO_TAG.encode() in content for content in pair if content is not None)
               for path, pair in contents.items())


@cache
def _rule_text() -> str:
    """Every rule file's text: a path appearing in it is evidence some stage reads."""
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(data_dir("rules").rglob("*.toml")))


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


@contextmanager
def _scratch() -> Iterator[Path]:
    """A private temporary directory, removed at the end (links into the tree are removed, never followed)."""
    path = Path(tempfile.mkdtemp(prefix="regaudit-check-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = time.perf_counter() - started
