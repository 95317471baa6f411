"""The self-contained HTML report: one file, inline CSS and JS, no URL of any kind, readable with JavaScript off.

Owns the view data the Jinja2 template `reports/audit.html.j2` renders (with autoescape: every tree string
is escaped) and the source excerpts read from the audited tree. An excerpt is kept once per (file, line)
and every hop that shows it links to it, which keeps an all-arch 7.3 report small; the script copies it
next to the hop when a finding is opened. The only JSON handed to the script (filter facets) has `<`, `>`
and `&` escaped, so no tree string can close its `<script>` element.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from regaudit.arch.frames_report import compact
from regaudit.report.model import Audit, Entry, Finding, Frame, Producer, Site, entries, load_audit, matrix, subsystems
from regaudit.resources import data_dir

CONTEXT_LINES = 2
_JS_UNSAFE = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


@dataclass
class Excerpt:
    """A few lines around `line` of `file`; `marks` are the members whose access on `line` is highlighted."""

    id: str
    file: str
    line: int
    marks: set[str] = field(default_factory=set)
    lines: list[tuple[int, str]] = field(default_factory=list)

    def segments(self, number: int, text: str) -> list[tuple[str, bool]]:
        """Line `number` cut into (piece, highlighted): the marked members' accesses on the excerpt's line."""
        pattern = member_pattern(self.marks) if number == self.line else None
        if not pattern:
            return [(text, False)]
        pieces: list[tuple[str, bool]] = []
        cursor = 0
        for match in pattern.finditer(text):
            start, end = match.span(1)
            pieces += [(text[cursor:start], False), (text[start:end], True)]
            cursor = end
        pieces.append((text[cursor:], False))
        return [piece for piece in pieces if piece[0]]


def member_pattern(members: Iterable[str]) -> re.Pattern[str] | None:
    """A regex whose group 1 is an access of one of `members` (`->cs`, `.regs[19]`; `regs[*]` matches any
    index; `*`, any member of a BPF ctx, matches nothing), or None when nothing can match."""
    names = sorted({_member_regex(member) for member in members if member != "*"}, key=len, reverse=True)
    return re.compile(rf"(?:->|\.)({'|'.join(names)})") if names else None


def _member_regex(member: str) -> str:
    if member.endswith("[*]"):
        return re.escape(member.removesuffix("[*]")) + r"\["
    return re.escape(member) + r"(?![\w\[])"


class SourceTree:
    """Reads excerpts from the audited tree; `available` is False when the tree is gone."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.available = self.root.is_dir()
        self._files: dict[str, list[str]] = {}

    def lines(self, file: str) -> list[str]:
        """The lines of `file` (read once); none for a file outside the tree or missing from it."""
        if file not in self._files:
            path = (self.root / file).resolve()
            inside = path.is_relative_to(self.root.resolve()) and path.is_file()
            self._files[file] = path.read_text(encoding="utf-8", errors="replace").splitlines() if inside else []
        return self._files[file]

    def around(self, file: str, line: int) -> list[tuple[int, str]]:
        text = self.lines(file) if self.available else []
        first = max(1, line - CONTEXT_LINES)
        return [(number, text[number - 1]) for number in range(first, min(len(text), line + CONTEXT_LINES) + 1)]


def render_html(doc: dict[str, Any]) -> str:
    audit = load_audit(doc)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(data_dir("reports")), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    template = env.get_template("audit.html.j2")
    return template.render(**view(audit, SourceTree(audit.tree_path)), css=_asset("audit.css"),
                           script=_asset("audit.js"))


def _asset(name: str) -> str:
    return (data_dir("reports") / name).read_text(encoding="utf-8")


def view(audit: Audit, tree: SourceTree) -> dict[str, Any]:
    """Everything the template shows, computed here so the template only lays it out."""
    excerpts = excerpts_for(audit.findings, tree)
    return {
        "audit": audit,
        "tree_available": tree.available,
        "columns": subsystems(audit),
        "matrix": matrix(audit),
        "subsystems": entries(audit.findings),
        "entry_view": lambda entry: entry_view(entry, excerpts),
        "excerpts": sorted(excerpts.values(), key=lambda excerpt: (excerpt.file, excerpt.line)),
        "frames": frames_by_arch(audit.frames),
        "facets": js_json(facets(audit)),
        "hash_link": hash_link,
        "compact": compact,
    }


def excerpts_for(findings: Iterable[Finding], tree: SourceTree) -> dict[tuple[str, int], Excerpt]:
    """One excerpt per (file, line) any finding shows: every hop, consumer and producer definition."""
    excerpts: dict[tuple[str, int], Excerpt] = {}

    def add(site: Site | Producer) -> Excerpt:
        key = (site.file, site.line)
        if key not in excerpts:
            excerpts[key] = Excerpt(f"x{len(excerpts)}", site.file, site.line, lines=tree.around(site.file, site.line))
        return excerpts[key]

    for finding in findings:
        for site in (*finding.path, finding.producer):
            add(site)
        add(finding.consumer).marks.add(finding.member)
    return excerpts


def entry_view(entry: Entry, excerpts: dict[tuple[str, int], Excerpt]) -> dict[str, Any]:
    """The entry with, per row, its producer's excerpt id and its members as JSON (for the filter), and per hop
    the excerpt id."""
    return {
        "rows": [(row, excerpts[(row.first.producer.file, row.first.producer.line)].id,
                  json.dumps(row.members, separators=(",", ":"))) for row in entry.rows],
        "hops": [(hop, excerpts[(hop.file, hop.line)].id) for hop in entry.first.path],
    }


def frames_by_arch(frames: Iterable[Frame]) -> dict[str, list[Frame]]:
    by_arch: dict[str, list[Frame]] = {}
    for frame in frames:
        by_arch.setdefault(frame.arch, []).append(frame)
    return dict(sorted(by_arch.items()))


def facets(audit: Audit) -> dict[str, list[str]]:
    """The values each filter offers."""
    findings = audit.findings
    return {
        "arch": sorted({f.arch for f in findings}),
        "subsystem": sorted({f.subsystem for f in findings}),
        "member": sorted({f.member for f in findings}),
        "producer": sorted({f.producer.label for f in findings}),
    }


def js_json(value: Any) -> str:
    """JSON that is safe inside a <script> element: `<`, `>` and `&` are written as \\u escapes."""
    return json.dumps(value, separators=(",", ":")).translate(_JS_UNSAFE)


def hash_link(**filters: str) -> str:
    """`#arch=x86&subsystem=perf`: the URL fragment the script reads its filters from."""
    return "#" + "&".join(f"{key}={quote(value, safe='')}" for key, value in filters.items())
