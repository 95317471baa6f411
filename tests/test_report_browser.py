"""The HTML report in a real browser (Debian's headless chromium): rendered, filtered, linked, and offline.

chromium runs with every host name unresolvable and a net log; a request the page made would show in the
log with the page's (opaque, "null") initiator, while chromium's own background requests carry
"not an origin". A missing chromium fails these tests: CI installs it (`apt-get install -y chromium`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kernel_trees import kernel_tree

from regaudit.report.html import render_html

FIXTURES = Path(__file__).parent / "fixtures" / "report"
EVIL = "</script><img src=x onerror=alert(1)>"
KPROBES_ENTRY = re.compile(r'<details class="entry" data-subsystem="kprobes/fprobe".*?</details>', re.DOTALL)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("chromium is not installed (Debian: apt-get install -y chromium)", pytrace=False)
    return path


def browse(chromium: str, url: str, *args: str, net_log: Path | None = None) -> str:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               '--host-resolver-rules=MAP * ~NOTFOUND', "--virtual-time-budget=3000", *args, url]
    if net_log:
        command.insert(1, f"--log-net-log={net_log}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    doc = fixture("audit-7.3.json")
    doc["tree"]["path"] = str(kernel_tree("7.3"))  # the fixture cites real 7.3.4 lines
    path = tmp_path_factory.mktemp("report") / "audit.html"
    path.write_text(render_html(doc), encoding="utf-8")
    return path


def visible_entries(dom: str) -> list[tuple[str, str]]:
    """(subsystem, consumer) of each entry the filters left visible."""
    return re.findall(r'<details class="entry" data-subsystem="([^"]+)" data-consumer="([^"]+)"(?![^>]*\shidden)', dom)


def visible_rows(dom: str) -> list[tuple[str, str]]:
    """(arch, producer) of each visible row of the visible entries."""
    shown = "".join(re.findall(r'<details class="entry" [^>]*data-consumer="[^"]+"(?![^>]*\shidden).*?</details>', dom,
                               re.DOTALL))
    return re.findall(r'<tr data-arch="([^"]+)" data-producer="([^"]+)"(?![^>]*\shidden)', shown)


def test_matrix_and_call_paths_render_and_the_filter_bar_appears(chromium: str, report: Path) -> None:
    dom = browse(chromium, report.as_uri(), "--dump-dom")
    assert re.search(r'<html lang="en" data-shown="7"', dom)
    assert '<table class="matrix">' in dom and ">15</a>" in dom
    assert re.search(r'<div id="filters" class="filters">.*<select name="member">', dom), "the script built the filters"
    assert "7 of 7 entries shown" in dom
    entry = KPROBES_ENTRY.search(dom)
    assert entry and re.findall(r'<li><code>(\w+)</code>', entry.group()) == [
        "fexit_trace_func", "store_trace_entry_data", "regs_get_kernel_argument", "regs_get_register"]


def test_a_filter_in_the_url_fragment_shows_only_matching_entries(chromium: str, report: Path) -> None:
    dom = browse(chromium, report.as_uri() + "#arch=x86&subsystem=kprobes%2Ffprobe", "--dump-dom")
    assert 'data-shown="1"' in dom
    assert visible_entries(dom) == [("kprobes/fprobe", "regs_get_register")]
    assert re.search(r'<a class="cell st-uninitialised active" data-arch="x86" data-subsystem="kprobes/fprobe"', dom)


def test_a_member_filter_and_text_search_combine(chromium: str, report: Path) -> None:
    dom = browse(chromium, report.as_uri() + "#member=bp&q=fexit_perf", "--dump-dom")
    assert visible_entries(dom) == [("arch-unwind", "__unwind_start")]
    assert "1 of 7 entries shown" in dom


def test_an_arch_filter_hides_the_other_arches_rows(chromium: str, report: Path) -> None:
    dom = browse(chromium, report.as_uri() + "#arch=arm64&subsystem=BPF", "--dump-dom")
    assert visible_entries(dom) == [("BPF", "kprobe_multi_link_prog_run")]
    assert visible_rows(dom) == [("arm64", "ftrace_partial_regs (entry)")]


def test_a_linked_finding_opens_with_its_source_excerpts_inline(chromium: str, report: Path) -> None:
    dom = browse(chromium, report.as_uri() + "#fp=fe82017198be552a", "--dump-dom")
    entry = KPROBES_ENTRY.search(dom)
    assert entry
    opening_tag = entry.group().split(">", 1)[0]
    assert ' open=""' in opening_tag and ' data-inlined="1"' in opening_tag
    assert entry.group().count("<pre>") == 4, "one excerpt under each of the four hops"
    assert "regs_get_kernel_argument(regs, code-&gt;param);" in entry.group()


def test_the_page_requests_nothing(chromium: str, report: Path, tmp_path: Path) -> None:
    net_log = tmp_path / "net.json"
    browse(chromium, report.as_uri() + "#fp=fe82017198be552a", "--dump-dom", net_log=net_log)
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requests = [event["params"] for event in log["events"] if event["type"] == start and "url" in event["params"]]
    assert [r["url"] for r in requests if r["initiator"] != "not an origin" and not r["url"].startswith("file:")] == []


def test_injected_markup_is_shown_as_text(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "injection.html"
    page.write_text(render_html(fixture("injection.json")), encoding="utf-8")
    dom = browse(chromium, page.as_uri(), "--dump-dom")
    assert "<img" not in dom, "no element was injected"
    assert "evil&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in dom
    assert '<option value="r9&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;">' in dom, "facets parsed intact"


def test_screenshot(chromium: str, report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    browse(chromium, report.as_uri(), f"--screenshot={shot}", "--window-size=1280,1600", "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
