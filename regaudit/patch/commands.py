"""The `regaudit check` click command: option parsing, reading the patches, output and exit status.

Exit status: 0 no new finding, 1 new findings, 2 bad input or usage (a malformed or non-applying patch, a
path leaving the tree, a binary diff, an unknown arch: one line, before the tree's database is opened).
Like `regaudit.report.commands`, `cli.py` registers the command and wraps its callback with its error
handler; the helpers this module takes from `cli.py` are imported when the command runs (no import cycle).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from regaudit.audit.run import check_request
from regaudit.errors import BadInput
from regaudit.patch.checkpatch import FORMATS, render
from regaudit.patch.diffs import FileChange, git_diff, holds_head, parse_patch
from regaudit.patch.overlay import apply_changes
from regaudit.patch.run import check_patch
from regaudit.terminal import Console
from regaudit.tree import open_tree


@click.command("check")
@click.argument("patches", nargs=-1, metavar="[PATCH]...", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--tree", required=True, type=click.Path(file_okay=False, path_type=str),
              help="The kernel tree the patches apply to (never modified).")
@click.option("--git", "revisions", metavar="BASE..HEAD",
              help="Check the commits BASE..HEAD of TREE, a git work tree checked out at BASE or HEAD.")
@click.option("--arch", "arches", metavar="A[,B]", help="Arches to check [default: every arch with rules/frames].")
@click.option("--format", "output", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text: checkpatch.pl lines; json: new and fixed findings; sarif: the new findings.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The tree's fact database, indexed and audited if needed; the patch never enters it "
                   "[default: ./<tree>.regaudit.db].")
@click.option("--full", is_flag=True,
              help="Check every seed on the patched tree again, not only those the patch can change.")
def check(patches: tuple[str, ...], tree: str, revisions: str | None, arches: str | None, output: str,
          db_path: Path | None, full: bool) -> None:
    """Report the findings PATCH... (unified diffs, git format-patch mails, '-' for stdin) add to or fix in TREE."""
    from regaudit.cli import indexed, split_arches

    root = open_tree(tree).root
    changes, reverse = read_changes(patches, revisions, root)
    patched = apply_changes(root, changes)
    chosen = check_request(root, split_arches(arches), None)
    console = Console()
    db = indexed(tree, db_path, console, arches=chosen).db
    result = check_patch(root, db, patched, chosen,
                         progress=console.stage if sys.stderr.isatty() else None, reverse=reverse, full=full)
    click.echo(render(result, output), nl=False)
    sys.exit(1 if result.comparison.new else 0)


def read_changes(patches: tuple[str, ...], revisions: str | None, tree: Path) -> tuple[list[FileChange], bool]:
    """The file changes of the patch files in order, or of the git range; True when they must be undone on the
    tree (a work tree at HEAD already holds them: the scratch tree is then the base)."""
    if bool(patches) == bool(revisions):
        raise BadInput("give either PATCH... or --git BASE..HEAD")
    if not revisions:
        return [change for name in patches for change in parse_patch(_read_patch(name), name)], False
    changes = parse_patch(git_diff(tree, revisions), f"git diff {revisions}")
    if holds_head(tree, revisions, changes):
        return [change.reversed() for change in reversed(changes)], True
    return changes, False


def _read_patch(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as err:
        raise BadInput(f"{name}: cannot read: {err.strerror}") from None
