"""The demo's timeline: its phases are marked, so its headline names the leak."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from handletrace._report.timeline import Timeline, describe, summarize
from handletrace.cli.demo import run_demo

SVG = "{http://www.w3.org/2000/svg}"


def test_demo_timeline_marks_its_phases_and_names_the_leak(tmp_path: Path) -> None:
    """The fixed run is flat, the leaky one grows by its recognizers, the cleanup goes back to
    where the run began; the headline says so (overall the run ends flat)."""
    path = tmp_path / "demo.json"
    assert run_demo(["--requests", "4", "--no-report", "--timeline", str(path)], io.StringIO()) == 0
    timeline = Timeline.from_dict(json.loads(path.read_text()))
    assert [m.label for m in timeline.marks] == ["fixed service", "leaky service", "cleanup"]
    summary = summarize(timeline)
    phases = [(p.label, p.trend, p.live_last - p.live_first) for p in summary.phases]
    assert phases == [
        ("fixed service", "flat", 0),
        ("leaky service", "growing", 8),
        ("cleanup", "falling", -8),
    ], phases
    headline = describe(summary)[0]
    assert headline.startswith(
        "fixed service: flat; leaky service: growing (+4 property_bags, +4 recognizers); "
        "cleanup: back to "
    ), headline


def test_demo_timeline_svg_draws_the_phase_marks(tmp_path: Path) -> None:
    """--timeline x.svg: a labelled dashed line per phase; the headline names the leak."""
    path = tmp_path / "demo.svg"
    assert run_demo(["--requests", "2", "--no-report", "--timeline", str(path)], io.StringIO()) == 0
    root = ET.fromstring(path.read_text())
    labels = [e.text for e in root.iter(SVG + "text") if e.get("class") == "mark-label"]
    assert labels == ["fixed service", "leaky service", "cleanup"], labels
    sub = [e.text or "" for e in root.iter(SVG + "text") if e.get("class") == "sub"]
    assert "leaky service: growing" in sub[0] and "trend: flat" not in sub[0], sub
