"""Writing a timeline: the formats it is written in, and the one a file name asks for."""

from __future__ import annotations

import json
from typing import IO, Optional

from ..._core.config import format_for_path as _format_for_path
from ...errors import TimelineError
from ..terminal import Style
from .chart import format_chart
from .model import Timeline
from .svg import format_html, format_svg

__all__ = ["TIMELINE_FORMATS", "format_for_path", "render_timeline", "write_timeline"]

TIMELINE_FORMATS = ("text", "json", "svg", "html")


def format_for_path(path: str) -> str:
    """The timeline format a file name asks for: .svg, .html/.htm, .json, else text."""
    return _format_for_path(path, TIMELINE_FORMATS)


def render_timeline(
    timeline: Timeline, file: IO[str], format: str = "text", *, style: Optional[Style] = None
) -> None:
    """Write ``timeline`` to ``file`` as ``text`` (chart), ``json``, ``svg`` or ``html``."""
    if format == "text":
        file.write(format_chart(timeline, style=style))
    elif format == "json":
        json.dump(timeline.to_dict(), file, indent=1)
        file.write("\n")
    elif format == "svg":
        file.write(format_svg(timeline))
    elif format == "html":
        file.write(format_html(timeline))
    else:
        raise TimelineError(
            f"timeline format must be one of {', '.join(TIMELINE_FORMATS)}; got {format!r}"
        )


def write_timeline(timeline: Timeline, path: str) -> str:
    """Write ``timeline`` to ``path`` in the format its extension names; returns the format."""
    fmt = format_for_path(path)
    with open(path, "w", encoding="utf-8") as out:
        render_timeline(timeline, out, fmt)
    return fmt
