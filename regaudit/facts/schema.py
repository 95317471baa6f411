"""Schema of the fact database, as an ordered list of migrations.

Comments inside each CREATE TABLE are kept by SQLite in `sqlite_master`, so `sqlite-utils schema
DB` or datasette shows a reviewer what every column means without this code. A migration is never
edited once released: add a new one. `apply_migrations` records the schema version in
`PRAGMA user_version`.

Conventions for every fact table: `file` is the tree-relative path, `line` is 1-based, `condition`
is the `#if`/`#ifdef` guard around the fact as C preprocessor text (`defined(CONFIG_X) && !(Y)`),
'' when unguarded. `function_id` points to `functions.id`; function-like macros live in
`functions` too (kind = 'macro') so that facts inside macro bodies have the same shape.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the index stage's facts.
    """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    stage TEXT NOT NULL,            -- 'index', 'link', 'check', ...
    tool_version TEXT NOT NULL,     -- regaudit version that wrote the run
    tree_path TEXT NOT NULL,        -- absolute path of the kernel tree
    kernel_version TEXT NOT NULL,   -- from the tree's top Makefile, e.g. '7.3.4'
    started TEXT NOT NULL,          -- ISO-8601 UTC
    finished TEXT,                  -- ISO-8601 UTC; NULL while running (never committed so)
    files_parsed INTEGER,           -- files (re)parsed in this run
    files_reused INTEGER,           -- files whose facts were kept because their content hash matched
    files_removed INTEGER,          -- files dropped (deleted from the tree or no longer selected)
    files_warned INTEGER,           -- files that could not be parsed (see `warnings`)
    query_hash TEXT NOT NULL,       -- hash of queries/ and rules/: facts are reused only while it matches
    prefilter TEXT NOT NULL,        -- 'fixpoint' (sound prefilter) or 'all' (every .c/.h file)
    prefilter_tokens INTEGER        -- size of the prefilter's final token set (see `prefilter_tokens`)
);
CREATE TABLE sources (
    path TEXT PRIMARY KEY,          -- every .c/.h file the prefilter looked at
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,      -- with size, the cheap check that lets a warm run skip reading the file
    selected INTEGER NOT NULL,      -- 1 when the file is parsed into facts
    reason TEXT                     -- first prefilter token it matched (why it was selected), else NULL
);
CREATE TABLE prefilter_tokens (
    token TEXT PRIMARY KEY,         -- identifier whose mention makes a file relevant
    round INTEGER NOT NULL,         -- fixpoint round that added it (0 = seed)
    origin TEXT NOT NULL            -- why: 'seed', 'struct member', 'typedef', 'macro body', 'return type'
);
CREATE TABLE files (
    path TEXT PRIMARY KEY,          -- tree-relative path of a parsed file
    sha256 TEXT NOT NULL,           -- content hash; facts are reused while it matches
    size INTEGER NOT NULL,
    arch TEXT NOT NULL,             -- 'x86', 'arm64', ... for arch/<name>/..., else 'generic'
    parse_errors INTEGER NOT NULL,  -- tree-sitter ERROR + MISSING nodes (macros it cannot see through)
    rewrites INTEGER NOT NULL       -- kernel macros rewritten to plain C before parsing (see rules/)
);
CREATE TABLE warnings (
    path TEXT NOT NULL,             -- file that could not be read or parsed
    kind TEXT NOT NULL,             -- 'unreadable', 'binary', 'encoding', 'too-large', 'rewrite', ...
    message TEXT NOT NULL
);
CREATE TABLE functions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,             -- real name (BPF_CALL_3(bpf_get_stackid, ...) -> 'bpf_get_stackid')
    kind TEXT NOT NULL,             -- 'function', 'macro' (function-like #define), or the definition
                                    -- macro family that produced it ('BPF_CALL', 'SYSCALL_DEFINE', ...)
    file TEXT NOT NULL,
    line INTEGER NOT NULL,          -- line of the name
    end_line INTEGER NOT NULL,      -- last line of the body
    storage TEXT NOT NULL,          -- 'static' or 'extern' (macros: 'macro')
    inline INTEGER NOT NULL,        -- 1 for inline / __always_inline
    weak INTEGER NOT NULL,          -- 1 for __weak: an arch's strong definition replaces it
    return_type TEXT,               -- C text, e.g. 'struct pt_regs *'; NULL for macros
    macro_body TEXT,                -- for kind='macro': the replacement text, continuations joined
    condition TEXT NOT NULL
);
CREATE TABLE params (
    function_id INTEGER NOT NULL,
    position INTEGER NOT NULL,      -- 0-based
    name TEXT,                      -- NULL for unnamed parameters
    type TEXT                       -- C text, e.g. 'struct pt_regs *'; NULL for macro parameters
);
CREATE TABLE variables (
    function_id INTEGER,            -- NULL for file-scope variables
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,             -- C text, e.g. 'struct pt_regs *', 'struct pt_regs [4]'
    storage TEXT NOT NULL,          -- 'auto', 'static', 'extern', 'percpu' (DEFINE_PER_CPU)
    condition TEXT NOT NULL
);
CREATE TABLE defines (
    name TEXT NOT NULL,             -- object-like #define (function-like ones are in `functions`)
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    value TEXT NOT NULL,            -- replacement text, continuations joined
    condition TEXT NOT NULL
);
CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    function_id INTEGER,            -- caller (NULL at file scope, e.g. inside an initializer)
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    col INTEGER NOT NULL,           -- 1-based column of the callee
    callee TEXT,                    -- name when the callee is a plain identifier, else NULL
    callee_expr TEXT NOT NULL,      -- callee as written: 'ftrace_partial_regs', 'fp->entry_handler'
    callee_member TEXT,             -- field called through, for 'fp->entry_handler' -> 'entry_handler'
    callee_base_var TEXT,           -- variable the field belongs to, 'fp'
    callee_base_type TEXT,          -- its declared type when known, 'struct fprobe *'
    n_args INTEGER NOT NULL,
    result_use TEXT NOT NULL,       -- 'discarded', 'assigned', 'argument', 'returned', 'condition', 'other'
    condition TEXT NOT NULL
);
CREATE TABLE call_args (
    call_id INTEGER NOT NULL,
    position INTEGER NOT NULL,      -- 0-based
    expr TEXT NOT NULL,             -- argument as written
    var TEXT,                       -- variable at the root of the argument ('regs' for regs, &regs->x, (void *)regs)
    var_kind TEXT,                  -- 'param', 'local', 'global' or NULL when unknown/not a variable
    param_index INTEGER,            -- when var_kind='param': the caller's parameter position
    address_of INTEGER NOT NULL,    -- 1 when the argument is &... (the callee may write through it)
    member TEXT,                    -- member path when the argument is var->member..., else NULL
    inner_call TEXT                 -- callee when the argument is itself a call, e.g. 'bpf_kprobe_multi_pt_regs_ptr'
);
CREATE TABLE accesses (
    id INTEGER PRIMARY KEY,
    function_id INTEGER,            -- function or macro containing the access (NULL at file scope)
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    col INTEGER NOT NULL,           -- 1-based column of the member name
    base_expr TEXT NOT NULL,        -- expression left of the first -> or ., parentheses stripped
    base_var TEXT,                  -- variable at its root ('regs'; for arch_ftrace_regs(fregs)->... 'fregs')
    base_var_kind TEXT,             -- 'param', 'local', 'global' or NULL
    param_index INTEGER,            -- when base_var_kind='param'
    base_type TEXT,                 -- declared type of base_var when known
    base_call TEXT,                 -- when the base is a call, its callee ('arch_ftrace_regs')
    base_cast TEXT,                 -- when the base is a cast, the type cast to
    via TEXT NOT NULL,              -- operator of the first hop: '->' or '.'
    member TEXT NOT NULL,           -- member path: 'cs', 'regs[29]', 'regs[*]' (index not constant),
                                    -- 'regs_intr.regs' (nested)
    access TEXT NOT NULL,           -- 'read', 'write' (x->f = v), 'readwrite' (x->f |= v, x->f++),
                                    -- 'address' (&x->f taken: may be written or read through)
    mask TEXT,                      -- bits involved: the other operand of '&' in a read, of '|=', '&=' in a write
    condition TEXT NOT NULL
);
CREATE TABLE assignments (
    id INTEGER PRIMARY KEY,
    function_id INTEGER,            -- NULL at file scope
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    is_declaration INTEGER NOT NULL, -- 1 for 'T x = e;', 0 for 'x = e;'
    operator TEXT NOT NULL,         -- '=', '|=', ...
    lhs_expr TEXT NOT NULL,
    lhs_var TEXT,                   -- root variable of the left side
    lhs_var_kind TEXT,              -- 'param', 'local', 'global' or NULL
    lhs_member TEXT,                -- member path when the left side is var->member, else NULL
    lhs_deref INTEGER NOT NULL,     -- 1 for '*p = e' / '*(T **)p = e'
    lhs_type TEXT,                  -- declared type of lhs_var when known
    rhs_expr TEXT NOT NULL,
    rhs_kind TEXT NOT NULL,         -- 'call', 'var', 'member', 'address', 'cast', 'container_of',
                                    -- 'constant', 'other'
    rhs_callee TEXT,                -- for 'call' (and casts of calls)
    rhs_var TEXT,                   -- root variable of the right side
    rhs_var_kind TEXT,
    rhs_member TEXT,                -- member path read on the right side, or container_of's member
    cast_type TEXT,                 -- for casts and container_of: the target type
    condition TEXT NOT NULL
);
CREATE TABLE bindings (
    id INTEGER PRIMARY KEY,
    function_id INTEGER,            -- NULL for a file-scope initializer
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    kind TEXT NOT NULL,             -- 'initializer' (.func = f) or 'assignment' (x->fp.entry_handler = f)
    struct_type TEXT,               -- struct of the object initialised/assigned, 'struct bpf_func_proto'
    field TEXT NOT NULL,            -- field path inside it, 'func', 'fp.entry_handler'
    target TEXT NOT NULL,           -- identifier bound (a function name, checked by the link stage)
    holder TEXT,                    -- variable initialised or base variable assigned
    condition TEXT NOT NULL
);
CREATE TABLE structs (
    id INTEGER PRIMARY KEY,
    name TEXT,                      -- tag; NULL for anonymous
    kind TEXT NOT NULL,             -- 'struct' or 'union'
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    condition TEXT NOT NULL
);
CREATE TABLE struct_members (
    struct_id INTEGER NOT NULL,
    position INTEGER NOT NULL,      -- order within the struct, anonymous members flattened in
    name TEXT,                      -- NULL for an anonymous struct/union that is itself flattened
    type TEXT NOT NULL,             -- C text
    array_len TEXT,                 -- '31' for u64 regs[31]; text as written
    bits TEXT,                      -- bit-field width
    anon_path TEXT NOT NULL,        -- '' or the anonymous unions/structs it sits in, e.g. 'union/struct'
    line INTEGER NOT NULL,
    condition TEXT NOT NULL
);
CREATE TABLE typedefs (
    name TEXT NOT NULL,
    type TEXT NOT NULL,             -- C text of the underlying type
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    condition TEXT NOT NULL
);
CREATE INDEX functions_name ON functions(name);
CREATE INDEX functions_file ON functions(file);
CREATE INDEX params_function ON params(function_id);
CREATE INDEX variables_function ON variables(function_id);
CREATE INDEX variables_file ON variables(file);
CREATE INDEX defines_name ON defines(name);
CREATE INDEX defines_file ON defines(file);
CREATE INDEX calls_function ON calls(function_id);
CREATE INDEX calls_callee ON calls(callee);
CREATE INDEX calls_file ON calls(file);
CREATE INDEX call_args_call ON call_args(call_id);
CREATE INDEX accesses_function ON accesses(function_id);
CREATE INDEX accesses_file ON accesses(file);
CREATE INDEX assignments_function ON assignments(function_id);
CREATE INDEX assignments_file ON assignments(file);
CREATE INDEX bindings_target ON bindings(target);
CREATE INDEX bindings_file ON bindings(file);
CREATE INDEX structs_name ON structs(name);
CREATE INDEX structs_file ON structs(file);
CREATE INDEX struct_members_struct ON struct_members(struct_id);
CREATE INDEX typedefs_file ON typedefs(file);
CREATE INDEX warnings_path ON warnings(path);
""",
    # 2: the link stage's per-architecture call resolution.
    """
CREATE TABLE edges (
    arch TEXT NOT NULL,             -- architecture whose program this edge belongs to: 'x86', 'arm64', ...
    call_id INTEGER NOT NULL,       -- calls.id of the call site
    caller_id INTEGER,              -- calls.function_id: the calling function (NULL at file scope)
    callee_id INTEGER NOT NULL,     -- functions.id of a definition the call reaches on this arch
    kind TEXT NOT NULL,             -- 'direct' (a function), 'macro' (a function-like macro), 'weak' (a __weak
                                    -- definition no strong one replaces), 'pointer' (through a field bound to it)
    condition TEXT NOT NULL         -- guards the arch's build leaves open, joined with &&: the call's, the
                                    -- callee's and (for 'pointer') the binding's; '' when the edge always exists
);
-- A call with no edge for an arch calls nothing visible to it (an external symbol, asm, a function
-- pointer no binding names) or is compiled out there. Several edges for one call are alternatives
-- (one per #if arm left open, or every function bound to a field).
CREATE TABLE link_arches (
    arch TEXT PRIMARY KEY,          -- an architecture the link stage resolved
    run_id INTEGER NOT NULL,        -- runs.id of the link run that wrote its edges
    calls INTEGER NOT NULL,         -- call sites visible to the arch (in its program, guard not false)
    resolved_calls INTEGER NOT NULL, -- of those, calls with at least one edge
    edges INTEGER NOT NULL          -- rows in `edges` for the arch
);
CREATE INDEX edges_call ON edges(arch, call_id);
CREATE INDEX edges_caller ON edges(arch, caller_id);
CREATE INDEX edges_callee ON edges(arch, callee_id);
""",
    # 3: the check stage's findings (`regaudit audit`): one audit run's results, readable without the code.
    """
CREATE TABLE audits (
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,          -- UTC ISO timestamp
    finished TEXT,                  -- NULL while running (never published so)
    tool_version TEXT NOT NULL,
    rules_hash TEXT NOT NULL,       -- hash of every file under rules/ the audit used
    tree_path TEXT NOT NULL,
    kernel_version TEXT NOT NULL,   -- '7.3.4'
    arches TEXT NOT NULL,           -- JSON list of the architectures checked
    config TEXT                     -- the --config .config file the guards were evaluated against, or NULL
);
CREATE TABLE frame_models (
    audit_id INTEGER NOT NULL,      -- audits.id
    arch TEXT NOT NULL,
    producer TEXT NOT NULL,         -- 'ftrace_partial_regs', 'save_regs', ...
    context TEXT NOT NULL,          -- 'entry' or 'exit'
    trampoline TEXT NOT NULL,       -- the rules/frames entry the frame starts from
    result TEXT NOT NULL,           -- 'frame', 'null' or 'undetermined'
    model TEXT NOT NULL             -- the model as `regaudit frames --format json` prints it (JSON object)
);
CREATE TABLE findings (
    id INTEGER PRIMARY KEY,
    audit_id INTEGER NOT NULL,      -- audits.id
    fingerprint TEXT NOT NULL,      -- hash of arch, producer, context, member, access, consumer and path
                                    -- functions: no line numbers, stable across unrelated edits
    arch TEXT NOT NULL,
    subsystem TEXT NOT NULL,        -- coarse class of the consumer's file: perf, kprobes/fprobe, BPF, tracing,
                                    -- arch-unwind, other
    maintainers TEXT NOT NULL,      -- the MAINTAINERS section of the consumer's file ('' when none)
    member TEXT NOT NULL,           -- 'cs', 'regs[19]', 'regs[*]' (index unknown), '*' (any member)
    reaches TEXT NOT NULL,          -- JSON list of the unpopulated members the access can touch
    access TEXT NOT NULL,           -- 'read' or 'write'
    via TEXT NOT NULL,              -- 'direct', 'bpf-program', 'bpf-helper', 'perf-register-table', 'dynamic'
    mask TEXT,                      -- bits the consumer tests or sets, when it names them
    state TEXT NOT NULL,            -- what the member holds: 'stale', 'uninitialised', 'zero' ('populated' or
                                    -- 'constant' for a write into the live frame)
    producer TEXT NOT NULL,         -- frame model: builder API ('ftrace_partial_regs')
    context TEXT NOT NULL,          -- 'entry' or 'exit'
    trampoline TEXT NOT NULL,
    producer_file TEXT NOT NULL,    -- where the model's first evidence is (the builder or trampoline)
    producer_line INTEGER NOT NULL,
    source_rule TEXT NOT NULL,      -- the rules/sources.toml entry where the pointer is born
    source_function TEXT NOT NULL,
    source_file TEXT NOT NULL,
    source_line INTEGER NOT NULL,
    consumer_function TEXT NOT NULL,
    consumer_file TEXT NOT NULL,
    consumer_line INTEGER NOT NULL,
    conditions TEXT NOT NULL        -- JSON list of the #if guards the arch's build leaves open on the finding
);
CREATE TABLE finding_hops (
    finding_id INTEGER NOT NULL,    -- findings.id
    position INTEGER NOT NULL,      -- 0 = the source; the last hop is the consumer's access
    function TEXT NOT NULL,         -- the function the hop is in
    file TEXT NOT NULL,
    line INTEGER NOT NULL,          -- the line holding the call, store or access that moves the pointer on
    condition TEXT NOT NULL         -- the guard left open on this hop, '' when none
);
CREATE TABLE clean_sources (
    audit_id INTEGER NOT NULL,
    arch TEXT NOT NULL,
    source_rule TEXT NOT NULL,
    source_function TEXT NOT NULL,
    source_file TEXT NOT NULL,
    source_line INTEGER NOT NULL,
    producer TEXT NOT NULL,
    context TEXT NOT NULL,
    trampoline TEXT NOT NULL,
    producer_file TEXT NOT NULL,
    producer_line INTEGER NOT NULL,
    accesses INTEGER NOT NULL,      -- member accesses the frame pointer reaches from this source
    members TEXT NOT NULL           -- JSON list of the members read, all populated
);
CREATE INDEX findings_audit ON findings(audit_id);
CREATE INDEX finding_hops_finding ON finding_hops(finding_id);
""",
    # 4: the C branch conditions a call or access runs under (if/else arms, ?:, && / ||, guard clauses).
    """
ALTER TABLE calls ADD COLUMN branches TEXT NOT NULL DEFAULT '[]'
    /* JSON [[condition text, holds], ...], innermost first: [["perf_hw_regs(regs)", true]] for a call in the
       then-arm of `if (perf_hw_regs(regs))`; an earlier `if (C) return;` in the same block adds [C, false] */;
ALTER TABLE accesses ADD COLUMN branches TEXT NOT NULL DEFAULT '[]' /* as calls.branches */;
""",
    # 5: the same for assignments, so a store or a reassignment the frame model proves dead can be dropped.
    """
ALTER TABLE assignments ADD COLUMN branches TEXT NOT NULL DEFAULT '[]' /* as calls.branches */;
""",
    # 6: what each seed's result depended on, so `regaudit check` re-runs only the seeds a patch can change.
    """
CREATE TABLE seed_scopes (
    audit_id INTEGER NOT NULL,      -- audits.id
    arch TEXT NOT NULL,
    source_rule TEXT NOT NULL,      -- the seed, as its findings cite it (findings.source_*)
    source_function TEXT NOT NULL,
    source_file TEXT NOT NULL,
    source_line INTEGER NOT NULL,
    scope TEXT NOT NULL             -- JSON {"functions": [[file, name], ...] the walks analysed, "names": [...]
                                    -- they call (callee, or field of a call through a pointer) or the frame
                                    -- oracle read (macro, constant), "cells": [...] field or variable names of
                                    -- the memory cells they stored the frame into}
);
CREATE INDEX seed_scopes_audit ON seed_scopes(audit_id, arch);
""",
    # 7: text facts (regaudit.parse.text_scan): read by the index stage from the raw text of every file of
    # their kind the tree walk considers (not tools/, scripts/, ...), selected by the prefilter or not, so
    # later stages need not grep the tree.
    """
CREATE TABLE header_defines (
    file TEXT NOT NULL,             -- a .h file under include/ or arch/<arch>/include/
    arch TEXT NOT NULL,             -- 'generic' for include/, else the <arch> of arch/<arch>/include/
    line INTEGER NOT NULL,
    name TEXT NOT NULL,             -- spelled like a kernel constant: _*[A-Z][A-Z0-9_]*
    value TEXT NOT NULL             -- replacement text before any /* comment, trimmed; '' for `#define X ` (blanks)
);
-- Every single-line object-like #define of a constant-looking name (no backslash on the line), whatever #if
-- guards it: the frame oracle folds the values a name has in an arch's and the generic headers when the
-- index saw no definition of it (the file was not selected).
CREATE TABLE bpf_proto_definitions (
    file TEXT NOT NULL,             -- a .c file
    line INTEGER NOT NULL,          -- line where the definition starts
    name TEXT NOT NULL,
    kind TEXT NOT NULL              -- 'variable' (`struct bpf_func_proto NAME = {`) or 'function' (a function
                                    -- returning `struct bpf_func_proto *`)
);
-- Where the BPF helper walk (regaudit.flow.bpf_helpers) reads a proto or func_proto function the index did
-- not parse; whatever #if guards it.
CREATE INDEX header_defines_name ON header_defines(name);
CREATE INDEX bpf_proto_definitions_name ON bpf_proto_definitions(name);
""",
    # 8: the BPF helpers an audit derived per calls_helpers bridge, reused by `regaudit check` when a patch
    # leaves the helper protos alone.
    """
CREATE TABLE bpf_helper_lists (
    audit_id INTEGER NOT NULL,      -- audits.id
    bridge TEXT NOT NULL,           -- the rules/bridges.toml entry (kind calls_helpers)
    helpers TEXT NOT NULL           -- JSON list of {"helper", "proto", "function", "ctx_positions", "via", "file",
                                    -- "line", "condition"}: the helpers whose proto takes the ctx, in walk order
);
""",
    # 9: the walks of BPF helper bodies an audit made per arch, reused by `regaudit check` for the helpers its
    # patch cannot change.
    """
CREATE TABLE helper_walks (
    audit_id INTEGER NOT NULL,      -- audits.id
    arch TEXT NOT NULL,
    helper TEXT NOT NULL,           -- the C function the helper runs (a proto's .func)
    position INTEGER NOT NULL,      -- 0-based, its ctx parameter the walk starts from
    walk TEXT NOT NULL              -- JSON {"function", "position", "answers": [[condition, [frame variables],
                                    -- true/false/null], ...] the frame oracle gave (a frame model answering the
                                    -- same takes the walk over), "accesses": [{"function", "file", "line",
                                    -- "member", "access", "mask", "via", "path": [[function, file, line,
                                    -- condition], ...], "within"}, ...], "scope": as seed_scopes.scope}
);
CREATE INDEX helper_walks_audit ON helper_walks(audit_id, arch);
""",
    # 10: the files later stages read as text besides the C facts, so that a change to one (a Kconfig edit)
    # makes the next index run a changed one, which drops the links and audits made from the old text; and
    # which code made an audit.
    """
CREATE TABLE build_files (
    path TEXT PRIMARY KEY,          -- Kconfig*, Makefile*, Kbuild*, *.S and MAINTAINERS files the index walk saw
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL       -- with size, what a warm run compares
);
ALTER TABLE audits ADD COLUMN code_hash TEXT
    /* hash of the regaudit code that made the audit: `regaudit check` reuses an audit of the same code only */;
""",
    # 11: the index's scope: an audit indexes the C files of the arches it audits (and generic code), not those of
    # every arch/ directory.
    """
ALTER TABLE runs ADD COLUMN arches TEXT
    /* JSON list of the arches whose arch/<arch>/ C files the index holds besides generic code; NULL: every arch */;
""",
]

SCHEMA_VERSION = len(MIGRATIONS)

# Tables whose rows belong to one parsed file (column `file`, or through function_id/call_id/struct_id).
# The index stage deletes them per file before re-inserting, so a reparse never duplicates facts.
PER_FILE_TABLES = ("functions", "variables", "defines", "calls", "accesses", "assignments", "bindings",
                   "structs", "typedefs")
# Tables later stages derive from the facts; the index stage empties them whenever a fact changes.
DERIVED_TABLES = ("edges", "link_arches", "audits", "frame_models", "findings", "finding_hops", "clean_sources",
                  "seed_scopes", "bpf_helper_lists", "helper_walks")
# Text facts (regaudit.parse.text_scan, regaudit.facts.text_facts): of every file of their kind, parsed or not.
TEXT_TABLES = ("header_defines", "bpf_proto_definitions")
CHILD_TABLES = {"params": ("function_id", "functions"), "call_args": ("call_id", "calls"),
                "struct_members": ("struct_id", "structs")}


def apply_migrations(conn: sqlite3.Connection) -> None:
    """Bring `conn` to SCHEMA_VERSION; a newer database than this tool knows is refused by the caller."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {number}")


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]
