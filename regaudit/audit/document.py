"""The audit document: the JSON contract (README, "Audit JSON") read from a finished audit database.

Owns the one place the contract's top level is assembled — tool, tree, arches, config, summary,
frames, findings, clean — from the audit tables, so `regaudit audit`, `regaudit report` and every
renderer see the same document. The rows themselves are read by `regaudit.facts.audit_facts`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regaudit.errors import BadInput
from regaudit.facts import audit_facts
from regaudit.facts.store import open_existing
from regaudit.ruleset.load import kernel_series

SCHEMA = "regaudit-audit/1"


def load_document(db_path: Path) -> dict[str, Any]:
    """The last finished audit of `db_path`. BadInput when the database holds none."""
    conn = open_existing(Path(db_path)).conn
    try:
        if "audits" not in {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}:
            raise BadInput(f"{db_path}: no audit in this database; run `regaudit audit` first")
        audit = audit_facts.latest_audit(conn)
        if audit is None:
            raise BadInput(f"{db_path}: no audit in this database; run `regaudit audit` first")
        findings = audit_facts.findings_of(conn, audit["id"])
        clean = audit_facts.clean_of(conn, audit["id"])
        frames = audit_facts.frame_models_of(conn, audit["id"])
    finally:
        conn.close()
    return {
        "schema": SCHEMA,
        "tool": {"name": "regaudit", "version": audit["tool_version"], "rules_hash": audit["rules_hash"]},
        "tree": {"path": audit["tree_path"], "version": audit["kernel_version"],
                 "series": kernel_series(audit["kernel_version"])},
        "arches": audit["arches"],
        "config": audit["config"],
        "summary": {"findings": len(findings), "clean": len(clean), "matrix": _matrix(findings)},
        "frames": frames,
        "findings": findings,
        "clean": clean,
    }


def _matrix(findings: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for finding in findings:
        row = counts.setdefault(finding["arch"], {})
        row[finding["subsystem"]] = row.get(finding["subsystem"], 0) + 1
    return counts
