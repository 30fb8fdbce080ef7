"""One entry point for writing a report in any of its formats.

A report is built once (``build_report()``, or the data ``report()`` returns) and rendered
here as often as needed: each format from the same data, with no second heap scan."""

from __future__ import annotations

import json
import sys
from typing import IO, Optional

from .model import Report
from .text import render_text

__all__ = ["FORMATS", "render", "render_json"]

#: The formats a report is written in.
FORMATS = ("text", "json", "html")


def render_json(report: Report, file: Optional[IO[str]] = None) -> None:
    """Write the JSON report (schema ``handletrace.report``) to ``file`` (default stderr)."""
    out = file if file is not None else sys.stderr
    json.dump(report.to_dict(), out, indent=2)
    out.write("\n")


def render(report: Report, file: Optional[IO[str]] = None, format: str = "text") -> None:
    """Write ``report`` in ``format`` (one of :data:`FORMATS`) to ``file`` (default stderr).

    ``data = handletrace.report(); handletrace.render(data, out, "json")``: text on stderr
    and JSON in ``out`` from one build."""
    if format == "text":
        render_text(report, file)
    elif format == "json":
        render_json(report, file)
    elif format == "html":
        from .html import render_html  # here: the HTML page's code loads when one is asked for

        render_html(report, file)
    else:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
