"""Small wording helpers shared by the text and HTML renderings."""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Tuple

from .._analysis.blocking import duration_text
from .._sdk.native import NativeCheck, NativeRow

if TYPE_CHECKING:  # the model imports this module's users, not this module
    from .model import ReportBlocking

__all__ = [
    "age_text",
    "blocking_headline",
    "duration_text",
    "native_notes",
    "not_installed",
    "per_object_text",
    "plural",
    "process_line",
    "process_text",
]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def age_text(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def native_notes(row: NativeRow) -> List[str]:
    """What explains a native row's counts: untracked handles that are a problem (made
    before install(), or by the SDK in a way handletrace does not know) and those the SDK
    made for itself, which are expected."""
    notes = []
    if row.unexplained > 0:
        notes.append(f"{row.unexplained} not tracked: made before install() or inside the SDK")
    elif row.unexplained < 0:
        notes.append(f"{-row.unexplained} tracked but not in the native table")
    if row.sdk_internal:
        what = "; ".join(row.sdk_internal)
        notes.append(f"{len(row.sdk_internal)} made by the SDK at import ({what})")
    return notes


def not_installed(created: int) -> Tuple[str, str]:
    """What a report made while handletrace is not installed says before anything else, and
    what to do about it (``created``: handles tracked while it was installed, if ever)."""
    if created:
        what = "; this report shows only those tracked while it was installed"
    else:
        what = ", so there is nothing to report"
    return (
        f"handletrace is not installed: SDK handles are not being tracked{what}",
        "to track them, call handletrace.install() before the program makes SDK objects, "
        "or run it with HANDLETRACE=1",
    )


def process_text(native: NativeCheck) -> str:
    """``23 native threads, 9 open sockets`` ("" where neither could be read)."""
    parts = []
    if native.threads is not None:
        parts.append(plural(native.threads, "native thread"))
    if native.sockets is not None:
        parts.append(plural(native.sockets, "open socket"))
    return ", ".join(parts)


def per_object_text(native: NativeCheck) -> str:
    """``2.9 threads and 1.1 sockets per live recognizer (8 live)``, one part per kind with
    live objects; "" when none is live."""
    parts = []
    for per in native.per_object():
        figures = [
            f"{value:.1f} {what}"
            for value, what in ((per.threads, "threads"), (per.sockets, "sockets"))
            if value is not None
        ]
        parts.append(f"{' and '.join(figures)} per live {per.kind} ({per.live} live)")
    return "; ".join(parts)


def process_line(native: NativeCheck) -> str:
    """``process: 23 native threads, 9 open sockets; 2.9 threads and 1.1 sockets per live
    recognizer (8 live)`` ("" where neither count could be read)."""
    process = process_text(native)
    if not process:
        return ""
    per = per_object_text(native)
    return f"process: {process}{f'; {per}' if per else ''}"


def blocking_headline(blocking: ReportBlocking) -> str:
    """The blocking section's first line: what blocked, how long, the threshold."""
    parts = []
    if blocking.in_flight:
        parts.append(f"{plural(len(blocking.in_flight), 'release')} in flight")
    releases = sum(site.count for site in blocking.sites if site.what == "release")
    calls = sum(site.count for site in blocking.sites if site.what != "release")
    if releases or calls:
        counts = ((releases, "slow release"), (calls, "blocking call"))
        what = [plural(n, word) for n, word in counts if n]
        real = [site for site in blocking.sites if not site.other]
        sites = f" at {plural(len(real), 'site')}" if real else ""
        parts.append(
            f"{' and '.join(what)}{sites}, {duration_text(blocking.total)} in all, "
            f"{duration_text(blocking.worst)} worst"
        )
    if blocking.event_loop:
        parts.append(f"event loops blocked {duration_text(blocking.event_loop)}")
    return (
        f"blocking: {'; '.join(parts)} (recorded: {duration_text(blocking.threshold)} or "
        "longer)"
    )
