"""Every SQL statement of the check stage: where sources are in the facts, and the audit it writes.

Owns the reads that turn rules/sources.toml entries into concrete places (call sites of a builder
with their caller and arguments, functions by name) and the write and read of one audit: the
`audits`, `frame_models`, `findings`, `finding_hops` and `clean_sources` tables (schema migration
3), the `seed_scopes` table (migration 6), `bpf_helper_lists` (migration 8) and `helper_walks` (9). It decides nothing
about what is a finding (that is `regaudit.audit.check`).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BuilderCall:
    """A call of a pt_regs builder inside a function, with the variables passed at each position."""

    caller_id: int
    caller: str
    file: str
    line: int
    arg_vars: dict[int, str]  # position -> plain variable passed there (no member, no call, no &)
    result_var: str | None  # the variable the result is assigned to (`regs = f(fregs, regs)`), if any


@dataclass(frozen=True)
class FunctionRow:
    id: int
    name: str
    file: str
    line: int


def builder_calls(conn: sqlite3.Connection, callee: str) -> list[BuilderCall]:
    """Every call of `callee` made inside a function, in file order."""
    args: dict[int, dict[int, str]] = defaultdict(dict)
    for call_id, position, var in conn.execute(
        "SELECT a.call_id, a.position, a.var FROM call_args a JOIN calls c ON c.id = a.call_id "
        "WHERE c.callee = ? AND a.var IS NOT NULL AND a.member IS NULL AND a.inner_call IS NULL "
        "AND a.address_of = 0", (callee,)
    ):
        args[call_id][position] = var
    rows = conn.execute(
        "SELECT c.id, c.function_id, f.name, c.file, c.line, "
        "(SELECT a.lhs_var FROM assignments a WHERE a.function_id = c.function_id AND a.line = c.line "
        " AND a.rhs_callee = c.callee AND a.lhs_member IS NULL LIMIT 1) "
        "FROM calls c JOIN functions f ON f.id = c.function_id WHERE c.callee = ? ORDER BY c.file, c.line", (callee,)
    )
    return [BuilderCall(function_id, name, file, line, args.get(call_id, {}), result_var)
            for call_id, function_id, name, file, line, result_var in rows]


def functions_by_name(conn: sqlite3.Connection, name: str) -> list[FunctionRow]:
    rows = conn.execute("SELECT id, name, file, line FROM functions WHERE name = ? ORDER BY file, line", (name,))
    return [FunctionRow(*row) for row in rows]


def start_audit(conn: sqlite3.Connection, meta: dict[str, Any]) -> int:
    """Replace any earlier audit (an audit database holds one) and open a new one."""
    for table in ("finding_hops", "findings", "clean_sources", "frame_models", "seed_scopes", "bpf_helper_lists",
                  "helper_walks", "audits"):
        conn.execute(f"DELETE FROM {table}")
    cursor = conn.execute(
        "INSERT INTO audits (started, tool_version, rules_hash, code_hash, tree_path, kernel_version, arches, config) "
        "VALUES (:started, :tool_version, :rules_hash, :code_hash, :tree_path, :kernel_version, :arches, :config)",
        {**meta, "arches": json.dumps(meta["arches"])},
    )
    return int(cursor.lastrowid or 0)


def finish_audit(conn: sqlite3.Connection, audit_id: int, finished: str) -> None:
    conn.execute("UPDATE audits SET finished = ? WHERE id = ?", (finished, audit_id))


def add_frame_models(conn: sqlite3.Connection, audit_id: int, models: list[dict[str, Any]]) -> None:
    conn.executemany(
        "INSERT INTO frame_models (audit_id, arch, producer, context, trampoline, result, model) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(audit_id, m["arch"], m["producer"], m["context"], m["trampoline"], m["result"], json.dumps(m))
         for m in models],
    )


def add_findings(conn: sqlite3.Connection, audit_id: int, findings: list[dict[str, Any]]) -> None:
    """`findings` in the JSON contract's shape (README, "Audit JSON")."""
    for finding in findings:
        producer, source, consumer = finding["producer"], finding["source"], finding["consumer"]
        cursor = conn.execute(
            "INSERT INTO findings (audit_id, fingerprint, arch, subsystem, maintainers, member, reaches, access, via, "
            "mask, state, producer, context, trampoline, producer_file, producer_line, source_rule, source_function, "
            "source_file, source_line, consumer_function, consumer_file, consumer_line, conditions) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (audit_id, finding["fingerprint"], finding["arch"], finding["subsystem"], finding["maintainers"],
             finding["member"], json.dumps(finding["reaches"]), finding["access"], finding["via"], finding["mask"],
             finding["state"], producer["api"], producer["context"], producer["trampoline"], producer["file"],
             producer["line"], source["rule"], source["function"], source["file"], source["line"],
             consumer["function"], consumer["file"], consumer["line"], json.dumps(finding["conditions"])),
        )
        conn.executemany(
            "INSERT INTO finding_hops (finding_id, position, function, file, line, condition) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(cursor.lastrowid, position, hop["function"], hop["file"], hop["line"], hop["condition"])
             for position, hop in enumerate(finding["path"])],
        )


def add_clean(conn: sqlite3.Connection, audit_id: int, cleans: list[dict[str, Any]]) -> None:
    conn.executemany(
        "INSERT INTO clean_sources (audit_id, arch, source_rule, source_function, source_file, source_line, producer, "
        "context, trampoline, producer_file, producer_line, accesses, members) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(audit_id, c["arch"], c["source"]["rule"], c["source"]["function"], c["source"]["file"], c["source"]["line"],
          c["producer"]["api"], c["producer"]["context"], c["producer"]["trampoline"], c["producer"]["file"],
          c["producer"]["line"], c["accesses"], json.dumps(c["members"])) for c in cleans],
    )


def add_scopes(conn: sqlite3.Connection, audit_id: int, scopes: list[dict[str, Any]]) -> None:
    """`scopes`: {"arch", "source": {"rule", "function", "file", "line"}, "scope": {...}} per seed and arch."""
    conn.executemany(
        "INSERT INTO seed_scopes (audit_id, arch, source_rule, source_function, source_file, source_line, scope) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((audit_id, s["arch"], s["source"]["rule"], s["source"]["function"], s["source"]["file"],
          s["source"]["line"], json.dumps(s["scope"], sort_keys=True)) for s in scopes))


def scopes_of(conn: sqlite3.Connection, audit_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT arch, source_rule, source_function, source_file, source_line, scope FROM seed_scopes "
        "WHERE audit_id = ? ORDER BY rowid", (audit_id,))
    return [{"arch": arch, "source": {"rule": rule, "function": function, "file": file, "line": line},
             "scope": json.loads(scope)} for arch, rule, function, file, line, scope in rows]


def add_helper_lists(conn: sqlite3.Connection, audit_id: int, lists: dict[str, list[dict[str, Any]]]) -> None:
    conn.executemany("INSERT INTO bpf_helper_lists (audit_id, bridge, helpers) VALUES (?, ?, ?)",
                     ((audit_id, bridge, json.dumps(helpers)) for bridge, helpers in sorted(lists.items())))


def helper_lists_of(conn: sqlite3.Connection, audit_id: int) -> dict[str, list[dict[str, Any]]]:
    rows = conn.execute("SELECT bridge, helpers FROM bpf_helper_lists WHERE audit_id = ?", (audit_id,))
    return {bridge: json.loads(helpers) for bridge, helpers in rows}


def add_helper_walks(conn: sqlite3.Connection, audit_id: int, walks: dict[str, list[dict[str, Any]]]) -> None:
    """`walks`: per arch, each walk's JSON (`regaudit.audit.check.HelperWalk`)."""
    conn.executemany("INSERT INTO helper_walks (audit_id, arch, helper, position, walk) VALUES (?, ?, ?, ?, ?)",
                     ((audit_id, arch, walk["function"], walk["position"], json.dumps(walk))
                      for arch, arch_walks in sorted(walks.items()) for walk in arch_walks))


def helper_walks_of(conn: sqlite3.Connection, audit_id: int) -> dict[str, list[dict[str, Any]]]:
    walks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for arch, walk in conn.execute("SELECT arch, walk FROM helper_walks WHERE audit_id = ? ORDER BY rowid",
                                   (audit_id,)):
        walks[arch].append(json.loads(walk))
    return dict(walks)


def latest_audit(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The finished audit's row, or None when the database holds none."""
    rows = _dict_rows(conn, "SELECT * FROM audits WHERE finished IS NOT NULL ORDER BY id DESC LIMIT 1", ())
    return {**rows[0], "arches": json.loads(rows[0]["arches"])} if rows else None


def _dict_rows(conn: sqlite3.Connection, sql: str, parameters: tuple[Any, ...]) -> list[dict[str, Any]]:
    """The rows of `sql` as column -> value dicts."""
    cursor = conn.execute(sql, parameters)
    columns = [description[0] for description in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor]


def frame_models_of(conn: sqlite3.Connection, audit_id: int) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT model FROM frame_models WHERE audit_id = ? ORDER BY rowid", (audit_id,))
    return [json.loads(model) for (model,) in rows]


def findings_of(conn: sqlite3.Connection, audit_id: int) -> list[dict[str, Any]]:
    """The audit's findings in the JSON contract's shape, in the order they were written."""
    hops: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for finding_id, function, file, line, condition in conn.execute(
        "SELECT h.finding_id, h.function, h.file, h.line, h.condition FROM finding_hops h "
        "JOIN findings f ON f.id = h.finding_id WHERE f.audit_id = ? ORDER BY h.finding_id, h.position", (audit_id,)
    ):
        hops[finding_id].append({"function": function, "file": file, "line": line, "condition": condition})
    rows = _dict_rows(conn, "SELECT * FROM findings WHERE audit_id = ? ORDER BY id", (audit_id,))
    return [{
        "fingerprint": r["fingerprint"], "arch": r["arch"], "subsystem": r["subsystem"],
        "maintainers": r["maintainers"], "member": r["member"], "reaches": json.loads(r["reaches"]),
        "access": r["access"], "via": r["via"], "mask": r["mask"], "state": r["state"],
        "producer": {"api": r["producer"], "context": r["context"], "trampoline": r["trampoline"],
                     "file": r["producer_file"], "line": r["producer_line"]},
        "source": {"rule": r["source_rule"], "function": r["source_function"], "file": r["source_file"],
                   "line": r["source_line"]},
        "consumer": {"function": r["consumer_function"], "file": r["consumer_file"], "line": r["consumer_line"]},
        "path": hops.get(r["id"], []), "conditions": json.loads(r["conditions"]),
    } for r in rows]


def clean_of(conn: sqlite3.Connection, audit_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT arch, source_rule, source_function, source_file, source_line, producer, context, trampoline, "
        "producer_file, producer_line, accesses, members FROM clean_sources WHERE audit_id = ? ORDER BY rowid",
        (audit_id,),
    )
    return [{"arch": arch, "source": {"rule": rule, "function": function, "file": file, "line": line},
             "producer": {"api": api, "context": context, "trampoline": trampoline, "file": pfile, "line": pline},
             "accesses": accesses, "members": json.loads(members)}
            for arch, rule, function, file, line, api, context, trampoline, pfile, pline, accesses, members in rows]
