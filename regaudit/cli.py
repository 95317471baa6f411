"""The `regaudit` command line: option parsing, output and exit codes, nothing else.

Every command calls one library function. Errors: a `RegauditError` becomes one line on stderr
and its exit code (2 bad input, 3 internal); anything else is an internal error (3) whose
traceback only `--debug` shows; Ctrl-C exits 130 and leaves the database as it was.

Exit codes: 0 success; 1 the command found what it checks for (`rules check` drift);
2 bad input or usage; 3 internal error; 130 interrupted.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from regaudit import __version__
from regaudit.errors import RegauditError
from regaudit.patch.commands import check as check_command
from regaudit.report.commands import diff as diff_command
from regaudit.report.commands import emit, render
from regaudit.report.commands import report as report_command
from regaudit.terminal import Console, progress_reporter

if TYPE_CHECKING:
    from regaudit.index import IndexResult


def _handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return command(*args, **kwargs)
        except RegauditError as err:
            if debug:
                raise
            click.echo(f"regaudit: error: {err}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("regaudit: interrupted; the database is unchanged", err=True)
            sys.exit(130)
        except Exception as err:
            if debug:
                raise
            click.echo(f"regaudit: internal error: {type(err).__name__}: {err} (run with --debug for details)",
                       err=True)
            sys.exit(3)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="regaudit")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """Find kernel code that reads pt_regs members a sparse ftrace frame never filled."""


def default_db(tree: str) -> Path:
    """`./linux-7.3.regaudit.db` for tree `.../linux-7.3`: one database per tree, next to the user."""
    return Path.cwd() / f"{Path(tree).resolve().name}.regaudit.db"


tree_argument = click.argument("tree", type=click.Path(file_okay=False, path_type=str))
db_option = click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
                         help="Fact database to create or update [default: ./<tree>.regaudit.db].")


def indexed(tree: str, db_path: Path | None, console: Console, **options: Any) -> IndexResult:
    """Run the (incremental) index stage that every tree command starts with."""
    from regaudit.index import index_tree

    with progress_reporter(console) as progress:
        return index_tree(tree, db_path or default_db(tree), progress=progress, **options)


@main.command()
@tree_argument
@db_option
@click.option("--prefilter", type=click.Choice(["fixpoint", "all"]), default="fixpoint", show_default=True,
              help="'fixpoint': only files that can carry pt_regs (sound, see docs); 'all': every .c/.h file.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Parser processes [default: one per core].")
@click.option("--arch", "arches", metavar="A[,B]",
              help="Index the C files under arch/ of these arches only, besides generic code [default: every "
                   "arch]. Arches the database already holds stay.")
@_handle_errors
def index(tree: str, db_path: Path | None, prefilter: str, jobs: int | None, arches: str | None) -> None:
    """Parse TREE into a SQLite fact database (incremental: unchanged files are reused)."""
    from regaudit.facts.read import table_counts

    console = Console()
    result = indexed(tree, db_path, console, arches=split_arches(arches), prefilter=prefilter, workers=jobs)
    console.index_summary(result, table_counts(result.db))


@main.command()
@tree_argument
@click.option("--arch", "arches", metavar="A[,B]", help="Arches to link [default: every arch with rules/frames].")
@db_option
@_handle_errors
def link(tree: str, arches: str | None, db_path: Path | None) -> None:
    """Resolve calls per architecture (direct, macro, __weak override, function pointer) into `edges`."""
    from regaudit.arch.catalogue import modelled_arches
    from regaudit.flow.link import link_database
    from regaudit.tree import open_tree

    console = Console()
    chosen = split_arches(arches) or modelled_arches(open_tree(tree).root)
    db = indexed(tree, db_path, console, arches=chosen).db
    result = link_database(db, tree, chosen)
    for arch in result.arches:
        click.echo(f"{arch.arch}: {arch.resolved_calls} of {arch.calls} calls resolved, {arch.edges} edges "
                   f"({arch.seconds:.1f} s)")
    click.echo(f"link: {len(result.arches)} arch(es) in {result.seconds:.1f} s into {result.db}")


def split_arches(arches: str | None) -> list[str] | None:
    """'x86, arm64' -> ['x86', 'arm64']; None (also for a list naming no arch, ',') keeps each command's default."""
    return [a.strip() for a in (arches or "").split(",") if a.strip()] or None


@main.group()
def rules() -> None:
    """Inspect the rule data under rules/."""


@rules.command("check")
@tree_argument
@_handle_errors
def rules_check(tree: str) -> None:
    """Report rule evidence that no longer matches TREE (exit 1 when any drifted)."""
    from regaudit.ruleset.evidence import check_evidence, format_drift, uncovered_files
    from regaudit.tree import open_tree

    kernel = open_tree(tree)
    drifts = check_evidence(kernel.root, kernel.version)
    for drift in drifts:
        click.echo(format_drift(drift))
    for path in uncovered_files(kernel.version):
        click.echo(f"{path}: no evidence verified on {kernel.series}; its data is used as the nearest version's",
                   err=True)
    click.echo(f"rules check: {len(drifts)} drifted evidence line(s) on {kernel.version}")
    sys.exit(1 if drifts else 0)


@main.command()
@tree_argument
@click.option("--arch", "arches", metavar="A[,B]", help="Arches to model [default: every arch with rules/frames].")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="'json': the canonical list of models on stdout.")
@db_option
@_handle_errors
def frames(tree: str, arches: str | None, output: str, db_path: Path | None) -> None:
    """Show which pt_regs members each ftrace path fills in TREE, per arch, producer and context."""
    from regaudit.arch.frames_report import frames_json, frames_table, frames_text
    from regaudit.arch.producers import build_frame_models
    from regaudit.audit.run import auditable_arches
    from regaudit.tree import open_tree

    console = Console()
    chosen = auditable_arches(open_tree(tree).root, split_arches(arches))
    db = indexed(tree, db_path, console, arches=chosen).db
    models = build_frame_models(tree, db, chosen)
    if output == "json":
        click.echo(frames_json(models))
    elif console.rich.is_terminal:
        console.rich.print(frames_table(models))
    else:
        click.echo(frames_text(models))


@main.command()
@tree_argument
@click.option("--arch", "arches", metavar="A[,B]", help="Arches to check [default: every arch with rules/frames].")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path),
              help="A kernel .config: evaluate every CONFIG_ guard as it says (absent symbols are off).")
@click.option("--format", "output", type=click.Choice(["text", "json", "html", "sarif"]), default="text",
              show_default=True, help="Report format ('json' is the documented contract).")
@click.option("-o", "--output", "output_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report to this file instead of stdout.")
@click.option("--fail-on-findings", is_flag=True, help="Exit 1 when there is at least one finding.")
@click.option("--no-color", is_flag=True, help="Plain text even on a terminal.")
@click.option("--fresh", is_flag=True,
              help="Link, model and check again even when nothing the stored audit was made from changed.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Processes for parsing and for checking arches [default: one per core].")
@db_option
@_handle_errors
def audit(tree: str, arches: str | None, config: Path | None, output: str, output_file: Path | None,
          fail_on_findings: bool, no_color: bool, fresh: bool, jobs: int | None, db_path: Path | None) -> None:
    """Index, link, model and check TREE: consumers reading pt_regs members a sparse ftrace frame left unpopulated."""
    from regaudit.audit.run import audit_database, check_request, stored_audit

    chosen = check_request(tree, split_arches(arches), config)
    console = Console()
    index = indexed(tree, db_path, console, arches=chosen, workers=jobs)
    progress = console.stage if sys.stderr.isatty() else None
    document = None if config is not None or fresh else stored_audit(index.db, index.tree, chosen, exact=True)
    if document is not None and progress:
        progress("nothing changed since the stored audit: reusing it (--fresh runs it again)")
    if document is None:
        document = audit_database(index.db, tree, chosen, config, progress=progress, jobs=jobs)
    color = not no_color and output_file is None and console.rich.is_terminal
    emit(render(document, output, color=color), output_file)
    sys.exit(1 if fail_on_findings and document["findings"] else 0)


for _command in (report_command, diff_command, check_command):
    _command.callback = _handle_errors(_command.callback)
    main.add_command(_command)
