"""Draft an expected-results file from an audit document, for a reviewer to verify and annotate.

    python tests/expected/draft.py AUDIT.json [tests/expected/7.3.toml] > tests/expected/7.3.draft.toml

Every finding key becomes a `[[finding]]` table with the first path found for it; every clean source a
`[[clean]]` table. Given the current expected file, its reviewed entries (`why` set) are carried over
as they are, and a reviewed finding the audit no longer produces is kept under `# gone:` comments for
the reviewer. The draft is not an expectation until a person has read each new chain in the tree and
written `why` with the path:line citations (see README.md here).
"""

from __future__ import annotations

import json
import sys
import tomllib
from typing import Any


def _quote(text: str) -> str:
    return json.dumps(text)


KEY = ("arch", "source", "context", "consumer", "member", "access", "via")


def draft(document: dict[str, Any], reviewed: dict[str, Any] | None = None) -> str:
    previous = {tuple(e[name] for name in KEY): e for e in (reviewed or {}).get("finding", []) if e.get("why")}
    lines = [f"# Audit of Linux {document['tree']['version']}: verify every entry whose why is empty.", ""]
    seen: set[tuple[str, ...]] = set()
    for finding in document["findings"]:
        key = (finding["arch"], finding["source"]["rule"], finding["producer"]["context"],
               finding["consumer"]["function"], finding["member"], finding["access"], finding["via"])
        if key in seen:
            continue
        seen.add(key)
        entry = previous.get(key) or {
            "path": [f"{hop['function']} {hop['file']}:{hop['line']}" for hop in finding["path"]], "why": ""}
        lines += ["[[finding]]", *(f"{name} = {_quote(value)}" for name, value in zip(KEY, key, strict=True))]
        if "path" in entry:
            lines.append(f"path = [{', '.join(_quote(hop) for hop in entry['path'])}]")
        lines += [f"why = {_quote(entry['why'])}", ""]
    lines += [f"# gone: {' '.join(key)}" for key in previous if key not in seen]
    clean_previous = {(c["arch"], c["source"], c["function"], c["context"]): c
                      for c in (reviewed or {}).get("clean", [])}
    clean_seen: set[tuple[str, ...]] = set()
    for clean in document["clean"]:
        key = (clean["arch"], clean["source"]["rule"], clean["source"]["function"], clean["producer"]["context"])
        if key in clean_seen:
            continue
        clean_seen.add(key)
        why = clean_previous.get(key, {}).get("why", "")
        lines += ["[[clean]]", *(f"{name} = {_quote(value)}" for name, value in
                                 zip(("arch", "source", "function", "context"), key, strict=True)),
                  f"why = {_quote(why)}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        audit = json.load(handle)
    current = None
    if len(sys.argv) > 2:
        with open(sys.argv[2], "rb") as handle:
            current = tomllib.load(handle)
    sys.stdout.write(draft(audit, current))
