"""`regaudit audit`'s pipeline after indexing: model the frames, link what is missing, check every arch, publish.

Owns the order of the stages and the one write of an audit: the findings of every arch go into the
database in one transaction once the whole audit finished (a failed or interrupted audit leaves the
previous one readable). The JSON document is then read back from the
database (`regaudit.audit.document`), so what is printed is exactly what `regaudit report` shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from regaudit import __version__
from regaudit.arch.catalogue import modelled_arches
from regaudit.arch.config import read_dotconfig
from regaudit.arch.frames import FrameModel
from regaudit.arch.makefiles import build_symbols
from regaudit.arch.producers import build_frame_models
from regaudit.audit.check import ArchCheck, ArchOutcome, HelperWalk, SeedKey, source_json
from regaudit.audit.document import load_document
from regaudit.audit.seeds import SourceSeed, source_seeds
from regaudit.errors import BadInput
from regaudit.facts import audit_facts
from regaudit.facts.link_facts import IndexChanges, current_links
from regaudit.facts.store import amended, open_existing, written_in_place
from regaudit.flow.bpf_helpers import HelperEntry, bpf_helpers
from regaudit.flow.link import link_database
from regaudit.flow.propagate import arch_program
from regaudit.forking import fork_call, fork_map
from regaudit.resources import code_hash
from regaudit.ruleset.flow_rules import Bridge, load_bridges, load_sources
from regaudit.ruleset.load import kernel_series, ruleset_hash
from regaudit.subsystems import Maintainers
from regaudit.tree import KernelTree, open_tree

Progress = Callable[[str], None]
ArchResult = tuple[str, ArchOutcome, float]
# Which seeds to check per arch, given the frame models and every seed (`regaudit check` re-runs only the
# seeds a patch can change): an arch missing from the result checks all of its seeds.
SeedPlan = Callable[[list[FrameModel], list[SourceSeed]], dict[str, set[SeedKey]]]


def audit_database(db_path: Path, tree_path: str | Path, arches: list[str] | None = None,
                   config: Path | None = None, progress: Progress | None = None,
                   jobs: int | None = None, plan: SeedPlan | None = None,
                   changes: IndexChanges | None = None,
                   helper_lists: dict[str, list[HelperEntry]] | None = None,
                   helper_walks: dict[str, list[HelperWalk]] | None = None) -> dict[str, Any]:
    """Check an indexed tree for `arches` (default: every arch of the tree with frame rules); the audit document.

    `plan`: which seeds to check per arch (default: all); `changes`: what the database's last index run
    changed, so that arches linked before it are relinked incrementally (`link_database`); `helper_lists`:
    BPF helper lists by bridge known to hold for this tree (derived again otherwise); `helper_walks`: per arch,
    walks of BPF helper bodies known to hold for this tree (walked again otherwise).

    The frame models and BPF helper lists are built in a forked process while this one links; the arches are
    then checked in `jobs` processes (default: one per core), each reading the facts its walks reach from the
    database.
    """
    say = progress or (lambda _message: None)
    tree = open_tree(tree_path)
    chosen = auditable_arches(tree.root, arches)
    dotconfig = read_dotconfig(config) if config is not None else None
    started = _now()
    series = kernel_series(tree.version)
    conn = open_existing(db_path).conn
    try:
        seeds = source_seeds(conn, load_sources(series))
    finally:
        conn.close()
    say("modelling frames")
    planned_models: list[FrameModel] | None = None
    only: dict[str, set[SeedKey]] = {}
    if plan:
        planned_models = build_frame_models(tree.root, db_path, chosen)
        only = plan(planned_models, seeds)
    missing = sorted(arch for arch in set(chosen) - set(_linked(db_path)) if only.get(arch, True))
    bridges = load_bridges(series)
    lists = dict(helper_lists or {})
    unlisted = [bridge for bridge in bridges if bridge.kind == "calls_helpers" and bridge.name not in lists
                and any(only.get(arch, True) for arch in chosen)]
    # The models and helper lists read only the index's facts: built in a process of their own while this one
    # links, unless there is nothing to build, one process is all `jobs` allows, or the link writes the very file
    # they read (in place). The Makefiles' gates, which every arch's link and check reads, are read here first,
    # so that every process forked from now on inherits them.
    build_symbols(tree.root)
    beside = bool(missing) and (planned_models is None or bool(unlisted)) and not written_in_place(db_path)
    with fork_call(lambda: _unlinked_needs(db_path, tree.root, chosen, planned_models, unlisted), jobs,
                   beside=beside) as needs:
        if missing:  # an arch with no seed to check needs no program
            say(f"linking {', '.join(missing)}")
            link_database(db_path, tree.root, missing, changes, jobs)
        models, derived = needs.result()
    lists.update(derived)
    barriers = frozenset((b.caller, b.function) for b in bridges if b.kind == "no_flow" and b.caller)
    job = _ArchJob(db_path, tree.root, models, bridges, Maintainers.load(tree.root, series), seeds, dotconfig,
                   barriers, only, lists, helper_walks or {})
    findings: list[dict[str, Any]] = []
    cleans: list[dict[str, Any]] = []
    scopes: list[dict[str, Any]] = []
    walks: dict[str, list[dict[str, Any]]] = {}
    for arch, outcome, seconds in fork_map(lambda arch: _check_arch(job, arch), chosen, jobs):
        findings += outcome.findings
        cleans += outcome.cleans
        scopes += [{"arch": arch, "source": source_json(key), "scope": scope.to_json()}
                   for key, scope in outcome.scopes.items()]
        walks[arch] = [walk.to_json() for walk in outcome.walks]
        say(f"{arch}: {len(outcome.findings)} findings, {len(outcome.cleans)} clean ({seconds:.1f} s)")
    findings.sort(key=lambda f: (f["arch"], f["subsystem"], f["consumer"]["file"], f["consumer"]["line"],
                                 f["member"], f["source"]["rule"], f["fingerprint"]))
    meta = {"started": started, "tool_version": __version__, "rules_hash": ruleset_hash(), "code_hash": code_hash(),
            "tree_path": str(tree.root), "kernel_version": tree.version, "arches": chosen,
            "config": str(config) if config is not None else None}
    with amended(db_path) as conn:
        audit_id = audit_facts.start_audit(conn, meta)
        audit_facts.add_frame_models(conn, audit_id, [model.to_json() for model in models])
        audit_facts.add_findings(conn, audit_id, findings)
        audit_facts.add_clean(conn, audit_id, cleans)
        audit_facts.add_scopes(conn, audit_id, scopes)
        audit_facts.add_helper_lists(conn, audit_id, {name: [entry.to_json() for entry in entries]
                                                      for name, entries in job.helper_lists.items()})
        audit_facts.add_helper_walks(conn, audit_id, walks)
        audit_facts.finish_audit(conn, audit_id, _now())
    return load_document(db_path)


@dataclass(frozen=True)
class _ArchJob:
    """What every arch's check needs, built once in the parent."""

    db_path: Path
    tree: Path
    models: list[FrameModel]
    bridges: list[Bridge]
    maintainers: Maintainers
    seeds: list[SourceSeed]
    dotconfig: dict[str, bool] | None
    barriers: frozenset[tuple[str, str]]
    only: dict[str, set[SeedKey]]  # per arch, the seeds to check (all when the arch is missing)
    # BPF helper lists by bridge name: generic C, derived once and shared by the arches
    helper_lists: dict[str, list[HelperEntry]] = field(default_factory=dict)
    helper_walks: dict[str, list[HelperWalk]] = field(default_factory=dict)  # per arch, known to hold


def _unlinked_needs(db_path: Path, tree: Path, arches: list[str], models: list[FrameModel] | None,
                    bridges: list[Bridge]) -> tuple[list[FrameModel], dict[str, list[HelperEntry]]]:
    """What the checks need that no link gives: the frame models of `arches` (unless a plan already needed them)
    and the helper lists of `bridges` (generic C, derived once for every arch)."""
    return (build_frame_models(tree, db_path, arches) if models is None else models,
            {bridge.name: bpf_helpers(db_path, tree, bridge) for bridge in bridges})


def _check_arch(job: _ArchJob, arch: str) -> ArchResult:
    clock = time.perf_counter()
    only = job.only.get(arch)
    if only is not None and not only:
        return arch, ArchOutcome([], [], {}), 0.0
    with arch_program(job.db_path, arch, job.dotconfig, job.barriers, job.tree) as program:
        check = ArchCheck(program, job.tree, job.models, job.bridges, job.maintainers, job.helper_lists,
                          job.helper_walks.get(arch))
        outcome = check.run(job.seeds, only)
    return arch, outcome, time.perf_counter() - clock


def stored_audit(db_path: Path, tree: KernelTree, arches: list[str], exact: bool = False) -> dict[str, Any] | None:
    """The database's latest audit when it is what auditing `arches` of `tree` now would give (all of them and
    maybe more; only them with `exact`), else None. The index drops every audit when a fact or a file later
    stages read as text changes, so an audit still there was made from the tree as it is; it must also be of
    this kernel version, without a .config, and made by this code under these rules."""
    try:
        db = open_existing(db_path)
    except BadInput:
        return None
    try:
        audit = audit_facts.latest_audit(db.conn) if db["audits"].exists() else None
    finally:
        db.conn.close()
    if audit is None:
        return None
    held = set(audit["arches"])
    same = (audit["kernel_version"] == tree.version and audit["config"] is None
            and audit.get("code_hash") == code_hash()  # no column before schema 10
            and audit["tool_version"] == __version__ and audit["rules_hash"] == ruleset_hash()
            and (held == set(arches) if exact else set(arches) <= held))
    return load_document(db_path) if same else None


def check_request(tree_path: str | Path, arches: list[str] | None, config: Path | None) -> list[str]:
    """The arches to audit (`auditable_arches`), which the index must hold; BadInput for a request the audit would
    refuse, before anything (the index) touches the database."""
    chosen = auditable_arches(open_tree(tree_path).root, arches)
    if config is not None:
        read_dotconfig(config)
    return chosen


def auditable_arches(tree: Path, arches: list[str] | None) -> list[str]:
    """`arches` (BadInput for one the tree or the frame rules lack), by default every modelled arch."""
    modelled = modelled_arches(tree)
    if not arches:
        return modelled
    unknown = sorted(set(arches) - set(modelled))
    if unknown:
        raise BadInput(f"no frame rules or no arch/ directory for {', '.join(unknown)} "
                       f"(auditable: {', '.join(modelled)})")
    return sorted(set(arches))


def _linked(db_path: Path) -> list[str]:
    conn = open_existing(db_path).conn
    try:
        return current_links(conn)
    finally:
        conn.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
