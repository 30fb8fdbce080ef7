"""The HTML report page: self-contained, escaped, with creation stacks and drawn cycles."""

from __future__ import annotations

import copy
import io
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any, Dict, List, Tuple

import pytest

import handletrace
from handletrace import Report
from handletrace._report.html import format_html, render_html, svg_cycle

from . import sdk_objects

SVG = "{http://www.w3.org/2000/svg}"


class _Collector(HTMLParser):
    """Collects start tags with their attributes, and checks that tags nest properly."""

    VOID = {"meta", "br", "input", "img", "hr", "link"}
    SVG_EMPTY = {"rect", "line", "path", "polyline", "marker"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: List[Tuple[str, Dict[str, Any]]] = []
        self.stack: List[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: Any) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()


def parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    assert collector.stack == [], f"unclosed tags: {collector.stack}"
    return collector


@pytest.fixture
def leak_report(installed: None, no_gc: None) -> Report:
    """A real report of the seed's leak: two leaky transcribers (cyclic garbage)."""
    segments: List[object] = []
    sdk_objects.make_leaky_transcriber(segments)
    sdk_objects.make_leaky_transcriber(segments)
    return handletrace.build_report()


def test_page_is_a_complete_self_contained_document(leak_report: Report) -> None:
    """One HTML document; no script, no external stylesheet, font or image."""
    page = format_html(leak_report)
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">')
    tags = parse(page).tags
    names = {tag for tag, _ in tags}
    assert "script" not in names and "link" not in names and "img" not in names
    assert not any("src" in attrs or attrs.get("href", "#").startswith("http") for _, attrs in tags)


def test_page_shows_the_summary_and_each_group(leak_report: Report) -> None:
    """The badge counts live handles; each group names its site, kinds and owners."""
    page = format_html(leak_report)
    assert '<span class="badge bad">4 live native handles in 1 group</span>' in page
    assert "4 handles created at" in page
    assert (
        '<td>2</td><td class="l mono">recognizer</td><td class="l">ConversationTranscriber</td>'
        in page
    )
    assert "PropertyCollection of ConversationTranscriber" in page


def test_page_shows_the_creation_stack_most_recent_call_last(leak_report: Report) -> None:
    """The traceback lists frames oldest first and highlights the creating line."""
    page = format_html(leak_report)
    stack = page.split("<pre>Traceback (most recent call last):")[1].split("</pre>")[0]
    assert stack.index("make_leaky_transcriber") < stack.index("in transcriber")
    last = stack.strip().splitlines()[-2]
    assert last.startswith('<span class="frame-user">') and "in transcriber" in last


def test_page_of_a_clean_report(installed: None) -> None:
    """No live handle: a green badge and no group section."""
    page = format_html(handletrace.build_report())
    assert '<span class="badge ok">no live native handles</span>' in page
    assert "Live handles by creation site" not in page


def test_page_without_install_says_so_first() -> None:
    """Not installed: an amber badge and, before anything else, what is wrong and what to do;
    no green all-clear."""
    page = format_html(handletrace.build_report())
    body = page.split("<body>", 1)[1].strip().splitlines()
    assert body[0] == '<h1>handletrace report <span class="badge warn">not installed</span></h1>'
    assert body[1].startswith('<div class="note warn"><strong>handletrace is not installed: ')
    assert "handletrace.install()" in body[1] and "HANDLETRACE=1" in body[1]
    assert "no live native handles" not in page
    parse(page)


def test_values_from_the_report_are_escaped(leak_report: Report) -> None:
    """Markup in a saved report (a hostile or odd file) is shown as text, never run."""
    data = copy.deepcopy(leak_report.to_dict())
    frame = data["groups"][0]["traceback"][-1]
    frame["line"] = "x = '<script>alert(1)</script>'"
    frame["name"] = "<b>bold</b>"
    data["notes"] = ["<img src=x onerror=alert(1)>"]
    page = format_html(Report.from_dict(json.loads(json.dumps(data))))
    assert "<script>" not in page and "<img" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    parse(page)


def test_page_draws_the_cycle_when_the_report_has_a_diagnosis(leak_report: Report) -> None:
    """With a diagnosis, the reference cycle is drawn: a box per object and a loop back."""
    page = format_html(leak_report)
    assert "The reference cycle keeping these handles alive" in page
    svg = page.split("The reference cycle keeping these handles alive")[1]
    svg = svg[svg.index("<svg") : svg.index("</svg>") + len("</svg>")]
    root = ET.fromstring(svg)
    labels = [t.text for t in root.iter(SVG + "text")]
    assert labels[:4] == [
        "ConversationTranscriber",
        "EventSignal (transcribed)",
        "list",
        "function on_transcribed",
    ]
    assert "(reference cycle)" in labels
    assert len(root.findall(f"{SVG}path")) == 1  # the arrow back to the first box


def test_render_html_writes_the_page(leak_report: Report) -> None:
    """render_html(report, file) writes format_html(report)."""
    out = io.StringIO()
    render_html(leak_report, out)
    assert out.getvalue() == format_html(leak_report)


# -- svg_cycle ---------------------------------------------------------------------------------


def test_svg_cycle_draws_boxes_arrows_and_the_loop_back() -> None:
    """n boxes, n-1 arrows down, one path back to the first box, edge labels on arrows."""
    svg = svg_cycle(["A", "B", "C"], ["holds", "", "closure cell 'a'"])
    root = ET.fromstring(svg)
    assert len(root.findall(f"{SVG}rect")) == 3
    assert len(root.findall(f"{SVG}line")) == 2
    assert len(root.findall(f"{SVG}path")) == 1
    texts = [t.text for t in root.iter(SVG + "text")]
    assert texts == ["A", "holds", "B", "C", "closure cell 'a'", "(reference cycle)"]


def test_svg_cycle_open_chain_has_no_loop() -> None:
    """closed=False draws a chain without the arrow back."""
    root = ET.fromstring(svg_cycle(["root", "cache", "Recognizer"], closed=False))
    assert root.findall(f"{SVG}path") == []
    assert len(root.findall(f"{SVG}line")) == 2


def test_svg_cycle_escapes_and_shortens_labels() -> None:
    """Labels are escaped; very long ones are cut with an ellipsis."""
    root = ET.fromstring(svg_cycle(["<A & B>", "x" * 80]))
    texts = [t.text for t in root.iter(SVG + "text")]
    assert texts[0] == "<A & B>"
    assert texts[1] == "x" * 47 + "…"


def test_svg_cycle_of_nothing_is_empty() -> None:
    """No nodes, no drawing."""
    assert svg_cycle([]) == ""
