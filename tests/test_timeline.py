"""The timeline: sampling live handles and RSS, the summary, and its pictures."""

from __future__ import annotations

import io
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from handletrace._core.registry import Registry
from handletrace._core.state import TRACKER
from handletrace._report.terminal import Style
from handletrace._report.timeline import (
    Sample,
    Sampler,
    Timeline,
    TimelineError,
    axis_range,
    format_chart,
    format_html,
    format_svg,
    rss_reader,
    summarize,
    write_timeline,
)

from . import sdk_objects

SVG = "{http://www.w3.org/2000/svg}"


def timeline_of(
    totals: List[int],
    *,
    rss: Optional[List[int]] = None,
    kind: str = "recognizer",
    interval: float = 1.0,
) -> Timeline:
    """A timeline with one sample per second of ``totals`` handles of ``kind``."""
    samples = tuple(
        Sample(float(i), {kind: n} if n else {}, rss[i] if rss else None)
        for i, n in enumerate(totals)
    )
    return Timeline(samples=samples, interval=interval, label="test")


# -- data --------------------------------------------------------------------------------------


def test_sample_total_adds_every_kind() -> None:
    """A sample's total is the sum over kinds."""
    assert Sample(0.0, {"recognizer": 2, "property_bag": 3}).total == 5


def test_kinds_are_ordered_by_peak_then_name() -> None:
    """Timeline.kinds lists kinds ever live, highest peak first."""
    timeline = Timeline(
        samples=(Sample(0.0, {"b": 1, "a": 1}), Sample(1.0, {"c": 4}), Sample(2.0, {}))
    )
    assert timeline.kinds == ("c", "a", "b")
    assert timeline.series("c") == [0, 4, 0]
    assert timeline.series() == [2, 4, 0]


def test_json_round_trip_keeps_every_sample() -> None:
    """to_dict / from_dict give back an equal timeline."""
    timeline = timeline_of([0, 3, 5], rss=[100, 200, 300])
    again = Timeline.from_dict(json.loads(json.dumps(timeline.to_dict())))
    assert again.samples == timeline.samples
    assert (again.interval, again.label) == (1.0, "test")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"schema": "other"}, "not a handletrace timeline"),
        (
            {"schema": "handletrace.timeline", "version": 2, "samples": []},
            "version 2 is not supported",
        ),
        (
            {
                "schema": "handletrace.timeline",
                "version": 1,
                "samples": [{"t": 2, "live": {}}, {"t": 1, "live": {}}],
            },
            "sample 1 has time 1 out of order",
        ),
        (
            {
                "schema": "handletrace.timeline",
                "version": 1,
                "samples": [{"t": 0, "live": {"recognizer": -1}}],
            },
            "sample 0 has live counts",
        ),
        (
            {
                "schema": "handletrace.timeline",
                "version": 1,
                "samples": [{"t": 0, "live": {}, "rss": "big"}],
            },
            "sample 0 has rss 'big'",
        ),
        ([], "the top level should be an object"),
    ],
    ids=["schema", "version", "order", "negative", "rss", "list"],
)
def test_from_dict_rejects_malformed_data(data: object, message: str) -> None:
    """A malformed timeline raises TimelineError saying what is wrong."""
    with pytest.raises(TimelineError, match=message):
        Timeline.from_dict(data, source="t.json")


# -- summary -----------------------------------------------------------------------------------


def test_summary_of_steady_growth() -> None:
    """Growing by 2 a second: trend growing, slope 2, first/last/peak exact."""
    summary = summarize(timeline_of([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]))
    assert (summary.live_first, summary.live_last, summary.live_peak) == (0, 18, 18)
    assert summary.trend == "growing"
    assert summary.slope == pytest.approx(2.0)
    assert summary.duration == 9.0


def test_summary_of_a_service_that_frees_each_request_is_flat() -> None:
    """Up and down by one request's handles: trend flat."""
    summary = summarize(timeline_of([0, 6, 0, 6, 0, 6, 0, 6, 0, 6, 0]))
    assert summary.trend == "flat"
    assert summary.live_peak == 6


def test_summary_of_a_release_is_falling() -> None:
    """From 20 down to 0: trend falling."""
    assert summarize(timeline_of([20, 20, 15, 10, 5, 0, 0, 0, 0, 0])).trend == "falling"


def test_summary_of_a_run_that_rises_then_releases_everything_is_not_growing() -> None:
    """Up to 20 and held, then all released by the last sample: flat, not growing."""
    summary = summarize(timeline_of([0, 4, 8, 12, 16, 20, 20, 20, 20, 0]))
    assert (summary.live_first, summary.live_last, summary.live_peak) == (0, 0, 20)
    assert summary.trend == "flat"


def test_summary_of_a_long_plateau_released_at_the_end_is_not_growing() -> None:
    """Most of the last fifth still at the plateau, the final sample at 0: flat."""
    summary = summarize(timeline_of([0, 0, 0] + [10] * 12 + [0]))
    assert (summary.live_first, summary.live_last, summary.live_peak) == (0, 0, 10)
    assert summary.trend == "flat"


def test_summary_of_steady_growth_with_a_dip_at_the_end_is_growing() -> None:
    """Rising by 2 a second, the last sample a little lower but far above the start: growing."""
    assert summarize(timeline_of([0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 16])).trend == "growing"


def test_summary_of_a_constant_count_is_flat() -> None:
    """The same 5 handles live throughout: flat, slope 0."""
    summary = summarize(timeline_of([5] * 10))
    assert (summary.trend, summary.slope, summary.live_peak) == ("flat", 0.0, 5)


def test_summary_of_a_fall_that_comes_back_at_the_end_is_not_falling() -> None:
    """Down from 20 to 0, then back to 20 by the last sample: flat, not falling."""
    summary = summarize(timeline_of([20, 20, 15, 10, 5, 0, 0, 0, 0, 20]))
    assert (summary.live_first, summary.live_last, summary.trend) == (20, 20, "flat")


def test_terminal_chart_summary_of_a_run_that_released_everything() -> None:
    """The line under the chart says flat, without a slope."""
    chart = format_chart(timeline_of([0, 4, 8, 12, 16, 20, 20, 20, 20, 0]), width=10, height=4)
    assert chart.splitlines()[-1] == "live native handles 0 -> 0 (peak 20); trend: flat"


def test_summary_of_an_empty_timeline() -> None:
    """No samples: zeros and flat."""
    summary = summarize(Timeline(samples=()))
    assert (summary.samples, summary.live_peak, summary.trend) == (0, 0, "flat")


def test_summary_has_rss_first_last_peak() -> None:
    """RSS figures come from the samples that have one."""
    summary = summarize(timeline_of([0, 0, 0], rss=[10, 30, 20]))
    assert (summary.rss_first, summary.rss_last, summary.rss_peak) == (10, 20, 30)


# -- sampling ----------------------------------------------------------------------------------


@pytest.fixture
def tracking(installed: None, no_gc: None) -> Iterator[None]:
    yield


def test_sampler_records_the_leak_growing(tracking: None) -> None:
    """Sampling after each leaky request sees the recognizers pile up, two handles each."""
    sampler = Sampler(60.0, rss=False).start()  # the thread never fires: samples are explicit
    segments: List[object] = []
    for _ in range(5):
        sdk_objects.make_leaky_transcriber(segments)
        sampler.sample_now()
    timeline = sampler.stop()
    assert timeline.series("recognizer") == [0, 1, 2, 3, 4, 5, 5]
    assert timeline.series() == [0, 2, 4, 6, 8, 10, 10]
    assert summarize(timeline).trend == "growing"


def test_sampler_records_a_fixed_service_flat(tracking: None) -> None:
    """Requests that free their transcriber leave the live count at zero between requests."""
    sampler = Sampler(60.0, rss=False).start()
    for _ in range(5):
        transcriber = sdk_objects.transcriber()
        del transcriber
        sampler.sample_now()
    timeline = sampler.stop()
    assert timeline.series() == [0] * 7
    assert summarize(timeline).trend == "flat"


def test_sampler_thread_samples_on_its_own_and_stops() -> None:
    """The daemon thread samples every interval; stop() joins it and is idempotent."""
    sampler = Sampler(0.005, registry=Registry(), rss=False).start()
    thread = sampler.thread
    assert thread is not None and thread.daemon and thread.name == "handletrace-timeline"
    import time

    deadline = time.monotonic() + 30
    while len(sampler.snapshot().samples) < 5 and time.monotonic() < deadline:
        time.sleep(0.005)  # the thread, not this test, takes the samples
    timeline = sampler.stop()
    assert not thread.is_alive()
    assert len(timeline.samples) >= 5, timeline.samples
    assert sampler.stop() is timeline


def test_sampler_keeps_memory_bounded_by_halving_resolution() -> None:
    """Past max_samples, every other sample is dropped and the interval doubles."""
    sampler = Sampler(1.0, registry=Registry(), rss=False, max_samples=4)
    for _ in range(10):
        sampler.sample_now()
    timeline = sampler.snapshot()
    assert len(timeline.samples) <= 4
    assert timeline.interval == 8.0


def test_sampler_counts_its_failures_and_never_raises() -> None:
    """A registry that fails (fault injection: the real one does not) is counted, not raised."""

    class BrokenRegistry(Registry):
        def stats(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("injected")

    sampler = Sampler(1.0, registry=BrokenRegistry(), rss=False)
    assert sampler.sample_now() is None
    assert sampler.snapshot().errors == 1


def test_sampler_rejects_a_silly_interval() -> None:
    """An interval below a millisecond is refused."""
    with pytest.raises(ValueError, match="interval must be from 0.001 to 3600 seconds"):
        Sampler(0.0)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_rss_reader_reads_proc_statm() -> None:
    """On Linux, RSS comes from /proc/self/statm and is a plausible number of bytes."""
    read, source, close = rss_reader()
    try:
        assert source == "/proc/self/statm"
        value = read()
        assert value is not None and 1 << 20 < value < 1 << 40
    finally:
        close()


def test_sampler_uses_the_global_registry_by_default() -> None:
    """Without a registry argument, the sampler reads the tracker's."""
    assert Sampler(1.0).registry is TRACKER.registry


# -- terminal chart ----------------------------------------------------------------------------


def test_axis_range_is_round() -> None:
    """Axis bounds are round numbers with round steps."""
    assert axis_range(0, 120, zero=True, intervals=5, integral=True) == (0.0, 125.0)
    assert axis_range(0, 1, zero=True, intervals=5, integral=True) == (0.0, 5.0)
    assert axis_range(38.2, 39.3, zero=False, intervals=4) == (38.0, 40.0)


def test_terminal_chart_draws_growth_like_the_seed() -> None:
    """A growing series draws rising columns on a labelled axis, with the summary below."""
    chart = format_chart(timeline_of([0, 5, 10]), width=10, height=4)
    assert chart.splitlines() == [
        "     Live native handles over 2s (test)",
        "",
        " 10 ┤         █",
        "    │         █",
        "  5 ┤     █████",
        "    │     █████",
        "  0 └┴────┴───┴",
        "     0s   1s  2s",
        "     seconds since start",
        "",
        "live native handles 0 -> 10 (peak 10); trend: growing, +5.0 per second",
    ]


def test_terminal_chart_colours_only_when_asked() -> None:
    """Without a style there is no escape code; with one, growth is red."""
    timeline = timeline_of([0, 5, 10])
    assert "\x1b[" not in format_chart(timeline)
    coloured = format_chart(timeline, style=Style(True))
    assert "\x1b[31m" in coloured
    assert "\x1b[1;31mgrowing\x1b[0m" in coloured


def test_terminal_chart_adds_rss_when_sampled() -> None:
    """With RSS samples, a second chart in MB follows."""
    chart = format_chart(timeline_of([0, 1], rss=[50 << 20, 60 << 20]))
    assert "Resident memory (RSS) over 1s (test)" in chart
    assert "RSS 50.0 MB -> 60.0 MB (peak 60.0 MB)" in chart


def test_terminal_chart_of_no_samples() -> None:
    """An empty timeline says so."""
    assert format_chart(Timeline(samples=())) == "handletrace timeline: no samples\n"


# -- SVG and HTML --------------------------------------------------------------------------------


def _svg(timeline: Timeline) -> ET.Element:
    return ET.fromstring(format_svg(timeline))


def test_svg_is_well_formed_with_a_line_per_kind_and_the_total() -> None:
    """The SVG parses; it draws one polyline per kind plus the total."""
    timeline = Timeline(
        samples=(
            Sample(0.0, {}),
            Sample(1.0, {"recognizer": 1, "property_bag": 1}),
            Sample(2.0, {"recognizer": 2, "property_bag": 2}),
        )
    )
    root = _svg(timeline)
    assert root.tag == SVG + "svg"
    assert len(root.findall(f"{SVG}polyline")) == 3
    legend = [t.text for t in root.iter(SVG + "text") if t.get("class") == "legend"]
    assert sorted(legend) == ["all kinds (peak 4)", "property_bag (peak 2)", "recognizer (peak 2)"]


def test_svg_total_line_ends_at_the_top_for_growth() -> None:
    """The total's last point is at the peak: the top of the plot when the peak is round."""
    root = _svg(timeline_of([0, 50, 100]))
    total = next(p for p in root.iter(SVG + "polyline") if p.get("stroke") == "#111")
    plot = next(r for r in root.iter(SVG + "rect") if r.get("class") == "plot")
    last_y = float(total.get("points", "").split()[-1].split(",")[1])
    assert last_y == pytest.approx(float(plot.get("y", "0")))


def test_svg_escapes_the_label() -> None:
    """A label with markup characters is escaped."""
    text = format_svg(Timeline(samples=(Sample(0.0, {}),), label="<a&b>"))
    assert "&lt;a&amp;b&gt;" in text
    ET.fromstring(text)


def test_html_page_embeds_the_chart_and_the_peaks_table() -> None:
    """The HTML page is self-contained: the SVG inline, a row per kind, no script or link."""
    page = format_html(timeline_of([0, 3, 6]))
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page
    assert "<tr><td>recognizer</td><td>0</td><td>6</td><td>6</td></tr>" in page
    assert "<script" not in page and "<link" not in page
    assert 'class="trend-growing">growing<' in page


@pytest.mark.parametrize(
    ("name", "start"),
    [("t.svg", "<svg"), ("t.html", "<!DOCTYPE"), ("t.json", "{"), ("t.txt", "     Live")],
)
def test_write_timeline_picks_the_format_from_the_extension(
    tmp_path: Path, name: str, start: str
) -> None:
    """write_timeline writes SVG, HTML, JSON or the text chart by extension."""
    path = tmp_path / name
    write_timeline(timeline_of([0, 1]), str(path))
    assert path.read_text().startswith(start)


def test_render_to_an_unknown_format_is_refused() -> None:
    """render_timeline refuses formats it does not know."""
    from handletrace._report.timeline import render_timeline

    with pytest.raises(TimelineError, match="timeline format must be one of text, json, svg, html"):
        render_timeline(timeline_of([0]), io.StringIO(), "png")
