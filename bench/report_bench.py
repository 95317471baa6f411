"""Benchmark the HTML report: its size, the time to render it, and the time headless chromium takes to open it.

    python bench/report_bench.py DOC_OR_DB [--runs 3] [--grow N]

DOC_OR_DB is an audit database or a `.json` audit document. `--grow N` repeats the document's findings
(with fresh member names, on every arch of the audit, the consumer moved over up to 400 lines) until
there are N of them, to estimate a large all-arch audit before one exists. Prints the HTML size,
distinct excerpts, the median render time, and the median time for `chromium --headless --dump-dom` to
load the report beside the same for an empty page (chromium's own start-up). No thresholds here: tests
never time anything.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regaudit.report.html import render_html
from regaudit.report.model import read_document

ENTRY_TAG = '<details class="entry"'
LINE_SPREAD = 400  # --grow moves each copy's consumer over this many lines: distinct entries and excerpts


def median_seconds(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.monotonic()
        action()
        times.append(time.monotonic() - started)
    return statistics.median(times)


def grown(doc: dict[str, Any], count: int) -> dict[str, Any]:
    """`doc` with its findings repeated on every arch, fresh member names and consumer lines, `count` of them."""
    arches, originals = doc["arches"], doc["findings"]
    findings = []
    for index in range(count):
        finding = originals[index // len(arches) % len(originals)]
        copied = copy.deepcopy(finding)
        copied.update(arch=arches[index % len(arches)], member=f"{finding['member']}#{index}",
                      fingerprint=f"{index:016x}")
        shift = index // len(arches) % LINE_SPREAD
        for site in (copied["consumer"], copied["path"][-1]):
            site["line"] += shift
        findings.append(copied)
    return doc | {"findings": findings}


def open_in_chromium(chromium: str, page: Path) -> None:
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                   check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("document", type=Path, help="audit database or .json audit document")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--grow", type=int, default=0, metavar="N", help="repeat findings until there are N")
    args = parser.parse_args()

    doc = read_document(args.document)
    if args.grow:
        doc = grown(doc, args.grow)
    html = render_html(doc)
    render_seconds = median_seconds(lambda: render_html(doc), args.runs)
    print(f"findings: {len(doc['findings'])}")
    print(f"html: {len(html.encode()) / 1e6:.2f} MB, {html.count('<figure')} excerpts, "
          f"{html.count(ENTRY_TAG)} entries")
    print(f"render: {render_seconds:.2f} s (median of {args.runs})")

    chromium = shutil.which("chromium")
    if not chromium:
        print("chromium: not installed, open time not measured")
        return
    with tempfile.TemporaryDirectory() as scratch:
        page, blank = Path(scratch) / "audit.html", Path(scratch) / "blank.html"
        page.write_text(html, encoding="utf-8")
        blank.write_text("<!doctype html><title>blank</title>", encoding="utf-8")
        opened = median_seconds(lambda: open_in_chromium(chromium, page), args.runs)
        baseline = median_seconds(lambda: open_in_chromium(chromium, blank), args.runs)
    print(f"chromium open: {opened:.2f} s (an empty page: {baseline:.2f} s; median of {args.runs})")


if __name__ == "__main__":
    main()
