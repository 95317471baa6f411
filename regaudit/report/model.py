"""Typed, validated read access to an audit document (the `regaudit-audit/1` JSON contract in README.md).

Owns the one place where renderers touch the document's keys: `load_audit` checks the schema and turns
the dict into frozen dataclasses, and the derived views every renderer shares live here too — the
arch × subsystem matrix with its worst state per cell, findings grouped for display (an entry per
consumer, access and path; in it a row per arch and producer, listing the members read), and the
arch-free group key the diff matches on.
A missing or unknown `schema`, or a finding lacking a contract key, is `BadInput` with a one-line message.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regaudit.arch.frames_report import compact
from regaudit.audit.document import SCHEMA, load_document
from regaudit.errors import BadInput

# Worst first: an uninitialised stack slot leaks whatever was there, a stale buffer another context's
# registers, a zero only misleads.
SEVERITY = ("uninitialised", "stale", "zero")


@dataclass(frozen=True)
class Site:
    """A place in the tree: a function and the line of interest in its file."""

    function: str
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Hop(Site):
    """One step of a path; `condition` is the `#if` guard the arch's build leaves open on it."""

    condition: str = ""


@dataclass(frozen=True)
class Source(Site):
    """Where the pointer is born; `rule` names the rules/sources.toml entry."""

    rule: str = ""


@dataclass(frozen=True)
class Producer:
    """The frame builder: API, entry/exit context, trampoline, and where the builder is defined."""

    api: str
    context: str
    trampoline: str
    file: str
    line: int

    @property
    def label(self) -> str:
        return f"{self.api} ({self.context})"


@dataclass(frozen=True)
class Finding:
    fingerprint: str
    arch: str
    subsystem: str
    maintainers: str
    member: str
    reaches: tuple[str, ...]  # the frame model's members that make it a finding (README: `*` reaches many)
    access: str
    via: str
    mask: str | None
    state: str
    producer: Producer
    source: Source
    consumer: Site
    path: tuple[Hop, ...]
    conditions: tuple[str, ...]

    @property
    def group_key(self) -> str:
        """The fingerprint without the arch: equal for the same finding on different arches."""
        parts = (self.producer.api, self.producer.context, self.member, self.access, self.consumer.function,
                 *(hop.function for hop in self.path))
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Frame:
    """One frame model, as `regaudit frames --format json` prints it (only the keys reports show)."""

    arch: str
    producer: str
    context: str
    trampoline: str
    result: str
    populated: tuple[str, ...]
    constants: dict[str, str]
    states: dict[str, str]
    member_evidence: dict[str, list[str]]
    evidence: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def unpopulated(self) -> dict[str, list[str]]:
        """state -> members, worst state first, for the members the producer leaves stale, uninitialised or zero."""
        by_state: dict[str, list[str]] = {state: [] for state in SEVERITY}
        for member, state in self.states.items():
            if state in by_state:
                by_state[state].append(member)
        return {state: members for state, members in by_state.items() if members}


@dataclass(frozen=True)
class Clean:
    arch: str
    source: Source
    producer: Producer
    accesses: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Audit:
    tool: dict[str, str]
    tree_path: str
    version: str
    series: str
    arches: tuple[str, ...]
    config: str | None
    frames: tuple[Frame, ...]
    findings: tuple[Finding, ...]
    clean: tuple[Clean, ...]


@dataclass(frozen=True)
class Cell:
    """One matrix cell: how many findings, and the worst member state among them."""

    count: int
    worst: str


@dataclass(frozen=True)
class Group:
    """Findings shown together; `first` stands for what they share."""

    findings: tuple[Finding, ...]

    @property
    def first(self) -> Finding:
        return self.findings[0]

    @property
    def members(self) -> list[str]:
        return list(dict.fromkeys(finding.member for finding in self.findings))

    @property
    def reached(self) -> list[str]:
        """The frame members the findings touch: `regs[9]`..`regs[28]` for a read of `*` on arm64."""
        return list(dict.fromkeys(member for finding in self.findings for member in finding.reaches))

    @property
    def members_text(self) -> str:
        """The members as the consumers name them, then what they reach when that says more: `* → regs[9..28]`."""
        named, reached = compact(self.members), compact(self.reached)
        return named if named == reached else f"{named} → {reached}"

    @property
    def worst(self) -> str:
        return worst_state(finding.state for finding in self.findings)

    @property
    def fingerprints(self) -> list[str]:
        return [finding.fingerprint for finding in self.findings]


class Row(Group):
    """The findings of an entry on one arch from one producer: they differ only in the member."""


class Entry(Group):
    """Findings with one consumer, access and path, on whatever arches and producers: a row for each."""

    @property
    def rows(self) -> list[Row]:
        by_row: dict[tuple[str, Producer], list[Finding]] = defaultdict(list)
        for finding in self.findings:
            by_row[(finding.arch, finding.producer)].append(finding)
        return [Row(tuple(by_row[key])) for key in sorted(by_row, key=lambda key: (key[0], key[1].api, key[1].context))]

    @property
    def arches(self) -> list[str]:
        return sorted({finding.arch for finding in self.findings})

    @property
    def producers(self) -> list[str]:
        return sorted({finding.producer.label for finding in self.findings})

    @property
    def conditions(self) -> list[str]:
        return list(dict.fromkeys(condition for finding in self.findings for condition in finding.conditions))


def read_document(path: Path) -> dict[str, Any]:
    """The audit document in `path`: a `.json` file as written by `--format json`, else an audit database."""
    if path.suffix == ".json":
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BadInput(f"{path}: not a readable audit JSON document ({err})") from err
    return load_document(path)


def load_audit(doc: Any) -> Audit:
    """Validate `doc` against the contract and return typed views of it."""
    if not isinstance(doc, dict) or "schema" not in doc:
        raise BadInput(f'not a regaudit audit document: no "schema" key (expected "{SCHEMA}")')
    if doc["schema"] != SCHEMA:
        raise BadInput(f"unsupported audit schema {doc['schema']!r}: this regaudit reads {SCHEMA!r}")
    try:
        return _audit(doc)
    except (KeyError, TypeError, ValueError) as err:
        raise BadInput(f"malformed {SCHEMA} document: {type(err).__name__}: {err}") from err


def _audit(doc: dict[str, Any]) -> Audit:
    tree = doc["tree"]
    return Audit(
        tool=dict(doc["tool"]),
        tree_path=tree["path"],
        version=tree["version"],
        series=tree.get("series", ""),
        arches=tuple(doc["arches"]),
        config=doc.get("config"),
        frames=tuple(_frame(frame) for frame in doc.get("frames", [])),
        findings=tuple(_finding(finding) for finding in doc["findings"]),
        clean=tuple(_clean(clean) for clean in doc.get("clean", [])),
    )


def _finding(raw: dict[str, Any]) -> Finding:
    return Finding(
        fingerprint=raw["fingerprint"],
        arch=raw["arch"],
        subsystem=raw["subsystem"],
        maintainers=raw.get("maintainers") or "",
        member=raw["member"],
        reaches=tuple(raw.get("reaches") or [raw["member"]]),
        access=raw["access"],
        via=raw["via"],
        mask=raw.get("mask"),
        state=raw["state"],
        producer=_producer(raw["producer"]),
        source=_source(raw["source"]),
        consumer=Site(raw["consumer"]["function"], raw["consumer"]["file"], int(raw["consumer"]["line"])),
        path=tuple(Hop(hop["function"], hop["file"], int(hop["line"]), hop.get("condition") or "")
                   for hop in raw["path"]),
        conditions=tuple(raw.get("conditions", [])),
    )


def _producer(raw: dict[str, Any]) -> Producer:
    return Producer(raw["api"], raw["context"], raw.get("trampoline") or "", raw["file"], int(raw["line"]))


def _source(raw: dict[str, Any]) -> Source:
    return Source(raw["function"], raw["file"], int(raw["line"]), raw.get("rule") or "")


def _frame(raw: dict[str, Any]) -> Frame:
    return Frame(
        arch=raw["arch"],
        producer=raw["producer"],
        context=raw["context"],
        trampoline=raw.get("trampoline") or "",
        result=raw["result"],
        populated=tuple(raw.get("populated", [])),
        constants=dict(raw.get("constants", {})),
        states=dict(raw.get("states", {})),
        member_evidence={member: list(lines) for member, lines in raw.get("member_evidence", {}).items()},
        evidence=tuple(raw.get("evidence", [])),
        notes=tuple(raw.get("notes", [])),
    )


def _clean(raw: dict[str, Any]) -> Clean:
    return Clean(raw["arch"], _source(raw["source"]), _producer(raw["producer"]), int(raw["accesses"]),
                 tuple(raw.get("members", [])))


def worst_state(states: Iterable[str]) -> str:
    """The most severe of `states` (an unknown state ranks last)."""
    return min(states, key=lambda state: SEVERITY.index(state) if state in SEVERITY else len(SEVERITY))


def subsystems(audit: Audit) -> list[str]:
    return sorted({finding.subsystem for finding in audit.findings})


def matrix(audit: Audit) -> dict[str, dict[str, Cell]]:
    """arch -> subsystem -> Cell, for every arch of the audit (an arch without findings has no cells)."""
    states: dict[str, dict[str, list[str]]] = {arch: defaultdict(list) for arch in audit.arches}
    for finding in audit.findings:
        states.setdefault(finding.arch, defaultdict(list))[finding.subsystem].append(finding.state)
    return {arch: {subsystem: Cell(len(found), worst_state(found)) for subsystem, found in by_subsystem.items()}
            for arch, by_subsystem in states.items()}


def entries(findings: Iterable[Finding]) -> dict[str, dict[Site, list[Entry]]]:
    """subsystem -> consumer -> entries, each entry one access along one path (its rows: arches and producers);
    subsystems, consumers (by file and line) and entries in order."""
    grouped: dict[tuple[Any, ...], list[Finding]] = defaultdict(list)
    for finding in findings:
        grouped[(finding.subsystem, finding.consumer, finding.access, finding.via, finding.path)].append(finding)
    tree: dict[str, dict[Site, list[Entry]]] = defaultdict(lambda: defaultdict(list))
    for key in sorted(grouped, key=_entry_order):
        tree[key[0]][key[1]].append(Entry(tuple(grouped[key])))
    return {subsystem: dict(by_consumer) for subsystem, by_consumer in tree.items()}


def _entry_order(key: tuple[Any, ...]) -> tuple[Any, ...]:
    subsystem, consumer, access, via, path = key
    return subsystem, consumer.file, consumer.line, consumer.function, access, via, [hop.function for hop in path]
