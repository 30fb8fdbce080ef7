"""A timeline of live native handles (per kind) and process RSS while a program runs.

One module per job, compute separate from render:

``model``
    :class:`Sample`, :class:`Mark` and :class:`Timeline` (immutable values) and their JSON
    form (``codec.py`` writes and reads it from the fields);
``sampler``
    :class:`Sampler`: the daemon thread that records samples, and the phase marks the
    program sets (``sampler.mark("leaky service")``); where RSS is read from;
``summary``
    :func:`summarize`: first, last and peak counts, the slope and the trend, per phase when
    there are marks, and those numbers in words;
``scale``
    round axes and number formats shared by the pictures;
``chart``
    :func:`format_chart`: terminal charts;
``svg``
    :func:`format_svg` and :func:`format_html` (a page around the SVG);
``output``
    :func:`render_timeline` and :func:`write_timeline`: the format, from a file name too.

The names other modules use are importable from here, as before the split.
"""

from __future__ import annotations

from ...errors import TimelineError
from .chart import _chart_lines, format_chart
from .model import DEFAULT_INTERVAL, TIMELINE_SCHEMA, TIMELINE_VERSION, Mark, Sample, Timeline
from .output import TIMELINE_FORMATS, format_for_path, render_timeline, write_timeline
from .sampler import MAX_MARKS, MAX_SAMPLES, Sampler, rss_reader
from .scale import (
    MIB,
    axis_range,
    best_axis,
    format_bytes,
    format_count,
    format_seconds,
    nice_step,
)
from .summary import PhaseSummary, TimelineSummary, describe, summarize
from .svg import format_html, format_svg

__all__ = [
    "DEFAULT_INTERVAL",
    "MAX_MARKS",
    "MAX_SAMPLES",
    "MIB",
    "TIMELINE_FORMATS",
    "TIMELINE_SCHEMA",
    "TIMELINE_VERSION",
    "Mark",
    "PhaseSummary",
    "Sample",
    "Sampler",
    "Timeline",
    "TimelineError",
    "TimelineSummary",
    "_chart_lines",
    "axis_range",
    "best_axis",
    "describe",
    "format_bytes",
    "format_chart",
    "format_count",
    "format_for_path",
    "format_html",
    "format_seconds",
    "format_svg",
    "nice_step",
    "render_timeline",
    "rss_reader",
    "summarize",
    "write_timeline",
]
