"""The HTML report as a file: self-contained, complete without JavaScript, escaped, excerpts shared.

The fixture's findings cite real Linux 7.3.4 lines, so excerpts are read from the real tree
(`kernel_tree("7.3")`). The browser behaviour is in test_report_browser.py.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from kernel_trees import kernel_tree

from regaudit.report.html import Excerpt, SourceTree, js_json, member_pattern, render_html

FIXTURES = Path(__file__).parent / "fixtures" / "report"
EVIL = "</script><img src=x onerror=alert(1)>"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def report_html() -> str:
    """The fixture's report, its excerpts read from the stand-in tree."""
    doc = fixture("audit-7.3.json")
    doc["tree"]["path"] = str(kernel_tree("7.3"))
    return render_html(doc)


def test_the_report_loads_nothing_from_anywhere() -> None:
    html = report_html()
    assert not re.search(r"https?:|//[\w.-]+/|<link\b|@import|url\(", html)
    assert not re.search(r"\ssrc=", html)
    assert set(re.findall(r'href="(.)', html)) == {"#"}
    assert "default-src 'none'" in html


def test_matrix_cells_link_to_their_filter_and_carry_the_worst_state() -> None:
    html = report_html()
    assert re.search(r'<a class="cell st-uninitialised" data-arch="x86" data-subsystem="kprobes/fprobe" '
                     r'href="#arch=x86&amp;subsystem=kprobes%2Ffprobe"[^>]*>5</a>', html)
    assert re.search(r'<a class="cell st-stale" [^>]*>15</a>', html)


def test_each_finding_is_a_details_element_with_its_whole_call_path() -> None:
    html = report_html()
    entry = re.search(r'<details class="entry" data-subsystem="kprobes/fprobe".*?</details>', html, re.DOTALL)
    assert entry, "the kprobes/fprobe finding is rendered"
    hops = re.findall(r'<li><code>(\w+)</code> <a href="#x\d+">([^<]+)</a>', entry.group())
    assert hops == [("fexit_trace_func", "kernel/trace/trace_fprobe.c:436"),
                    ("store_trace_entry_data", "kernel/trace/trace_probe.c:1244"),
                    ("regs_get_kernel_argument", "arch/x86/include/asm/ptrace.h:448"),
                    ("regs_get_register", "arch/x86/include/asm/ptrace.h:348")]
    [row] = re.findall(r"<tr data-arch=.*?</tr>", entry.group())
    assert row.startswith('<tr data-arch="x86" data-producer="ftrace_partial_regs (exit)" '
                          'data-members="[&#34;cx&#34;,&#34;si&#34;,&#34;di&#34;,&#34;r8&#34;,&#34;r9&#34;]"')
    assert "<code>3f75ade18926c229 81f3dca3151e21fc 11ba549b49071ed7 c88bb03bb460df2e fe82017198be552a</code>" in row


def test_without_javascript_every_finding_is_listed_and_the_filter_bar_stays_hidden() -> None:
    html = report_html()
    assert '<div id="filters" class="filters" hidden></div>' in html
    assert len(re.findall(r'<details class="entry" [^>]*>', html)) == 7
    assert len(re.findall(r"<tr data-arch=", html)) == 8
    assert not re.search(r'<details class="entry" [^>]*hidden', html)


def test_an_excerpt_is_written_once_per_file_and_line_and_highlights_the_member() -> None:
    html = report_html()
    figures = re.findall(r'<figcaption class="loc">([^<]+)</figcaption>', html)
    assert len(figures) == len(set(figures))
    assert figures.count("arch/x86/kernel/unwind_orc.c:735") == 1, "two findings pass there, one excerpt"
    excerpt = html.split('<figcaption class="loc">arch/x86/kernel/unwind_orc.c:735</figcaption>')[1].split("</pre>")[0]
    hit = '<span class="ln hit"><span class="no">735</span>\t\tstate-&gt;<mark>bp</mark> = regs-&gt;<mark>bp</mark>;'
    assert hit in excerpt
    assert '<span class="ln"><span class="no">733</span>\t\tstate-&gt;ip = regs-&gt;ip;</span>' in excerpt


def test_without_the_tree_the_report_says_so_instead_of_showing_excerpts() -> None:
    doc = fixture("audit-7.3.json")
    doc["tree"]["path"] = "/nonexistent/linux-7.3"
    html = render_html(doc)
    assert "<code>/nonexistent/linux-7.3</code> is no longer there, so this report shows no source excerpts" in html
    assert "<figure" not in html
    assert '<span class="loc">kernel/trace/trace_probe.c:1244</span>' in html


def test_frame_models_list_populated_and_unpopulated_members_with_evidence() -> None:
    html = report_html()
    frames = html.split('<section id="frames">')[1].split("</section>")[0]
    x86 = frames.split("<h3>x86</h3>")[1]
    fill_perf_entry = x86.split("<td><code>ftrace_fill_perf_regs</code></td><td>entry</td>")[1].split("</tr>")[0]
    assert ('<span class="state st-stale">stale</span> <code>r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di '
            'orig_ax ss</code>') in fill_perf_entry
    assert "<td><code>ip sp</code></td>" in fill_perf_entry, "populated"
    assert "<code>cs=__KERNEL_CS</code> <code>flags=0</code>" in fill_perf_entry, "constants"
    assert ('<li><code>flags</code>: <span class="loc">include/linux/ftrace.h:238, arch/x86/include/asm/ftrace.h:68'
            '</span></li>') in fill_perf_entry, "evidence"
    assert "arch/x86/kernel/ftrace_64.S" in x86


def test_tree_strings_are_escaped_everywhere() -> None:
    html = render_html(fixture("injection.json"))
    assert "<img" not in html
    assert html.count("</script>") == 2, "only the report's own two script elements close"
    assert "evil&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") >= 8, "member, consumer, path, subsystem, notes, ..."
    facets = html.split('<script type="application/json" id="facets">')[1].split("</script>")[0]
    assert json.loads(facets)["member"] == ["r9" + EVIL]


def test_embedded_json_cannot_close_its_script_element() -> None:
    assert js_json({"m": "</script>&x"}) == '{"m":"\\u003c/script\\u003e\\u0026x"}'


def test_member_accesses_are_found_by_arrow_or_dot_not_by_substring() -> None:
    line = "if (regs->regs[19] && regs->pc && state.fp && regs->pcx)"

    def accessed(*members: str) -> list[str]:
        pattern = member_pattern(members)
        return [match.group(1) for match in pattern.finditer(line)] if pattern else []

    assert accessed("regs[19]") == ["regs[19]"]
    assert accessed("regs[*]") == ["regs["]
    assert accessed("pc") == ["pc"], "not the pc of ->pcx"
    assert accessed("fp", "pc") == ["pc", "fp"]
    assert accessed("*") == []


def test_only_the_excerpt_line_itself_is_highlighted() -> None:
    excerpt = Excerpt("x0", "f.c", 214, marks={"cs"})
    assert excerpt.segments(214, "return regs->ip;") == [("return regs->ip;", False)]
    assert excerpt.segments(214, "return !!(regs->cs & 3);") == [("return !!(regs->", False), ("cs", True),
                                                                  (" & 3);", False)]
    assert excerpt.segments(212, "return regs->cs & 3;") == [("return regs->cs & 3;", False)]


def test_files_outside_the_tree_are_never_read(tmp_path: Path) -> None:
    root = kernel_tree("7.3")
    tree = SourceTree(str(root))
    outside = tmp_path / "outside-the-tree.c"
    outside.write_text("int secret;\n")
    assert tree.around(os.path.relpath(outside, root), 1) == []
    assert tree.around(str(outside), 1) == []
    assert tree.around("kernel/trace/trace_probe.c", 1244)[2] == (
        1244, "\t\t\tval = regs_get_kernel_argument(regs, code->param);")
