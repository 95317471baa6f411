"""The index stage: kernel tree → fact database (library entry point `index_tree`).

Orchestrates the prefilter fixpoint, parallel parsing (a process pool, one worker per core; each worker
writes the facts of the files it parses into its own FactBuffer, which the store takes over), reuse of facts
by content hash, the text facts of every file (regaudit.parse.text_scan, recomputed by every run that finds
the tree changed), and the atomic publish of the database. Also owns the index's scope: which arches' arch/
directories it holds the C files of (an audit indexes only those it audits). It decides nothing about C syntax
(parse/) or SQL (facts/).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import TypeVar

from regaudit import __version__
from regaudit.arch.kconfig import require_arches
from regaudit.errors import BadInput
from regaudit.facts import link_facts, read, text_facts
from regaudit.facts.store import BufferSpec, FactBuffer, FactStore
from regaudit.forking import ignore_interrupts
from regaudit.parse.extract import extract_file, register_attribute_flags
from regaudit.parse.prepare import Dialect, load_dialect
from regaudit.parse.text_scan import (
    PROTO_TAG,
    TextScan,
    has_defines,
    has_protos,
    header_defines,
    merged,
    proto_definitions,
    scan_data,
)
from regaudit.prefilter import FRAME_STRUCTS, SEED_TOKENS, TokenCandidate, new_tokens, stop_tokens, token_hints
from regaudit.resources import content_hash, data_dir
from regaudit.token_scan import UNREADABLE, Occurrence, first_occurrences, matcher, names_a_token
from regaudit.tree import EXCLUDED_TOP_DIRS, KernelTree, SourceFile, arch_of, in_scope, open_tree, walk_sources

# Files larger than this are generated register tables, never pt_regs code; reading them into
# tree-sitter would cost more than the rest of the tree.
MAX_FILE_BYTES = 8 * 1024 * 1024
SCAN_CHUNK = 2000
# A cold index takes the workers' facts over every this many parsed files, while they parse the next ones,
# rather than all at the end of a round (a merge may meet a file whose result has not arrived yet: only
# when nothing is to be forgotten, when the store is new).
MERGE_EVERY = 300
Progress = Callable[[str, int, int], None]
_Item = TypeVar("_Item")


@dataclass
class IndexResult:
    db: Path
    tree: KernelTree
    files_parsed: int = 0
    files_reused: int = 0
    files_removed: int = 0
    files_warned: int = 0
    files_selected: int = 0
    tokens: int = 0
    rounds: int = 0  # of the prefilter fixpoint
    scans: int = 0  # token_scan passes over the tree's files
    parse_errors: int = 0
    unchanged: bool = False
    seconds: float = 0.0
    warnings: list[tuple[str, str, str]] = field(default_factory=list)
    changes: link_facts.IndexChanges | None = None  # what an overlay changed, for an incremental link
    arches: tuple[str, ...] | None = None  # the scope: arches whose arch/<arch>/ C files it holds (None: all)


@dataclass(frozen=True)
class _Parsed:
    """What became of one file a process parsed: its facts are in that process's FactBuffer when `stored`."""

    source: SourceFile
    sha256: str
    outcome: str  # 'stored'; 'same' (the content of the reusable facts: nothing stored); 'failed' (no facts)
    warning: tuple[str, str] | None  # (kind, message)
    parse_errors: int = 0
    extraction_warnings: tuple[tuple[str, str], ...] = ()  # (kind, message) of its `warnings` rows


def index_tree(tree_path: str | os.PathLike[str], db_path: Path, *, arches: Collection[str] | None = None,
               prefilter: str = "fixpoint", workers: int | None = None,
               progress: Progress | None = None) -> IndexResult:
    """Index `tree_path` into `db_path`, reusing facts of unchanged files. Atomic: see FactStore.

    `arches`: hold the C files of arch/<arch>/ for these arches only, besides generic code (default: every arch).
    The scope only grows: the arches the database held stay held (`_scope`)."""
    started = time.monotonic()
    started_at = _now()
    tree = open_tree(tree_path)
    matcher()  # a bad REGAUDIT_MATCHER is bad input before any work
    result = IndexResult(db=db_path, tree=tree)
    previous = read.previous_index(db_path) if db_path.exists() else None
    result.arches = _scope(tree, arches, previous)
    sources, symlinks, build_files = walk_sources(tree, result.arches)
    query_hash = _query_hash(tree)
    if previous and previous.matches(tree, query_hash, prefilter, result.arches, sources, build_files):
        result.unchanged = True
        read.record_unchanged_run(db_path, _run_row(tree, started_at, result, query_hash, prefilter,
                                                    previous.token_count))
        result.files_reused = previous.file_count
        result.seconds = time.monotonic() - started
        return result
    reusable = previous.reusable(tree, query_hash) if previous else {}
    with FactStore(db_path, bulk=not reusable) as store:
        with _pool(tree, workers, store.buffers) as pool:
            text_facts.clear(store.conn)  # before any merge of the buffers the workers add them to
            defines = _header_defines(tree, sources, pool)  # in the workers, beside the prefilter's rounds
            read.replace_sources(store.conn, sources, build_files)  # meanwhile, here
            selection = _Selection(tree, sources, store, pool, reusable, result, progress)
            tokens = selection.run(prefilter, token_hints() | (previous.tokens if previous else frozenset()),
                                   also=(PROTO_TAG,))
            defines.get()  # raises what a worker raised
            proto_files = [path for path in selection.files_naming(PROTO_TAG) if has_protos(path)]
            pool.map(_protos_chunk, [(str(tree.root), chunk) for chunk in _chunks(proto_files)])
        previously_indexed = set(previous.files) if previous else set()
        for path in previously_indexed - set(selection.selected):
            store.forget_file(path)
            result.files_removed += 1
        for path in symlinks:
            store.add_warning(path, "symlink", "symbolic link not followed (may loop or leave the tree)")
            result.warnings.append((path, "symlink", "symbolic link not followed"))
        result.files_warned = len(result.warnings)
        read.record_selection(store.conn, selection.selected, tokens)
        store.invalidate_derived()
        store.db["runs"].insert(_run_row(tree, started_at, result, query_hash, prefilter, len(tokens)))
    result.seconds = time.monotonic() - started
    return result


def index_overlay(tree_path: str | os.PathLike[str], db_path: Path, files: dict[str, bytes],
                  removed: list[str]) -> IndexResult:
    """Re-index the existing database `db_path` for a patched tree: replace the facts of `files` (tree-relative
    path -> new content) and their text facts, forget those of `removed`, empty the audits, record the run,
    publish atomically.

    For `regaudit check`, whose `db_path` is a scratch copy of the tree's database. A .c/.h file the walk
    considers is parsed when it was indexed or its new content names a prefilter token of the database (the
    dialect is `tree_path`'s); the token fixpoint is not re-run,
    so a patch that creates a new pt_regs-carrying type does not pull unchanged files into the index.
    The edges stay, stale once a fact changed (`link_facts.current_links`): `result.changes` lets the link
    stage relink only what the touched files reach. BadInput when `db_path` was never indexed.
    """
    started = time.monotonic()
    started_at = _now()
    tree = open_tree(tree_path)
    result = IndexResult(db=db_path, tree=tree)
    dialect = _dialect(str(tree.root))
    previous = read.previous_index(db_path)
    if previous is None:
        raise BadInput(f"{db_path}: no finished index run; run `regaudit index` first")
    with FactStore(db_path) as store:
        before = link_facts.touched_facts(store.conn, [*files, *removed])
        tokens = tuple(token for (token,) in store.conn.execute("SELECT token FROM prefilter_tokens"))
        for path in removed:
            store.forget_file(path)
            result.files_removed += path in previous.files
        with contextlib.closing(store.buffers.open()) as buffer:
            for path, data in sorted(files.items()):
                if _walked(path, previous.arches) and (path in previous.files or names_a_token(data, tokens)):
                    parsed = _parse_data(SourceFile(path, len(data), 0), data, None, dialect, buffer)
                    _store_parsed(store, parsed, result)
                    result.files_removed += parsed.outcome == "failed" and path in previous.files
        store.merge_buffers()
        text = merged(scan_data(path, data) for path, data in files.items() if _walked(path, previous.arches))
        text_facts.replace_files(store.conn, [*files, *removed], text)
        store.invalidate_derived(keep_links=True)
        result.arches = previous.arches
        run = _run_row(tree, started_at, result, previous.query_hash, previous.prefilter, previous.token_count)
        run_id = store.db["runs"].insert(run).last_pk
        result.changes = link_facts.IndexChanges(int(run_id), frozenset([*files, *removed]), before)
    result.seconds = time.monotonic() - started
    return result


def _scope(tree: KernelTree, requested: Collection[str] | None,
           previous: read.PreviousIndex | None) -> tuple[str, ...] | None:
    """The arches whose C files the index holds (None: every arch): `requested`, and those the database held
    for this tree, so that indexing fewer arches never drops facts a later command would need again."""
    if requested is None:
        return None
    require_arches(tree.root, requested)
    held: Collection[str] = ()
    if previous is not None and previous.tree_path == str(tree.root):
        if previous.arches is None:
            return None
        held = previous.arches
    return tuple(sorted({*requested, *held}))


def _walked(path: str, arches: tuple[str, ...] | None) -> bool:
    """Whether `walk_sources` of the scope `arches` considers `path`: a .c/.h file below a top directory it does
    not exclude, and not under arch/<arch>/ for an arch out of scope."""
    top, _, rest = path.partition("/")
    return (bool(rest) and top not in EXCLUDED_TOP_DIRS and path.endswith((".c", ".h"))
            and in_scope(arch_of(path), arches))


class _Occurrences:
    """Where the prefilter's passes saw tokens: per file, the offset of each token's first occurrence."""

    def __init__(self) -> None:
        self.scanned: set[str] = set()
        self.seen: dict[str, dict[str, int]] = {}

    def add(self, found: list[Occurrence]) -> None:
        for path, token, offset in found:
            self.seen.setdefault(path, {})[token] = offset

    def first_of(self, pending: dict[str, SourceFile], tokens: set[str]) -> list[tuple[SourceFile, str]]:
        """Pending files that name one of `tokens`, each with the first it names (or UNREADABLE)."""
        matched = []
        for path, spots in self.seen.items():
            if path not in pending:
                continue
            named = [(offset, -len(token), token) for token, offset in spots.items()
                     if token in tokens or token == UNREADABLE]
            if named:
                matched.append((pending[path], min(named)[2]))
        return sorted(matched, key=lambda item: item[0].path)


class _Selection:
    """One run of the prefilter fixpoint, parsing (or reusing) files as they are selected."""

    def __init__(self, tree: KernelTree, sources: list[SourceFile], store: FactStore,
                 pool: multiprocessing.pool.Pool, reusable: dict[str, tuple[int, int, str]],
                 result: IndexResult, progress: Progress | None) -> None:
        self.tree = tree
        self.sources = sources
        self.store = store
        self.pool = pool
        self.reusable = reusable
        self.result = result
        self.progress = progress or (lambda _stage, _done, _total: None)
        self.selected: dict[str, str] = {}
        self.occurrences = _Occurrences()

    def run(self, mode: str, hints: frozenset[str], also: tuple[str, ...] = ()) -> dict[str, tuple[int, str]]:
        """The fixpoint's tokens (-> round, origin), every file that names one admitted and parsed.

        `hints` are speculative tokens (earlier runs' tokens, rules/prefilter_hints.txt): the first pass
        over the tree looks for them beside the seeds, so the rounds that derive them need no pass of
        their own. They change speed, never the result: a file is admitted only for a token the
        fixpoint derived, and a derived token that no pass has looked for yet gets a pass. The first pass
        looks for the words `also` too, which select nothing (see `files_naming`)."""
        tokens: dict[str, tuple[int, str]] = {t: (0, "seed") for t in SEED_TOKENS}
        if mode == "all":
            self._admit([(s, "all") for s in self.sources])
            self.result.rounds = 1
            return tokens
        stop = stop_tokens()
        fresh = dict(tokens)
        pending = {s.path: s for s in self.sources}
        occurrences = self.occurrences
        candidates: dict[str, list[TokenCandidate]] = {origin: [] for origin in read.CANDIDATE_ORIGINS}
        speculative = sorted(hints - set(tokens) - stop)
        self._scan(occurrences, list(pending.values()), [*tokens, *speculative, *also])
        while fresh:
            self.result.rounds += 1
            unscanned = [token for token in fresh if token not in occurrences.scanned]
            if unscanned:
                self._scan(occurrences, list(pending.values()), unscanned)
            matched = occurrences.first_of(pending, set(fresh))
            for source, _token in matched:
                del pending[source.path]
            self._admit(matched)
            # Every admitted file's candidates, kept across rounds: a fresh token may make an earlier one a token.
            for candidate in read.token_candidates(self.store.conn, [source.path for source, _token in matched]):
                candidates[candidate.origin].append(candidate)
            # Layout tokens select the files defining them but carry no pointer: they never make
            # further names tokens (s390 pt_regs embeds tpi_info, which per-cpu lowcore embeds).
            carriers = [token for token, (_round, origin) in fresh.items() if origin != "layout"]
            offered = (candidate for origin in read.CANDIDATE_ORIGINS for candidate in candidates[origin])
            found = new_tokens(offered, carriers, set(tokens), stop) if carriers else {}
            layout = read.layout_tokens(self.store.conn, FRAME_STRUCTS) - set(tokens) - set(found)
            found |= dict.fromkeys(layout, "layout")
            fresh = {name: (self.result.rounds, origin) for name, origin in found.items()}
            tokens.update(fresh)
        self.result.tokens = len(tokens)
        return tokens

    def files_naming(self, word: str) -> list[str]:
        """The walked files that name `word` as a whole identifier (but those over MAX_FILE_BYTES, never read):
        from the passes `run` made, or a pass of its own when none looked for it (`--prefilter all` makes none)."""
        if word not in self.occurrences.scanned:
            self._scan(self.occurrences, self.sources, [word])
        return sorted(path for path, spots in self.occurrences.seen.items() if word in spots)

    def _scan(self, occurrences: _Occurrences, pending: list[SourceFile], tokens: list[str]) -> None:
        """One pass over `pending` for `tokens` (token_scan): where each file first names each one."""
        self.result.scans += 1
        by_path = {source.path: source for source in pending if source.size <= MAX_FILE_BYTES}
        chunks = _chunks(list(by_path))
        work = [(str(self.tree.root), chunk, tuple(tokens)) for chunk in chunks]
        for done, found in enumerate(self.pool.imap_unordered(_scan_chunk, work), start=1):
            occurrences.add(found)
            self.progress(f"scanning (pass {self.result.scans})", done, len(chunks))
        occurrences.scanned.update(tokens)

    def _admit(self, matched: list[tuple[SourceFile, str]]) -> None:
        to_parse: list[SourceFile] = []
        for source, token in matched:
            self.selected[source.path] = token
            prior = self.reusable.get(source.path)
            if prior is not None and (prior[0], prior[1]) == (source.size, source.mtime_ns):
                self.result.files_reused += 1
                continue
            to_parse.append(source)
        work = [(str(self.tree.root), source, self.reusable[source.path][2] if source.path in self.reusable else None)
                for source in to_parse]
        results = self.pool.imap_unordered(_parse_task, work, chunksize=4)
        if self.result.rounds == 2:
            # Most facts are in (round 1 brings ~85 % of them on 7.3): index them while the workers parse.
            self.store.build_indexes()
        for done, parsed in enumerate(results, start=1):
            if parsed.outcome == "same":
                self.result.files_reused += 1  # touched but identical content: keep its facts
            else:
                _store_parsed(self.store, parsed, self.result)
            self.progress("parsing", done, len(to_parse))
            if self.store.bulk and done % MERGE_EVERY == 0:
                self.store.merge_buffers()
        self.store.merge_buffers()  # the next round's tokens are read from these files' facts


def _store_parsed(store: FactStore, parsed: _Parsed, result: IndexResult) -> None:
    """Drop the previous facts of one parsed file, whose new facts (if it could be parsed) wait in a FactBuffer
    for `merge_buffers`; record its warnings."""
    path = parsed.source.path
    store.forget_file(path)
    if parsed.outcome == "stored":
        result.files_parsed += 1
        result.parse_errors += parsed.parse_errors
        result.warnings += [(path, kind, message) for kind, message in parsed.extraction_warnings]
    if parsed.warning is not None:
        store.add_warning(path, *parsed.warning)
        result.warnings.append((path, *parsed.warning))


def _header_defines(tree: KernelTree, sources: list[SourceFile], pool: multiprocessing.pool.Pool) \
        -> AsyncResult[list[None]]:
    """The header defines of every walked header of their kind, with GNU grep over chunks of files in the pool's
    workers, into their FactBuffers. Queued first: measured on 7.3, ~0.5 s less than reading them after the
    rounds. (The other text facts, BPF proto definitions, are read from the few files the prefilter's first
    pass saw `bpf_func_proto` in.)"""
    paths = [source.path for source in sources if has_defines(source.path)]
    return pool.map_async(_defines_chunk, [(str(tree.root), chunk) for chunk in _chunks(paths)])


def _chunks(items: list[_Item]) -> list[list[_Item]]:
    """`items` in runs of SCAN_CHUNK: few enough files for one grep command line."""
    return [items[i:i + SCAN_CHUNK] for i in range(0, len(items), SCAN_CHUNK)]


# -- worker processes ------------------------------------------------------------------------------

_DIALECT: Dialect | None = None
_BUFFER: FactBuffer | None = None  # where this worker writes the facts of the files it parses


def _init_worker(tree_root: str, buffers: BufferSpec) -> None:
    global _DIALECT, _BUFFER
    ignore_interrupts()
    _DIALECT = _dialect(tree_root)
    _BUFFER = buffers.open()


def _dialect(tree_root: str) -> Dialect:
    dialect = load_dialect(Path(tree_root))
    register_attribute_flags(dialect)
    return dialect


def _scan_chunk(args: tuple[str, list[str], tuple[str, ...]]) -> list[Occurrence]:
    root, paths, tokens = args
    return first_occurrences(root, paths, tokens)


def _defines_chunk(args: tuple[str, list[str]]) -> None:
    root, paths = args
    assert _BUFFER is not None
    with _BUFFER.transaction() as conn:
        text_facts.insert(conn, TextScan(header_defines(Path(root), paths), []))


def _protos_chunk(args: tuple[str, list[str]]) -> None:
    root, paths = args
    assert _BUFFER is not None
    with _BUFFER.transaction() as conn:
        text_facts.insert(conn, TextScan([], proto_definitions(Path(root), paths)))


def _parse_task(args: tuple[str, SourceFile, str | None]) -> _Parsed:
    root, source, reusable_sha = args
    try:
        with open(os.path.join(root, source.path), "rb") as handle:
            data = handle.read()
    except OSError as err:
        return _Parsed(source, "", "failed", ("unreadable", f"cannot read: {err.strerror}"))
    assert _DIALECT is not None and _BUFFER is not None
    return _parse_data(source, data, reusable_sha, _DIALECT, _BUFFER)


def _parse_data(source: SourceFile, data: bytes, reusable_sha: str | None, dialect: Dialect,
                buffer: FactBuffer) -> _Parsed:
    """Parse one file into `buffer`, unless its content hashes to `reusable_sha`, whose facts the database holds."""
    sha = hashlib.sha256(data).hexdigest()
    if b"\0" in data[:8192]:
        return _Parsed(source, sha, "failed", ("binary", "contains NUL bytes; not C source"))
    if len(data) > MAX_FILE_BYTES:
        return _Parsed(source, sha, "failed", ("too-large", f"{len(data)} bytes; over {MAX_FILE_BYTES}"))
    warning = None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        warning = ("encoding", f"not UTF-8 (byte {err.start}); parsed as bytes")
    try:
        facts = extract_file(source.path, data, dialect)
    except Exception as err:
        return _Parsed(source, sha, "failed", ("internal", f"extraction failed: {type(err).__name__}: {err}"))
    if sha == reusable_sha and warning is None:
        return _Parsed(source, sha, "same", None)
    buffer.add(facts, sha, source.size, arch_of(source.path))
    return _Parsed(source, sha, "stored", warning, facts.parse_errors,
                   tuple((row["kind"], row["message"]) for row in facts.warnings))


class _pool:
    """A process pool sized to the machine (2 cores on CI), closed even on Ctrl-C."""

    def __init__(self, tree: KernelTree, workers: int | None, buffers: BufferSpec) -> None:
        self.size = workers or os.cpu_count() or 1
        self.tree = tree
        self.buffers = buffers

    def __enter__(self) -> multiprocessing.pool.Pool:
        self.pool = multiprocessing.get_context("fork").Pool(
            self.size, initializer=_init_worker, initargs=(str(self.tree.root), self.buffers))
        return self.pool

    def __exit__(self, *exc: object) -> None:
        self.pool.terminate()
        self.pool.join()


_EXTRACTOR_SOURCES = ("parse", "prefilter.py", "token_scan.py", "index.py", "facts/schema.py", "facts/read.py")
# Rule data the index reads; frame and producer data are read by later stages, so editing them
# must not force a re-index.
_INDEX_RULES = ("c_dialect.toml", "prefilter.toml")


def _query_hash(tree: KernelTree) -> str:
    """Facts stay valid while queries/, rules/, the extractor's code and the tree's attribute
    headers are unchanged; any change there reparses every file."""
    digest = hashlib.sha256(content_hash("queries").encode() + __version__.encode())
    for name in _INDEX_RULES:
        digest.update((data_dir("rules") / name).read_bytes())
    package = Path(__file__).parent
    for name in _EXTRACTOR_SOURCES:
        for source in sorted((package / name).rglob("*.py")) if (package / name).is_dir() else [package / name]:
            digest.update(source.read_bytes())
    dialect = load_dialect(tree.root)
    digest.update(repr(sorted((n, a.function_like, a.inline, a.weak) for n, a in dialect.attributes.items()))
                  .encode())
    return digest.hexdigest()[:16]


def _run_row(tree: KernelTree, started_at: str, result: IndexResult, query_hash: str, prefilter: str,
             tokens: int) -> dict[str, object]:
    return {"stage": "index", "tool_version": __version__, "tree_path": str(tree.root),
            "kernel_version": tree.version, "started": started_at, "finished": _now(),
            "files_parsed": result.files_parsed, "files_reused": result.files_reused,
            "files_removed": result.files_removed, "files_warned": result.files_warned,
            "query_hash": query_hash, "prefilter": prefilter, "prefilter_tokens": tokens,
            "arches": None if result.arches is None else json.dumps(result.arches)}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
