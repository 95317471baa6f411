"""Check the prefilter against an index of every file: are the pt_regs-relevant facts identical?

    python bench/prefilter_check.py TREE [--fixpoint-db A.db] [--all-db B.db]

Indexes TREE twice (`--prefilter fixpoint` and `--prefilter all`, reusing the databases if given
and current), then compares the facts through which a pt_regs pointer can be seen: member
accesses, assignments, call arguments and bindings whose variable type, callee, or return type
mentions `pt_regs`/`ftrace_regs` or any token of the fixpoint (word match, stop-listed tokens
included so that what the stop list excludes is reported, not hidden). Prints the counts and every
fact the fixpoint index lacks, grouped by the token that makes it relevant. Exit 1 if any fact is
missing other than those explained by the stop list.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import subprocess
import sys
import tempfile
import tomllib
from collections import defaultdict
from pathlib import Path

RELEVANT = {
    "access": "SELECT a.file, a.line, a.member, coalesce(a.base_type, '') || ' ' || coalesce(a.base_call, '') "
              "FROM accesses a",
    "assignment": "SELECT file, line, lhs_expr, coalesce(lhs_type, '') || ' ' || coalesce(rhs_callee, '') "
                  "FROM assignments",
    "argument": "SELECT c.file, c.line, c.callee_expr || '#' || ca.position, "
                "coalesce(v.type, '') || ' ' || coalesce(p.type, '') || ' ' || coalesce(ca.inner_call, '') "
                "FROM call_args ca JOIN calls c ON c.id = ca.call_id "
                "LEFT JOIN variables v ON v.function_id = c.function_id AND v.name = ca.var "
                "LEFT JOIN params p ON p.function_id = c.function_id AND p.name = ca.var",
}


def index(tree: Path, db: Path, mode: str) -> None:
    subprocess.run([sys.executable, "-m", "regaudit", "index", str(tree), "--db", str(db), "--prefilter", mode],
                   check=True, stdout=subprocess.DEVNULL)


def relevant_facts(db: Path, pattern: re.Pattern[str]) -> dict[tuple[str, ...], str]:
    conn = sqlite3.connect(db)
    found: dict[tuple[str, ...], str] = {}
    for kind, sql in RELEVANT.items():
        for file, line, what, types in conn.execute(sql):
            match = pattern.search(types or "")
            if match:
                found[(kind, file, str(line), what)] = match.group()
    conn.close()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--fixpoint-db", type=Path)
    parser.add_argument("--all-db", type=Path)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="regaudit-prefilter-"))
    fixpoint_db = args.fixpoint_db or scratch / "fixpoint.db"
    all_db = args.all_db or scratch / "all.db"
    index(args.tree, fixpoint_db, "fixpoint")
    index(args.tree, all_db, "all")
    conn = sqlite3.connect(fixpoint_db)
    tokens = [token for (token,) in conn.execute("SELECT token FROM prefilter_tokens")]
    conn.close()
    rules = tomllib.loads((Path(__file__).resolve().parent.parent / "rules" / "prefilter.toml").read_text())
    stopped = [entry["name"] for entry in rules["stop"]]
    words = "|".join(re.escape(t).replace(r"\ ", r"\s+") for t in sorted(set(tokens) | set(stopped), key=len,
                                                                             reverse=True))
    pattern = re.compile(r"\b(?:" + words + r")\b")
    wide = relevant_facts(all_db, pattern)
    narrow = relevant_facts(fixpoint_db, pattern)
    missing = {fact: token for fact, token in wide.items() if fact not in narrow}
    by_token: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for fact, token in missing.items():
        by_token[token].append(fact)
    explained = sum(len(facts) for token, facts in by_token.items() if token in stopped)
    print(f"tree: {args.tree}")
    print(f"relevant facts: {len(wide)} with every file parsed, {len(narrow)} with the fixpoint prefilter")
    print(f"missing from the fixpoint index: {len(missing)} ({explained} through stop-listed tokens)")
    for token, facts in sorted(by_token.items(), key=lambda item: -len(item[1])):
        reason = "stop list" if token in stopped else "UNEXPLAINED"
        print(f"  {token}: {len(facts)} [{reason}]  e.g. {' '.join(facts[0])}")
    print(f"databases: {fixpoint_db} {all_db}")
    return 1 if len(missing) > explained else 0


if __name__ == "__main__":
    sys.exit(main())
