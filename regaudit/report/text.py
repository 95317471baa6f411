"""Terminal rendering of an audit document (rich): header, arch × subsystem matrix, findings as call-path trees.

Owns how `regaudit report --format text` looks. Every tree string goes in as `rich.text.Text`, never as
markup, so `regs[19]` or a stray `[bold]` in a path prints as written. Without colour (a pipe, a log,
`--no-color`) the output carries no escape code at all.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import rich.box
import rich.console
import rich.padding
import rich.table
import rich.text
import rich.tree

from regaudit.report.model import Audit, Cell, Entry, Hop, entries, load_audit, matrix, subsystems

STATE_STYLES = {"uninitialised": "bold red", "stale": "yellow", "zero": "cyan"}


def render_text(doc: dict[str, Any], color: bool, width: int = 120) -> str:
    """The whole report as one string; `color=False` gives plain text."""
    audit = load_audit(doc)
    out = io.StringIO()
    console = rich.console.Console(file=out, width=width, force_terminal=color, no_color=not color,
                                   color_system="standard" if color else None, highlight=False, emoji=False)
    for renderable in (*header(audit), matrix_table(audit), *findings_blocks(audit)):
        console.print(renderable)
    return "".join(line.rstrip() + "\n" for line in out.getvalue().splitlines())


def header(audit: Audit) -> list[rich.text.Text]:
    lines = [
        rich.text.Text.assemble(("regaudit audit of Linux ", "bold"), (audit.version, "bold"), f"  {audit.tree_path}"),
        rich.text.Text(f"arches: {', '.join(audit.arches)}   config: {audit.config or 'all guards open'}   "
                       f"rules: {audit.tool.get('rules_hash', '?')}   regaudit {audit.tool.get('version', '?')}"),
        rich.text.Text(f"findings: {len(audit.findings)}   clean sources: {len(audit.clean)}   "
                       f"frame models: {len(audit.frames)}"),
    ]
    return [*lines, rich.text.Text("")]


def matrix_table(audit: Audit) -> rich.table.Table:
    """Rows are arches, columns subsystems; a cell is its finding count, coloured by the worst member state."""
    cells = matrix(audit)
    columns = subsystems(audit)
    legend = rich.text.Text.assemble("worst member state: ",
                                     *((f"{state} ", style) for state, style in STATE_STYLES.items()))
    table = rich.table.Table(title="findings per arch and subsystem", caption=legend, box=rich.box.SIMPLE_HEAD,
                             title_justify="left", caption_justify="left")
    table.add_column("arch")
    for subsystem in columns:
        table.add_column(subsystem, justify="right")
    for arch, row in cells.items():
        table.add_row(arch, *(_cell(row.get(subsystem)) for subsystem in columns))
    return table


def _cell(cell: Cell | None) -> rich.text.Text:
    return rich.text.Text(str(cell.count), style=STATE_STYLES.get(cell.worst, "")) if cell else rich.text.Text("·")


def findings_blocks(audit: Audit) -> list[rich.console.RenderableType]:
    """Per subsystem a heading, per consumer a line, per entry a tree of its path."""
    blocks: list[rich.console.RenderableType] = []
    for subsystem, by_consumer in entries(audit.findings).items():
        count = sum(len(entry.findings) for consumer_entries in by_consumer.values() for entry in consumer_entries)
        blocks.append(rich.text.Text(f"\n{subsystem} — {count} finding(s)", style="bold underline"))
        for consumer, consumer_entries in by_consumer.items():
            blocks.append(rich.text.Text.assemble(("  " + consumer.function, "bold"), f"  {consumer.where}"))
            blocks.extend(entry_tree(entry) for entry in consumer_entries)
    return blocks


def entry_tree(entry: Entry) -> rich.padding.Padding:
    """One line per arch and producer (`x86 read cx si [uninitialised] ← ftrace_partial_regs (exit)`), the
    way the access was established, then the path."""
    finding = entry.first
    rows = [rich.text.Text.assemble((row.first.arch, "bold"), f" {finding.access} ",
                                    (row.members_text, STATE_STYLES.get(row.worst, "")), f" [{row.worst}]",
                                    f"  ← {row.first.producer.label}") for row in entry.rows]
    how = rich.text.Text(f"via {finding.via}" + (f", mask {finding.mask}" if finding.mask else ""), style="dim")
    tree = rich.tree.Tree(rich.text.Text("\n").join([*rows, how]), guide_style="dim")
    for hops in folded(finding.path):
        tree.add(hop_text(hops))
    return rich.padding.Padding(tree, (0, 0, 0, 4), expand=False)


def folded(path: Iterable[Hop]) -> list[list[Hop]]:
    """Consecutive hops in one function and file (the pointer moving on inside it) as one group."""
    groups: list[list[Hop]] = []
    for hop in path:
        if groups and (groups[-1][-1].function, groups[-1][-1].file) == (hop.function, hop.file):
            groups[-1].append(hop)
        else:
            groups.append([hop])
    return groups


def hop_text(hops: list[Hop]) -> rich.text.Text:
    """`function (file:line, line)` and the `#if` guards left open on those lines."""
    lines = ", ".join(str(hop.line) for hop in hops)
    conditions = "  ".join(f"#if {hop.condition}" for hop in hops if hop.condition)
    return rich.text.Text.assemble(hops[0].function, (f" ({hops[0].file}:{lines})", "dim"),
                                   (f"  {conditions}" if conditions else "", "italic"))
