"""The JSON contracts README.md documents are what regaudit prints on the real trees.

The keys of an audit document, of its findings (their producer, source, consumer and path hops), clean entries
and frame models are those of the README's examples, no more and no fewer; every value a finding or frame model
gives an enumerated field is one the README names; and `reaches` and `state` follow the rules the README states
for them, against the frame model the finding names. So do a `regaudit diff` of two audits and the keys of the
`regaudit check` object.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from audits import audited

from regaudit.patch.checkpatch import check_json
from regaudit.patch.compare import Comparison
from regaudit.patch.run import CheckResult
from regaudit.report.diff import diff_documents
from regaudit.report.model import load_audit, worst_state

pytestmark = pytest.mark.slow
README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
SERIES = ("6.1", "6.12", "7.3")
UNPOPULATED = ("uninitialised", "stale", "zero")  # the README's order for a read reaching several


def json_example(heading: str) -> Any:
    """The first ```json block after `heading` in the README, parsed."""
    section = README.split(f"\n{heading}\n", 1)[1]
    return json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])


def named_values(lead: str) -> set[str]:
    """The `backticked` words of the README list item or paragraph that starts with `lead`."""
    assert README.count(lead) == 1, f"README: {lead!r} should start one list item or paragraph"
    start = README.index(lead) + len(lead)
    ends = [end for end in (README.find("\n- ", start), README.find("\n\n", start)) if end >= 0]
    return set(re.findall(r"`([^`]+)`", README[start:min(ends)]))


AUDIT = json_example("## Audit JSON (contract: `\"schema\": \"regaudit-audit/1\"`)")
FRAME = json_example("### JSON output (contract, version 1)")
[FINDING] = AUDIT["findings"]
[CLEAN] = AUDIT["clean"]


def key_differences(documented: dict[str, Any], printed: list[dict[str, Any]], what: str) -> list[str]:
    """What `printed` objects hold that the README's `documented` one lacks, the reverse, and the keys whose JSON
    type (string, number, array, object) differs from the example's (null in either stands for any)."""
    seen = {key for item in printed for key in item}
    missing = {key for item in printed for key in documented.keys() - item.keys()}
    retyped = {f"{key}: {type(item[key]).__name__}, documented {type(documented[key]).__name__}"
               for item in printed for key in documented.keys() & item.keys()
               if None not in (item[key], documented[key]) and type(item[key]) is not type(documented[key])}
    return [f"{what}: undocumented {sorted(seen - documented.keys())}, documented but missing {sorted(missing)}, "
            f"of another type {sorted(retyped)}"] if seen - documented.keys() or missing or retyped else []


@pytest.fixture(scope="module", params=SERIES)
def document(request: pytest.FixtureRequest) -> dict[str, Any]:
    return audited(request.param)[1]


def test_an_audit_document_has_the_keys_the_readme_documents(document: dict[str, Any]) -> None:
    findings, cleans = document["findings"], document["clean"]
    assert findings and cleans
    differences = key_differences(AUDIT, [document], "document")
    for part in ("tool", "tree", "summary"):
        differences += key_differences(AUDIT[part], [document[part]], part)
    differences += key_differences(FINDING, findings, "finding")
    for part in ("producer", "source", "consumer"):
        differences += key_differences(FINDING[part], [finding[part] for finding in findings], f"finding {part}")
    differences += key_differences(FINDING["path"][0], [hop for f in findings for hop in f["path"]], "path hop")
    differences += key_differences(CLEAN, cleans, "clean entry")
    for part in ("source", "producer"):
        differences += key_differences(CLEAN[part], [clean[part] for clean in cleans], f"clean {part}")
    differences += key_differences(FRAME, document["frames"], "frame model")
    assert differences == []
    assert document["schema"] == AUDIT["schema"]


def test_every_enumerated_value_is_one_the_readme_names(document: dict[str, Any]) -> None:
    findings, frames = document["findings"], document["frames"]
    unnamed = {field: {f[field] for f in findings} - named_values(f"- `{field}`:")
               for field in ("access", "via", "state", "subsystem")}
    unnamed["frame states"] = {s for frame in frames for s in frame["states"].values()} - named_values(
        "`states` values:")
    unnamed["frame result"] = {frame["result"] for frame in frames} - named_values("`states` values:")
    assert {field: values for field, values in unnamed.items() if values} == {}


def test_reaches_and_state_follow_the_readme_against_the_finding_s_frame_model(document: dict[str, Any]) -> None:
    """A read reaches members its model leaves unpopulated and reports the first of uninitialised, stale, zero
    among them; a write reports what the members it overwrites held, or `mixed`."""
    models = {(m["arch"], m["producer"], m["context"], m["trampoline"]): m for m in document["frames"]}
    wrong = []
    for finding in document["findings"]:
        producer = finding["producer"]
        states = models[(finding["arch"], producer["api"], producer["context"], producer["trampoline"])]["states"]
        held = [states[member] for member in finding["reaches"]]
        if finding["access"] == "read":
            expected = next((state for state in UNPOPULATED if state in held), "no unpopulated member")
        else:
            expected = held[0] if len(set(held)) == 1 else "mixed"
        if not held or finding["state"] != expected:
            wrong.append((finding["fingerprint"], finding["member"], finding["reaches"], finding["state"], expected))
    assert wrong == []


def test_a_diff_has_the_keys_the_readme_documents() -> None:
    """6.12 against 7.3: findings appear and disappear. 7.3 without its x86 findings against 7.3: the groups found on
    x86 and another arch change their arches (6.1 and 6.12 have no such group)."""
    documented = json_example('### Diff JSON (contract: `"schema": "regaudit-diff/1"`)')
    [finding], [change] = documented["appeared"], documented["changed_arches"]
    old, new = audited("6.12")[1], audited("7.3")[1]
    across = diff_documents(old, new)
    without_x86 = diff_documents({**new, "findings": [f for f in new["findings"] if f["arch"] != "x86"]}, new)
    entries = {"appeared": across["appeared"] + without_x86["appeared"], "disappeared": across["disappeared"],
               "changed_arches": without_x86["changed_arches"]}
    assert all(entries.values())
    differences = key_differences(documented, [across, without_x86], "diff")
    differences += key_differences(documented["old"], [across["old"], across["new"]], "diff side")
    for part, found in entries.items():
        example = change if part == "changed_arches" else finding
        differences += key_differences(example, found, part)
        for nested in ("producer", "consumer"):
            differences += key_differences(example[nested], [entry[nested] for entry in found], f"{part} {nested}")
    assert differences == []
    assert across["schema"] == documented["schema"]
    # a changed arch set reports the worst state its arches have in NEW: x86 reads uninitialised stack where
    # arm64's entry copy holds zeros (the kprobe_multi program's `*` read)
    worst = {change["group"]: change["state"] for change in without_x86["changed_arches"]}
    states: dict[str, set[str]] = {}
    for finding in load_audit(new).findings:
        states.setdefault(finding.group_key, set()).add(finding.state)
    assert worst == {group: worst_state(states[group]) for group in worst}
    assert any(len(states[group]) > 1 for group in worst)  # a group whose first finding could mislead


def test_the_check_object_has_the_keys_the_readme_lists() -> None:
    listed = re.search(r'`--format json` prints `\{"schema": "regaudit-check/1", ([^}]*)\}`', README)
    assert listed is not None
    result = CheckResult(Comparison([], [], 0), ["x86"], ["x86"], {}, None)
    assert set(check_json(result)) == {"schema", *re.findall(r'"(\w+)"', listed[1])}
