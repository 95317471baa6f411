"""The audit of the real 6.1, 6.12 and 7.3 trees against the expected results in tests/expected/<series>.toml.

Each expected file lists every finding (by arch, source rule, context, consumer, member, access and
how the access is established) and the clean sources; entries with a `path` were read hop by hop in
the tree and must come out with exactly that path. A finding the file does not list, or a listed
one the audit does not produce, fails with a diff that reads like the file. A second test walks
every hop of every finding and checks the cited line holds the call, store or access that moves
the pointer on — no finding without a path a human can follow.
"""

from __future__ import annotations

import tomllib
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from audits import audited
from hops import around, moves_on
from kernel_trees import kernel_tree

EXPECTED = Path(__file__).parent / "expected"
KEY_FIELDS = ("arch", "source", "context", "consumer", "member", "access", "via")

Key = tuple[str, ...]


@pytest.fixture(scope="module")
def audits() -> dict[str, dict[str, Any]]:
    return {series: audited(series)[1] for series in ("6.1", "6.12", "7.3")}


def finding_key(finding: dict[str, Any]) -> Key:
    return (finding["arch"], finding["source"]["rule"], finding["producer"]["context"],
            finding["consumer"]["function"], finding["member"], finding["access"], finding["via"])


def hops(finding: dict[str, Any]) -> list[str]:
    return [f"{hop['function']} {hop['file']}:{hop['line']}" for hop in finding["path"]]


def expected(series: str) -> dict[str, Any]:
    with open(EXPECTED / f"{series}.toml", "rb") as handle:
        return tomllib.load(handle)


def describe(key: Key) -> str:
    return " ".join(f"{name}={value}" for name, value in zip(KEY_FIELDS, key, strict=True))


@pytest.mark.parametrize("series", ["6.1", "6.12", "7.3"])
def test_the_audit_finds_exactly_the_expected_chains(audits: dict[str, dict[str, Any]], series: str) -> None:
    document, wanted = audits[series], expected(series)
    actual: dict[Key, list[dict[str, Any]]] = {}
    for finding in document["findings"]:
        actual.setdefault(finding_key(finding), []).append(finding)
    listed = {tuple(entry[name] for name in KEY_FIELDS): entry for entry in wanted.get("finding", [])}
    missing = sorted(set(listed) - set(actual))
    unexpected = sorted(set(actual) - set(listed))
    report = [f"missing   {describe(key)}" for key in missing]
    report += [f"unexpected {describe(key)}\n           path: {' > '.join(hops(actual[key][0]))}" for key in unexpected]
    for key, entry in listed.items():
        if "path" in entry and key in actual and entry["path"] not in [hops(f) for f in actual[key]]:
            report.append(f"other path {describe(key)}\n  expected: {' > '.join(entry['path'])}\n"
                          f"  actual:   {' > '.join(hops(actual[key][0]))}")
    assert not report, f"{series}: the audit differs from tests/expected/{series}.toml\n" + "\n".join(report)


@pytest.mark.parametrize("series", ["6.1", "6.12", "7.3"])
def test_the_expected_clean_sources_are_clean(audits: dict[str, dict[str, Any]], series: str) -> None:
    document, wanted = audits[series], expected(series)
    clean = {(c["arch"], c["source"]["rule"], c["source"]["function"], c["producer"]["context"])
             for c in document["clean"]}
    for entry in wanted.get("clean", []):
        key = (entry["arch"], entry["source"], entry["function"], entry["context"])
        assert key in clean, f"{series}: {key} is expected clean: {entry['why']}"


def test_the_expected_files_cite_verified_chains() -> None:
    """At least 25 chains on 7.3 are verified hop by hop (a `path` and a `why` citing the tree)."""
    verified = [entry for entry in expected("7.3").get("finding", []) if entry.get("path") and entry.get("why")]
    assert len(verified) >= 25
    subsystems = {entry["via"] for entry in verified}
    assert {"direct", "bpf-program", "bpf-helper"} <= subsystems


@pytest.mark.parametrize("series", ["6.1", "6.12", "7.3"])
def test_every_hop_of_every_finding_is_on_a_line_that_moves_the_pointer(
    audits: dict[str, dict[str, Any]], series: str,
) -> None:
    tree = kernel_tree(series)
    problems = []
    for finding in audits[series]["findings"]:
        path = finding["path"]
        for hop, following in pairwise(path):
            text = around(tree, hop["file"], hop["line"])
            if not moves_on(text, hop["function"], following["function"]):
                problems.append(f"{hop['file']}:{hop['line']} ({hop['function']}) neither calls "
                                f"{following['function']} nor stores: {text!r}")
        last = path[-1]
        member = finding["member"].split(".")[0].split("[")[0]
        # a member access names the member; a program run or a derived read names the function it calls
        wanted = member if finding["via"] in ("direct", "bpf-helper") else finding["consumer"]["function"]
        if wanted != "*" and wanted not in around(tree, last["file"], last["line"]):
            problems.append(f"{last['file']}:{last['line']}: no {wanted} for {finding['fingerprint']}")
    assert not problems, "\n".join(sorted(set(problems))[:40])
