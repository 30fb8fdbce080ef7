"""The report as one self-contained HTML page: summary, creation stacks and drawn cycles.

No script, no external stylesheet, font or image: the page can be attached to a CI run or
mailed. Every value from the report is HTML-escaped (source lines are already redacted).
"""

# ruff: noqa: E501  (HTML/SVG templates are easier to check unwrapped)

from __future__ import annotations

import sys
import time
from html import escape
from typing import IO, Any, List, Optional, Sequence

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

__all__ = ["format_html", "render_html", "svg_cycle"]

_CSS = """
:root { --bad: #b00020; --ok: #0a7a3a; --muted: #5f6368; --line: #d7d7d7; --code: #f6f8fa; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       margin: 0 auto; padding: 1.5rem 2rem 3rem; max-width: 1100px; color: #1a1a1a; }
h1 { font-size: 1.5rem; margin: 0 0 .3rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .6rem; border-bottom: 1px solid var(--line);
     padding-bottom: .2rem; }
h3 { font-size: 1rem; margin: 0 0 .4rem; }
.meta { color: var(--muted); font-size: .9rem; margin-bottom: 1rem; }
.badge { display: inline-block; padding: .15rem .6rem; border-radius: 1rem; color: white;
         font-weight: 600; font-size: .9rem; vertical-align: middle; }
.badge.bad { background: var(--bad); } .badge.ok { background: var(--ok); }
.badge.warn { background: #b26a00; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid var(--line); padding: .25rem .6rem; text-align: right; }
th { background: #fafafa; }
td.l, th.l { text-align: left; }
code, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; }
pre { background: var(--code); padding: .6rem .8rem; overflow-x: auto; font-size: .82rem;
      line-height: 1.35; border-radius: 4px; margin: .3rem 0 .8rem; }
.group { border: 1px solid var(--line); border-left: 4px solid var(--bad); border-radius: 4px;
         padding: .8rem 1rem; margin: 0 0 1.2rem; }
.group .where { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .9rem; }
.note { background: #fff8e1; border-left: 4px solid #f4b400; padding: .4rem .8rem;
        margin: .3rem 0; font-size: .9rem; }
.note.warn { background: #fdecea; border-left-color: var(--bad); font-size: 1rem; }
.frame-src { color: #444; }
.frame-user { font-weight: 600; }
details > summary { cursor: pointer; color: var(--muted); font-size: .9rem; }
.diagnosis { margin: .4rem 0 .8rem; }
.diagnosis .label { font-weight: 600; }
.finding { margin: .3rem 0; }
tr.bad td { background: #fdecea; }
.small { font-size: .82rem; }
h4 { font-size: .95rem; margin: .8rem 0 .3rem; }
.fix { background: #e8f5e9; border-left: 4px solid var(--ok); padding: .4rem .8rem;
       font-size: .9rem; white-space: pre-wrap; }
"""


def _frames_html(frames: Sequence[ReportFrame]) -> str:
    """A short stack (most recent call last), its last frame (the line) in bold."""
    return _traceback_html(frames).replace("Traceback (most recent call last):\n", "", 1)


def _traceback_html(frames: Sequence[ReportFrame]) -> str:
    lines = ["Traceback (most recent call last):"]
    for index, frame in enumerate(frames):
        css = "frame-user" if index == len(frames) - 1 else ""
        lines.append(
            f'<span class="{css}">  File "{escape(frame.filename)}", line {frame.lineno}, '
            f"in {escape(frame.name)}</span>"
        )
        if frame.line:
            lines.append(f'<span class="frame-src">    {escape(frame.line)}</span>')
    return "<pre>" + "\n".join(lines) + "</pre>"


# -- cycle drawing ---------------------------------------------------------------------------

_BOX_W = 360
_BOX_H = 40
_GAP = 46


def _wrap(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def svg_cycle(nodes: Sequence[str], edges: Sequence[str] = (), *, closed: bool = True) -> str:
    """Draw a reference chain as boxes joined by labelled arrows, like the seed's figure.

    ``nodes`` are what holds what, in order; ``edges[i]`` labels the arrow from ``nodes[i]``
    to ``nodes[i + 1]`` (and the last one, when ``closed``, the arrow back to ``nodes[0]``).
    """
    n = len(nodes)
    if n == 0:
        return ""
    left = 20
    width = left + _BOX_W + 220
    height = 20 + n * _BOX_H + (n - 1) * _GAP + (40 if closed else 20)
    out: List[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="DejaVu Sans, Helvetica, sans-serif">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#444"/></marker></defs>',
    ]
    centre = left + _BOX_W / 2
    for i, label in enumerate(nodes):
        y = 20 + i * (_BOX_H + _GAP)
        first = i == 0
        fill = "#fdecea" if first else "#f4f6fb"
        stroke = "#b00020" if first else "#6b7a99"
        out.append(
            f'<rect x="{left}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
        )
        out.append(
            f'<text x="{centre}" y="{y + _BOX_H / 2 + 5}" text-anchor="middle" font-size="13" '
            f'font-family="DejaVu Sans Mono, monospace">{escape(_wrap(label))}</text>'
        )
        if i + 1 < n:
            y1, y2 = y + _BOX_H, y + _BOX_H + _GAP
            out.append(
                f'<line x1="{centre}" y1="{y1}" x2="{centre}" y2="{y2 - 2}" stroke="#444" '
                'stroke-width="1.5" marker-end="url(#arrow)"/>'
            )
            if i < len(edges) and edges[i]:
                out.append(
                    f'<text x="{centre + 10}" y="{(y1 + y2) / 2 + 4}" font-size="12" '
                    f'fill="#333">{escape(_wrap(edges[i], 40))}</text>'
                )
    if closed and n > 1:
        last_y = 20 + (n - 1) * (_BOX_H + _GAP) + _BOX_H / 2
        first_y = 20 + _BOX_H / 2
        rx = left + _BOX_W
        loop_x = rx + 40
        out.append(
            f'<path d="M{rx},{last_y} H{loop_x} V{first_y} H{rx + 2}" fill="none" '
            'stroke="#b00020" stroke-width="1.8" marker-end="url(#arrow)"/>'
        )
        label = edges[n - 1] if len(edges) >= n and edges[n - 1] else "refers back"
        out.append(
            f'<text x="{loop_x + 8}" y="{(first_y + last_y) / 2}" font-size="12" '
            f'fill="#b00020">{escape(_wrap(label, 26))}</text>'
        )
        out.append(
            f'<text x="{loop_x + 8}" y="{(first_y + last_y) / 2 + 16}" font-size="11" '
            'fill="#b00020">(reference cycle)</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _path_svg(path: Any, closed: bool) -> str:
    """A reference path (``steps`` with ``label``/``note``) drawn as boxes and arrows."""
    steps = tuple(getattr(path, "steps", ()) or ())
    if not steps:
        return ""
    nodes = [str(getattr(step, "label", step)) for step in steps]
    edges = [str(getattr(step, "note", "") or "") for step in steps]
    return svg_cycle(nodes, edges, closed=closed)


def _where(filename: str, lineno: int) -> str:
    return f"{escape(filename)}:{lineno}" if filename else ""


def _diagnosis_html(group: ReportGroup) -> str:
    """The group's diagnosis (classification, cycle, findings and fixes, signals, access
    records) when the report carries one; empty otherwise."""
    classification = tuple(getattr(group, "classification", ()) or ())
    if not classification:
        return ""
    parts = ['<div class="diagnosis">']
    counts = ", ".join(f"{n} {escape(str(state))}" for state, n in classification)
    parts.append(f'<div><span class="label">Diagnosis:</span> {counts}</div>')
    for finding in getattr(group, "findings", ()) or ():
        parts.append(_finding_html(finding, "objects"))
    cycle = getattr(group, "cycle", None)
    if cycle is not None and getattr(cycle, "steps", None):
        parts.append("<h4>The reference cycle keeping these handles alive</h4>")
        parts.append(f'<p class="mono small">{escape(str(cycle))}</p>')
        parts.append(_path_svg(cycle, closed=True))
        held = tuple(getattr(cycle, "held", ()) or ())
        if held:
            parts.append("<p>which keeps alive:</p>")
            parts.append(
                svg_cycle([str(s.label) for s in held], [s.note for s in held], closed=False)
            )
    root_path = getattr(group, "root_path", None)
    if root_path is not None and getattr(root_path, "steps", None):
        root = getattr(root_path, "root", "")
        parts.append(f"<h4>Still referenced{f' from {escape(root)}' if root else ''}</h4>")
        parts.append(f'<p class="mono small">{escape(str(root_path))}</p>')
        parts.append(_path_svg(root_path, closed=False))
    signals = tuple(getattr(group, "signals", ()) or ())
    if signals:
        subject = escape(getattr(group, "subject", "") or "the SDK object")
        rows = []
        for signal in signals:
            callbacks = "<br>".join(
                f"<code>{escape(cb.qualname)}</code> {_where(cb.filename, cb.lineno)}"
                for cb in signal.callbacks
            )
            state = "connected" if signal.callbacks else ("created" if signal.created else "")
            css = ' class="bad"' if signal.callbacks else ""
            rows.append(
                f'<tr{css}><td class="l mono">{escape(signal.name)}</td><td class="l">'
                f'{escape(signal.declared_by)}</td><td class="l">{state}</td>'
                f'<td class="l">{callbacks}</td></tr>'
            )
        parts.append(
            f"<details><summary>Event signals of {subject} ({len(signals)})</summary>"
            '<table><tr><th class="l">signal</th><th class="l">declared by</th>'
            '<th class="l">state</th><th class="l">callbacks</th></tr>'
            + "\n".join(rows)
            + "</table></details>"
        )
    access = tuple(getattr(group, "access", ()) or ())
    if access:
        rows = []
        for entry in access:
            flag = ""
            if entry.disconnected is False:
                flag = ' class="bad"'
            rows.append(
                f'<tr{flag}><td class="l mono">{escape(entry.action)}</td><td class="l mono">'
                f'{escape(entry.target)}</td><td class="l">{_where(entry.filename, entry.lineno)}'
                f'</td><td class="l mono">{escape(entry.line)}</td><td class="l">'
                f"{'never disconnected' if entry.disconnected is False else ''}</td></tr>"
            )
        parts.append(
            f"<details><summary>Calls on the object ({len(access)})</summary>"
            '<table><tr><th class="l">call</th><th class="l">target</th><th class="l">where'
            '</th><th class="l">line</th><th class="l"></th></tr>'
            + "\n".join(rows)
            + "</table></details>"
        )
    parts.append("</div>")
    return "\n".join(parts)


def _finding_html(finding: ReportFinding, unit: str) -> str:
    where = _where(finding.filename, finding.lineno)
    html = (
        f'<div class="finding"><span class="label">{escape(finding.title)}</span>'
        f"{f' at <code>{where}</code>' if where else ''}"
        f"{f' ({finding.count} {unit})' if finding.count > 1 else ''}: "
        f"{escape(finding.message)}</div>"
    )
    if finding.fix:
        html += f'\n<div class="fix">{escape(finding.fix)}</div>'
    return html


def _blocking_html(blocking: ReportBlocking) -> str:
    """Releases in flight, slow releases and blocking calls by site, and the findings."""
    if blocking.clean:
        return ""
    parts = ["<h2>What blocked</h2>", f'<p class="mono small">{escape(blocking_headline(blocking))}</p>']
    for finding in blocking.findings:
        parts.append(_finding_html(finding, "times"))
    if blocking.in_flight:
        rows = []
        for flight in blocking.in_flight:
            rows.append(
                f'<tr class="bad"><td class="l mono">{escape(flight.kind)}</td>'
                f'<td class="l">{escape(flight.owner)}</td><td>{duration_text(flight.elapsed)}</td>'
                f'<td class="l">{escape(str(flight.thread))}</td><td class="l">{escape(flight.cause)}</td>'
                f'<td class="l">{_frames_html(flight.site) if flight.site else ""}</td>'
                f'<td class="l">{_where_of(flight.created)}</td></tr>'
            )
        parts.append(
            "<h4>Releases in flight (the handle is still live while its release blocks)</h4>"
            '<table><tr><th class="l">kind</th><th class="l">owner</th><th>for</th>'
            '<th class="l">thread</th><th class="l">cause</th><th class="l">released at</th>'
            '<th class="l">created at</th></tr>\n' + "\n".join(rows) + "\n</table>"
        )
    if blocking.sites:
        rows = []
        for site in blocking.sites:
            what = (
                "other sites"
                if site.other
                else f"release {site.name} ({site.owner})"
                if site.what == "release"
                else site.name
            )
            css = ' class="bad"' if site.on_event_loop or site.on_sdk_thread else ""
            rows.append(
                f'<tr{css}><td class="l mono">{escape(what)}</td><td>{site.count}</td>'
                f"<td>{duration_text(site.total)}</td><td>{duration_text(site.worst)}</td>"
                f"<td>{site.on_event_loop}</td><td>{site.on_sdk_thread}</td>"
                f'<td class="l">{escape(site.cause)} on {escape(str(site.thread))}</td>'
                f'<td class="l">{_frames_html(site.site) if site.site else ""}</td>'
                f'<td class="l">{_where_of(site.created)}</td></tr>'
            )
        parts.append(
            f"<h4>Slow releases and blocking calls by site (each {duration_text(blocking.threshold)}"
            " or longer)</h4>"
            '<table><tr><th class="l">what</th><th>count</th><th>total</th><th>worst</th>'
            '<th>on an event loop</th><th>on an SDK thread</th><th class="l">last</th>'
            '<th class="l">made at</th><th class="l">created at</th></tr>\n'
            + "\n".join(rows)
            + "\n</table>"
        )
    return "\n".join(parts)


def _where_of(frames: Sequence[ReportFrame]) -> str:
    return f"<code>{_where(frames[-1].filename, frames[-1].lineno)}</code>" if frames else ""


def _native_html(report: Report) -> str:
    native = getattr(report, "native", None)
    if native is None or not getattr(native, "rows", ()):
        return ""
    lines = []
    for row in native.rows:
        # Only what nothing explains is a problem: not the SDK's own import-time handles.
        css = ' class="bad"' if row.unexplained else ""
        lines.append(
            f'<tr{css}><td class="l mono">{escape(row.native_type or "(none)")}</td>'
            f'<td class="l mono">{escape(", ".join(row.kinds))}</td><td>{row.native}</td>'
            f'<td>{row.tracked}</td><td class="l">{escape("; ".join(native_notes(row)))}</td></tr>'
        )
    rows = "\n".join(lines)
    what = "change since the baseline" if getattr(native, "relative", False) else "live now"
    process = process_line(native)
    return (
        f"<h2>The SDK's own handle table ({what})</h2>"
        '<table><tr><th class="l">native type</th><th class="l">kinds</th><th>native</th>'
        f'<th>tracked</th><th class="l">why they differ</th></tr>\n{rows}\n</table>'
        + (f'<p class="small">{escape(process)}</p>' if process else "")
    )


# -- page ----------------------------------------------------------------------------------


def _group_html(index: int, group: ReportGroup) -> str:
    where = (
        f"{escape(group.site.filename)}:{group.site.lineno} in <code>{escape(group.site.name)}</code>"
        if group.site
        else f"on an SDK callback thread, {escape(group.delivered)}"
        if group.delivered
        else "(no creation stack captured)"
    )
    ages = (
        age_text(group.age_min)
        if group.age_min == group.age_max
        else (f"{age_text(group.age_min)} to {age_text(group.age_max)}")
    )
    kinds = "\n".join(
        f'<tr><td>{n}</td><td class="l mono">{escape(kind)}</td><td class="l">{escape(owner)}</td></tr>'
        for kind, owner, n in group.kinds
    )
    handles = "\n".join(
        f'<tr><td>{h.seq}</td><td class="l mono">{escape(h.kind)}</td><td class="l mono">'
        f'{escape(h.address)}</td><td class="l">{escape(h.owner)}'
        f'{(" of " + escape(h.parent)) if h.parent else ""}</td><td class="l">'
        f"{escape(h.thread)}</td><td>{age_text(h.age)}</td></tr>"
        for h in group.handles
    )
    more = group.count - len(group.handles)
    return f"""<section class="group" id="group-{index}">
<h3>#{index} &nbsp;{plural(group.count, "handle")} created at <span class="where">{where}</span></h3>
<div class="meta">age {ages}; fingerprint <code>{escape(group.fingerprint)}</code></div>
{_diagnosis_html(group)}
<table><tr><th>count</th><th class="l">kind</th><th class="l">owner</th></tr>
{kinds}
</table>
{_traceback_html(group.traceback) if group.traceback else ""}
<details><summary>{plural(len(group.handles), "handle")} listed{f" ({more} more not listed)" if more > 0 else ""}</summary>
<table><tr><th>seq</th><th class="l">kind</th><th class="l">address</th><th class="l">owner</th>
<th class="l">thread</th><th>age</th></tr>
{handles}
</table></details>
</section>"""


def format_html(report: Report, *, title: Optional[str] = None) -> str:
    """The report as a complete, self-contained HTML document."""
    heading = title or "handletrace report"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.generated_at))
    warning = ""
    if not report.installed:
        # Before anything else: a green "no live native handles" would read as an all-clear.
        problem, remedy = not_installed(report.created)
        warning = (
            f'<div class="note warn"><strong>{escape(problem)}</strong><br>{escape(remedy)}</div>'
        )
    if not report.installed and report.clean:
        badge = '<span class="badge warn">not installed</span>'
    elif report.clean:
        badge = '<span class="badge ok">no live native handles</span>'
    else:
        badge = (
            f'<span class="badge bad">{plural(report.live, "live native handle")} in '
            f"{plural(len(report.groups), 'group')}</span>"
        )
    causes = ", ".join(f"{c} {n}" for c, n in report.released_by_cause.items() if n)
    notes = []
    if report.instrumentation_errors:
        notes.append(
            f"{plural(report.instrumentation_errors, 'instrumentation error')} "
            "(caught; the program was not affected)"
        )
    notes.extend(report.notes)
    diagnosis = getattr(report, "diagnosis", None)
    if diagnosis is not None:
        counts = ", ".join(f"{n} {state}" for state, n in diagnosis.classification)
        notes.append(
            f"diagnosis: {counts or 'nothing to classify'}; {plural(diagnosis.findings, 'finding')} "
            f"(heap scan of {diagnosis.objects_scanned:,} objects in "
            f"{diagnosis.duration * 1000:.0f} ms"
            + ("; gc.collect() was run first)" if diagnosis.gc_collected else ")")
        )
    notes_html = "\n".join(f'<div class="note">{escape(n)}</div>' for n in notes)
    kind_rows = "\n".join(
        f'<tr><td class="l mono">{escape(kind)}</td><td>{c.get("created", 0)}</td>'
        f"<td>{c.get('released', 0)}</td><td>{c.get('live', 0)}</td><td>{c.get('peak', 0)}</td></tr>"
        for kind, c in sorted(report.kinds.items())
    )
    kinds_table = (
        '<h2>Handles by kind</h2><table><tr><th class="l">kind</th><th>created</th>'
        f"<th>released</th><th>live</th><th>peak</th></tr>\n{kind_rows}\n</table>"
        if kind_rows
        else ""
    )
    groups = "\n".join(_group_html(i, g) for i, g in enumerate(report.groups, 1))
    groups_html = f"<h2>Live handles by creation site</h2>\n{groups}" if groups else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(heading)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{escape(heading)} {badge}</h1>
{warning}
<div class="meta">generated {escape(when)} &middot; pid {report.pid} &middot; Python
{escape(report.python)} &middot; azure-cognitiveservices-speech {escape(report.sdk_version)}</div>
<table>
<tr><th class="l">live</th><td>{report.live}</td></tr>
<tr><th class="l">created</th><td>{report.created}</td></tr>
<tr><th class="l">released</th><td>{report.released}{f" ({escape(causes)})" if causes else ""}</td></tr>
</table>
{notes_html}
{kinds_table}
{_native_html(report)}
{_blocking_html(report.blocking) if report.blocking is not None else ""}
{groups_html}
</body>
</html>
"""


def render_html(report: Report, file: Optional[IO[str]] = None) -> None:
    """Write the HTML page to ``file`` (default ``sys.stderr``, like the other renderers)."""
    (file if file is not None else sys.stderr).write(format_html(report))
