"""The `regaudit report` and `regaudit diff` click commands, and the plain functions behind them.

Owns only option parsing and where output goes; `render` and `render_diff` do the work and are what
other code should call. `cli.py` registers the commands and wraps their callbacks with its error
handler. A document argument is an audit database, or a `.json` audit document.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from regaudit.atomic import write_atomically
from regaudit.report.diff import diff_documents, render_diff_json, render_diff_text
from regaudit.report.html import render_html
from regaudit.report.model import load_audit, read_document
from regaudit.report.sarif import render_sarif
from regaudit.report.text import render_text

FORMATS = ("text", "html", "json", "sarif")
DIFF_FORMATS = ("text", "json")
document_argument = click.Path(exists=True, dir_okay=False, path_type=Path)
output_option = click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
                             help="Write to FILE instead of stdout.")


def render(doc: dict[str, Any], fmt: str, color: bool = False, width: int = 120) -> str:
    """The audit document `doc` in format `fmt` (one of FORMATS)."""
    if fmt == "text":
        return render_text(doc, color=color, width=width)
    if fmt == "html":
        return render_html(doc)
    if fmt == "sarif":
        return render_sarif(doc)
    if fmt == "json":
        load_audit(doc)
        return json.dumps(doc, indent=2) + "\n"
    raise ValueError(f"unknown report format {fmt!r}")


def render_diff(old: dict[str, Any], new: dict[str, Any], fmt: str) -> str:
    diff = diff_documents(old, new)
    return render_diff_json(diff) + "\n" if fmt == "json" else render_diff_text(diff)


def emit(text: str, output: Path | None) -> None:
    """To `output` (replaced atomically: a failure leaves the old report) or stdout."""
    if output:
        write_atomically(output, text)
    else:
        click.echo(text, nl=False)


@click.command("report")
@click.argument("db", type=document_argument)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text: for a terminal; html: one self-contained file; json: the audit document; sarif: 2.1.0.")
@output_option
@click.option("--no-color", is_flag=True, help="Plain text even on a terminal.")
def report(db: Path, fmt: str, output: Path | None, no_color: bool) -> None:
    """Render the finished audit in DB (or an audit .json document)."""
    on_terminal = output is None and sys.stdout.isatty()
    width = shutil.get_terminal_size().columns if on_terminal else 120
    emit(render(read_document(db), fmt, color=on_terminal and not no_color, width=width), output)


@click.command("diff")
@click.argument("old", type=document_argument)
@click.argument("new", type=document_argument)
@click.option("--format", "fmt", type=click.Choice(DIFF_FORMATS), default="text", show_default=True)
@output_option
def diff(old: Path, new: Path, fmt: str, output: Path | None) -> None:
    """Show the findings that appeared, disappeared or changed arches from audit OLD to audit NEW."""
    emit(render_diff(read_document(old), read_document(new), fmt), output)
