"""Report rendering: text for terminals and logs, JSON for machines. Writes, never computes."""

from __future__ import annotations

import json
import sys
from typing import IO, Optional

from ._report import Report, ReportGroup

__all__ = ["FORMATS", "render", "render_json", "render_text"]

FORMATS = ("text", "json")
TRACEBACK_LIMIT = 8  # frames shown per group in text; JSON keeps all captured frames


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _age(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _causes(report: Report) -> str:
    parts = [f"{cause} {n}" for cause, n in report.released_by_cause.items() if n]
    return f" ({', '.join(parts)})" if parts else ""


def format_text(report: Report) -> str:
    """The text report as one string."""
    lines = []
    counts = f"created {report.created}, released {report.released}{_causes(report)}"
    if report.clean:
        lines.append(f"handletrace: no live native handles ({counts})")
    else:
        lines.append(
            f"handletrace: {_plural(report.live, 'live native handle')} in "
            f"{_plural(len(report.groups), 'group')} (pid {report.pid}, "
            f"azure-cognitiveservices-speech {report.sdk_version})"
        )
        lines.append(counts)
    if not report.installed:
        lines.append("note: handletrace is not installed; handles are not being tracked")
    if report.instrumentation_errors:
        lines.append(
            f"note: {_plural(report.instrumentation_errors, 'instrumentation error')} "
            "(caught; the program was not affected)"
        )
    for note in report.notes:
        lines.append(f"note: {note}")
    for index, group in enumerate(report.groups, 1):
        lines.append("")
        lines.extend(_group_lines(index, group))
    return "\n".join(lines) + "\n"


def _group_lines(index: int, group: ReportGroup) -> list[str]:
    where = f"at {group.site} in {group.site.name}" if group.site else "(no creation stack captured)"
    ages = _age(group.age_min) if group.age_min == group.age_max else (
        f"{_age(group.age_min)} to {_age(group.age_max)}"
    )
    lines = [
        f"#{index}  {_plural(group.count, 'handle')} created {where}",
        f"    age {ages}; fingerprint {group.fingerprint}",
    ]
    width = max(len(kind) for kind, _, _ in group.kinds)
    for kind, owner, n in group.kinds:
        lines.append(f"    {n:>5} x {kind:<{width}}  {owner}")
    if group.traceback:
        shown = group.traceback[-TRACEBACK_LIMIT:]
        hidden = len(group.traceback) - len(shown)
        lines.append("    Traceback (most recent call last):")
        if hidden:
            lines.append(f"      ... {hidden} older frames")
        for frame in shown:
            lines.append(f'      File "{frame.filename}", line {frame.lineno}, in {frame.name}')
            if frame.line:
                lines.append(f"        {frame.line}")
    return lines


def render_text(report: Report, file: Optional[IO[str]] = None) -> None:
    """Write the text report to ``file`` (default ``sys.stderr``)."""
    (file if file is not None else sys.stderr).write(format_text(report))


def render_json(report: Report, file: Optional[IO[str]] = None) -> None:
    """Write the JSON report (schema ``handletrace.report``) to ``file`` (default stderr)."""
    out = file if file is not None else sys.stderr
    json.dump(report.to_dict(), out, indent=2)
    out.write("\n")


def render(report: Report, file: Optional[IO[str]] = None, format: str = "text") -> None:
    """Write ``report`` in ``format`` (one of :data:`FORMATS`)."""
    if format == "text":
        render_text(report, file)
    elif format == "json":
        render_json(report, file)
    else:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
