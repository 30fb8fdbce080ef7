"""The text report, for terminals and logs. Writes, never computes.

With a diagnosis, each group's text also shows its classification, the reference cycle (or
the path from a root), the known-pattern findings with their fixes, the signals tree of its
SDK object and the access records; then come the native handle-table cross-check (with the
process's threads and sockets) and, when anything blocked, the blocking section: releases
in flight, slow releases and blocking calls by site, and the patterns they match.
"""

from __future__ import annotations

import sys
from typing import IO, Optional

from .._analysis.diagnosis import SignalInfo
from .._analysis.paths import RefPath
from .._analysis.states import DESCRIPTIONS
from .model import Report, ReportBlocking, ReportFinding, ReportFrame, ReportGroup
from .words import (
    age_text,
    blocking_headline,
    duration_text,
    native_notes,
    not_installed,
    plural,
    process_line,
)

__all__ = ["blocking_lines", "format_text", "render_text"]

TRACEBACK_LIMIT = 8  # frames shown per group in text; JSON keeps all captured frames
SITE_LIMIT = 3  # frames shown per blocking site in text (JSON keeps six)


def _causes(report: Report) -> str:
    parts = [f"{cause} {n}" for cause, n in report.released_by_cause.items() if n]
    return f" ({', '.join(parts)})" if parts else ""


def format_text(report: Report) -> str:
    """The text report as one string."""
    lines = []
    counts = f"created {report.created}, released {report.released}{_causes(report)}"
    if not report.installed:
        # First: without it, "no live native handles" would read as an all-clear.
        problem, remedy = not_installed(report.created)
        lines += [problem, f"    {remedy}"]
        if report.clean and not report.created:
            return "\n".join(lines) + "\n"
    if report.clean:
        lines.append(f"handletrace: no live native handles ({counts})")
    else:
        lines.append(
            f"handletrace: {plural(report.live, 'live native handle')} in "
            f"{plural(len(report.groups), 'group')} (pid {report.pid}, "
            f"azure-cognitiveservices-speech {report.sdk_version})"
        )
        lines.append(counts)
    if report.instrumentation_errors:
        lines.append(
            f"note: {plural(report.instrumentation_errors, 'instrumentation error')} "
            "(caught; the program was not affected)"
        )
    for note in report.notes:
        lines.append(f"note: {note}")
    if report.diagnosis is not None and not report.clean:
        lines.append(_diagnosis_line(report))
    for index, group in enumerate(report.groups, 1):
        lines.append("")
        lines.extend(_group_lines(index, group))
    if report.native is not None and report.native.rows and not report.clean:
        lines.append("")
        lines.extend(_native_lines(report))
    if report.blocking is not None and not report.blocking.clean:
        lines.append("")
        lines.extend(blocking_lines(report.blocking))
    return "\n".join(lines) + "\n"


def _diagnosis_line(report: Report) -> str:
    diagnosis = report.diagnosis
    assert diagnosis is not None
    states = ", ".join(f"{n} {state}" for state, n in diagnosis.classification) or "nothing"
    findings = f"; {plural(diagnosis.findings, 'finding')}" if diagnosis.findings else ""
    how = "no garbage collection was run" if not diagnosis.gc_collected else "after a gc.collect()"
    stale = ""
    if diagnosis.stale_after is not None:
        stale = f", stale after {age_text(diagnosis.stale_after)}"
    return (
        f"diagnosis: {states}{findings} (heap scan of {diagnosis.objects_scanned:,} objects in "
        f"{age_text(diagnosis.duration)}{stale}; {how})"
    )


def _native_lines(report: Report) -> list[str]:
    native = report.native
    assert native is not None
    relative = " (since the baseline)" if native.relative else ""
    lines = [
        f"native handle table of the SDK{relative}: {native.native_total} handles, "
        f"{native.tracked_total} tracked by handletrace",
    ]
    width = max(len(row.native_type or "(no native type)") for row in native.rows)
    width = max(width, len("native type"))
    lines.append(f"    {'native type':<{width}}  native  tracked")
    for row in native.rows:
        name = row.native_type or "(no native type)"
        line = f"    {name:<{width}}  {row.native:>6}  {row.tracked:>7}"
        notes = native_notes(row)
        if notes:
            line += "  " + "; ".join(notes)
        lines.append(line)
    process = process_line(native)
    if process:
        lines.append(process)
    return lines


def _stack_lines(frames: tuple[ReportFrame, ...], indent: str) -> list[str]:
    shown = frames[-SITE_LIMIT:]
    lines = []
    for frame in shown:
        lines.append(f'{indent}File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"{indent}  {frame.line}")
    return lines


def _created_line(frames: tuple[ReportFrame, ...], indent: str) -> list[str]:
    if not frames:
        return []
    origin = frames[-1]
    return [f"{indent}created at {origin} in {origin.name}"]


def _finding_lines(finding: ReportFinding, indent: str = "    ") -> list[str]:
    count = f" x{finding.count}" if finding.count > 1 else ""
    where = f" at {finding.where}" if finding.where else ""
    return [
        f"{indent}finding [{finding.pattern}]{count}{where}: {finding.title}",
        f"{indent}    {finding.message}",
        f"{indent}    fix: {finding.fix}",
    ]


def blocking_lines(blocking: ReportBlocking) -> list[str]:
    """The blocking section: releases in flight, recorded sites, findings (no trailing
    newline; empty lines between parts are the caller's)."""
    lines = [blocking_headline(blocking)]
    if blocking.in_flight:
        lines.append("  releases in flight:")
        for flight in blocking.in_flight:
            what = f"{flight.kind} ({flight.owner})" if flight.owner else flight.kind or "?"
            lines.append(
                f"    {what} releasing for {duration_text(flight.elapsed)} on "
                f"{flight.thread}, cause {flight.cause}"
            )
            lines.extend(_stack_lines(flight.site, "      "))
            lines.extend(_created_line(flight.created, "      "))
    if blocking.sites:
        lines.append("  slow releases and blocking calls by site (longest total first):")
        for site in blocking.sites:
            if site.other:
                lines.append(
                    f"    {plural(site.count, 'more event')} at other sites (not kept one by "
                    f"one), {duration_text(site.total)} in all, {duration_text(site.worst)} worst"
                )
                continue
            what = f"release {site.name} ({site.owner})" if site.what == "release" else site.name
            where = []
            if site.on_event_loop:
                where.append(f"{site.on_event_loop} on an event loop")
            if site.on_sdk_thread:
                where.append(f"{site.on_sdk_thread} on an SDK callback thread")
            lines.append(
                f"    {what}: {site.count}x, {duration_text(site.total)} in all, "
                f"{duration_text(site.worst)} worst"
                + (f", {', '.join(where)}" if where else "")
                + f"; last: {site.cause} on {site.thread}"
            )
            lines.extend(_stack_lines(site.site, "      "))
            lines.extend(_created_line(site.created, "      "))
    for finding in blocking.findings:
        lines.extend(_finding_lines(finding, "  "))
    return lines


def _path_lines(title: str, path: RefPath) -> list[str]:
    lines = [f"    {title}: {path.text}"]
    seen = set()
    for step in (*path.steps, *path.held):
        if step.filename and (step.label, step.where) not in seen:
            seen.add((step.label, step.where))
            lines.append(f"        {step.label} is defined at {step.where}")
    return lines


def _signal_lines(group: ReportGroup) -> list[str]:
    signals = group.signals
    if not any(signal.callbacks for signal in signals):
        return [f"    signals of {group.subject}: {len(signals)}, none connected"]
    lines = [f"    signals of {group.subject}:"]
    own = group.subject
    by_class: list[tuple[str, list[SignalInfo]]] = []
    for signal in signals:
        if not by_class or by_class[-1][0] != signal.declared_by:
            by_class.append((signal.declared_by, []))
        by_class[-1][1].append(signal)
    column = max(len(signal.name) for signal in signals) + 16  # where the states start

    def entry(prefix: str, signal: SignalInfo) -> str:
        name = signal.name
        callbacks = signal.callbacks
        dots = " " + "." * max(3, column - len(prefix) - len(name)) + " "
        if callbacks:
            state = "connected: " + ", ".join(str(cb) for cb in callbacks)
        else:
            state = "not connected" if signal.created else "never used"
        return f"{prefix}{name}{dots}{state}"

    for index, (declared_by, members) in enumerate(by_class):
        last_class = index == len(by_class) - 1
        if declared_by == own or index == 0:
            for position, signal in enumerate(members):
                last = position == len(members) - 1 and len(by_class) == 1
                lines.append(entry("    └── " if last else "    ├── ", signal))
            continue
        lines.append(f"    {'└──' if last_class else '├──'} (inherits from {declared_by})")
        indent = "        " if last_class else "    │   "
        for position, signal in enumerate(members):
            branch = "└── " if position == len(members) - 1 else "├── "
            lines.append(entry(indent + branch, signal))
    return lines


def _access_lines(group: ReportGroup) -> list[str]:
    lines = [f"    access ({group.subject}):"]
    for entry in group.access:
        where = entry.where or "(no Python caller)"
        what = entry.target
        if entry.action not in ("start", "stop"):
            what = f"{entry.action} {entry.target}"
        if entry.callback:
            what += f" -> {entry.callback}"
        if entry.by_sdk:
            what += " (by the SDK)"
        if entry.disconnected is False:
            what += ", never disconnected"
        lines.append(f"      {where}  {what}")
    return lines


def _diagnosis_lines(group: ReportGroup) -> list[str]:
    lines = []
    if group.classification:
        parts = [f"{n} {state}" for state, n in group.classification]
        first = group.classification[0][0]
        lines.append(f"    classification: {', '.join(parts)} ({DESCRIPTIONS.get(first, first)})")
    if group.cycle is not None:
        lines.extend(_path_lines("cycle", group.cycle))
    if group.root_path is not None:
        lines.extend(_path_lines("held by", group.root_path))
    for finding in group.findings:
        lines.extend(_finding_lines(finding))
    if group.signals:
        lines.extend(_signal_lines(group))
    if group.access:
        lines.extend(_access_lines(group))
    return lines


def _group_lines(index: int, group: ReportGroup) -> list[str]:
    where = (
        f"at {group.site} in {group.site.name}"
        if group.site
        else f"on an SDK callback thread, {group.delivered}"
        if group.delivered
        else "(no creation stack captured)"
    )
    ages = (
        age_text(group.age_min)
        if group.age_min == group.age_max
        else (f"{age_text(group.age_min)} to {age_text(group.age_max)}")
    )
    lines = [
        f"#{index}  {plural(group.count, 'handle')} created {where}",
        f"    age {ages}; fingerprint {group.fingerprint}",
    ]
    width = max((len(kind) for kind, _, _ in group.kinds), default=0)
    for kind, owner, n in group.kinds:
        lines.append(f"    {n:>5} x {kind:<{width}}  {owner}")
    lines.extend(_diagnosis_lines(group))
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
