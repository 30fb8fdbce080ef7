"""Phase marks on a timeline: recorded by the sampler, kept in the JSON, drawn in every
picture, and the summary told per phase so a leak in the middle of a run is named."""

from __future__ import annotations

import gc
import json
import xml.etree.ElementTree as ET
from typing import List, Optional, Sequence, Tuple

import pytest

from handletrace._core.registry import Registry
from handletrace._report.terminal import Style
from handletrace._report.timeline import (
    Mark,
    Sample,
    Sampler,
    Timeline,
    TimelineError,
    describe,
    format_chart,
    format_html,
    format_svg,
    summarize,
)

from . import sdk_objects

SVG = "{http://www.w3.org/2000/svg}"


def demo_like(rss: Optional[List[int]] = None) -> Timeline:
    """A fixed phase (up and down by one request's handles), a leaky one (two handles a
    second that stay), and a cleanup (all released), one sample a second."""
    fixed = [0, 2, 0, 2, 0, 2, 0]
    leaky = [2, 4, 6, 8, 10, 12]
    cleanup = [12, 0, 0]
    totals = fixed + leaky + cleanup
    samples = tuple(
        Sample(
            float(i),
            {"recognizer": n // 2, "property_bag": n // 2} if n else {},
            rss[i] if rss else None,
        )
        for i, n in enumerate(totals)
    )
    marks = (
        Mark(0.0, "fixed service"),
        Mark(6.0, "leaky service"),
        Mark(13.0, "cleanup"),
    )
    return Timeline(samples=samples, marks=marks, interval=1.0, label="demo")


# -- the sampler ---------------------------------------------------------------------------------


def test_mark_records_its_time_with_a_sample() -> None:
    """mark() takes a sample and records (t, label) at that sample's time, in order."""
    sampler = Sampler(60.0, registry=Registry(), rss=False).start()
    first = sampler.mark("first")
    second = sampler.mark("second")
    timeline = sampler.stop()
    assert [m.label for m in timeline.marks] == ["first", "second"], timeline.marks
    assert first is not None and second is not None
    sample_times = [s.t for s in timeline.samples]
    assert first.t in sample_times and second.t in sample_times, (timeline.marks, sample_times)
    assert first.t <= second.t


def test_mark_outside_sampling_is_not_recorded() -> None:
    """Before start() and after stop(), mark() records nothing and returns None."""
    sampler = Sampler(60.0, registry=Registry(), rss=False)
    assert sampler.mark("too early") is None
    sampler.start()
    timeline = sampler.stop()
    assert sampler.mark("too late") is None
    assert timeline.marks == () and sampler.snapshot().marks == ()


def test_marks_of_a_real_leak_split_the_summary_into_phases(installed: None, no_gc: None) -> None:
    """Fixed requests, then leaky ones, then a collection: flat, growing, back to 0."""
    sampler = Sampler(60.0, rss=False).start()  # the thread never fires: samples are explicit
    sampler.mark("fixed service")
    for _ in range(4):
        transcriber = sdk_objects.transcriber()
        del transcriber
        sampler.sample_now()
    sampler.mark("leaky service")
    segments: List[object] = []
    for _ in range(4):
        sdk_objects.make_leaky_transcriber(segments)
        sampler.sample_now()
    sampler.mark("cleanup")
    gc.collect()
    timeline = sampler.stop()
    phases = [(p.label, p.trend, p.live_first, p.live_last) for p in summarize(timeline).phases]
    assert phases == [
        ("fixed service", "flat", 0, 0),
        ("leaky service", "growing", 0, 8),
        ("cleanup", "falling", 8, 0),
    ], phases
    assert describe(summarize(timeline))[0] == (
        "fixed service: flat; leaky service: growing (+4 property_bags, +4 recognizers); "
        "cleanup: back to 0"
    )


# -- JSON ----------------------------------------------------------------------------------------


def test_marks_round_trip_through_json() -> None:
    """to_dict / from_dict keep the marks; the JSON lists them as {t, label}."""
    timeline = demo_like()
    data = json.loads(json.dumps(timeline.to_dict()))
    assert data["marks"][1] == {"t": 6.0, "label": "leaky service"}
    assert Timeline.from_dict(data) == timeline


def test_a_timeline_written_before_marks_still_loads() -> None:
    """A version-1 file without "marks" loads with none (and an unknown key is ignored)."""
    data = demo_like().to_dict()
    del data["marks"]
    data["from_the_future"] = [1, 2]
    timeline = Timeline.from_dict(data)
    assert timeline.marks == () and len(timeline.samples) == 16
    assert summarize(timeline).phases == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["marks"].reverse(), "t.json: mark 1 has time 6.0 out of order"),
        (
            lambda d: d["marks"][0].__setitem__("label", 3),
            "t.json: not a valid handletrace timeline: mark 0 has label 3",
        ),
        (
            lambda d: d["marks"][2].pop("t"),
            "t.json: not a valid handletrace timeline: mark 2 has no 't'",
        ),
        (
            lambda d: d.__setitem__("marks", {}),
            "t.json: not a valid handletrace timeline: marks should be list, got dict",
        ),
    ],
    ids=["order", "label", "missing", "type"],
)
def test_malformed_marks_are_refused_by_index(change: object, message: str) -> None:
    """A bad mark raises TimelineError naming the mark and what is wrong with it."""
    data = json.loads(json.dumps(demo_like().to_dict()))
    change(data)  # type: ignore[operator]
    with pytest.raises(TimelineError) as error:
        Timeline.from_dict(data, source="t.json")
    assert str(error.value) == message


# -- the summary ---------------------------------------------------------------------------------


def test_summary_headline_names_the_leaky_phase() -> None:
    """Overall the run is flat (it ends at 0); per phase the headline names the leak."""
    summary = summarize(demo_like())
    assert summary.trend == "flat"
    assert [(p.label, p.trend) for p in summary.phases] == [
        ("fixed service", "flat"),
        ("leaky service", "growing"),
        ("cleanup", "falling"),
    ]
    assert describe(summary) == [
        "fixed service: flat; leaky service: growing (+6 property_bags, +6 recognizers); "
        "cleanup: back to 0",
        "live native handles 0 -> 0 (peak 12)",
    ]


def test_samples_before_the_first_mark_are_a_phase_of_their_own() -> None:
    """Samples before the first mark are summarised as 'before <first mark>'."""
    samples = tuple(Sample(float(i), {"recognizer": n}) for i, n in enumerate([0, 3, 6, 6, 6]))
    timeline = Timeline(samples=samples, marks=(Mark(2.0, "steady"),), interval=1.0)
    phases = [(p.label, p.trend, p.start, p.end) for p in summarize(timeline).phases]
    assert phases == [("before steady", "growing", 0.0, 2.0), ("steady", "flat", 2.0, 4.0)]


# -- pictures ------------------------------------------------------------------------------------


def test_svg_draws_a_line_and_a_label_per_mark() -> None:
    """Each mark is a dashed vertical line in each panel and a label in the first; the
    headline under the title names the leaky phase."""
    root = ET.fromstring(format_svg(demo_like(rss=[50 << 20] * 16)))
    lines = [e for e in root.iter(SVG + "line") if e.get("class") == "mark"]
    labels = [e.text for e in root.iter(SVG + "text") if e.get("class") == "mark-label"]
    assert len(lines) == 6, [e.attrib for e in lines]  # three marks, two panels
    assert labels == ["fixed service", "leaky service", "cleanup"]
    xs = [float(e.get("x1", "0")) for e in lines[:3]]
    assert xs == sorted(xs) and xs[0] == 70.0, xs  # the first mark at t=0: the left edge
    sub = [e.text for e in root.iter(SVG + "text") if e.get("class") == "sub"]
    assert sub[0] is not None and "leaky service: growing (+6" in sub[0], sub


def test_html_page_gives_the_trend_per_phase() -> None:
    """The page says the trend by phase, each coloured by its own trend."""
    page = format_html(demo_like())
    assert (
        'By phase: fixed service: <span class="trend-flat">flat</span>; leaky service: '
        '<span class="trend-growing">growing</span> (+6 property_bags, +6 recognizers); '
        'cleanup: <span class="trend-falling">back to 0</span>.'
    ) in page, page[:2000]


def _columns(chart: str, row: int) -> List[Tuple[int, str]]:
    line = chart.splitlines()[row]
    return [(i, c) for i, c in enumerate(line) if c in "↓┊"]


def test_terminal_chart_labels_each_mark_and_dots_its_column() -> None:
    """A row under the title labels the marks; empty cells in a mark's column are dotted."""
    chart = format_chart(demo_like(), width=32, height=4)
    lines = chart.splitlines()
    assert lines[1] == "    ↓fixed serv ↓leaky service ↓cleanup", lines  # cut short before the next
    marked = {i for i, _ in _columns(chart, 1)}
    assert {i for i, c in _columns(chart, 2) if c == "┊"} <= marked
    assert _columns(chart, 2), lines  # the top row: empty in every mark's column
    assert lines[-2].startswith("fixed service: flat; leaky service: growing"), lines


def test_terminal_chart_colours_each_phase_by_its_trend() -> None:
    """With colour, the growing phase is red and bold, the others green; marks are dim."""
    chart = format_chart(demo_like(), width=32, height=4, style=Style(True))
    assert "\x1b[1;31mgrowing\x1b[0m" in chart
    assert "\x1b[1;32mflat\x1b[0m" in chart and "\x1b[1;32mback to 0\x1b[0m" in chart
    assert "\x1b[2m┊" in chart


def _headline(marks: Sequence[Mark]) -> str:
    samples = tuple(Sample(float(i), {"recognizer": n}) for i, n in enumerate([0, 0, 5, 9]))
    return describe(summarize(Timeline(samples=samples, marks=tuple(marks), interval=1.0)))[0]


def test_without_marks_the_headline_is_the_overall_trend() -> None:
    """No marks: the headline is the overall trend, as before marks existed."""
    assert _headline(()) == "live native handles 0 -> 9 (peak 9); trend: growing, +3.2 per second"
