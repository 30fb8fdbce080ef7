"""The query functions of the public API: snapshot(), stats(), report()."""

from __future__ import annotations

import gc as _gc
from typing import IO, Optional

from ._patching import _prune_unobserved, sdk_version
from ._registry import Stats
from ._render import FORMATS, render
from ._report import Report, build_report
from ._snapshot import Snapshot
from ._tracker import TRACKER

__all__ = ["build", "report", "snapshot", "stats"]


def snapshot() -> Snapshot:
    """An immutable copy of the live handle records (and counters) right now."""
    tracker = TRACKER
    if not tracker.installed:
        _prune_unobserved(tracker)
    registry = tracker.registry
    return Snapshot.of(registry.live_records(), registry.stats())


def stats() -> Stats:
    """Created / released / live / peak per kind, and releases per cause."""
    return TRACKER.registry.stats()


def build(
    snap: Optional[Snapshot] = None,
    *,
    collect: bool = False,
    diagnose: bool = True,
    stale_after: Optional[float] = None,
) -> Report:
    """The report data for ``snap`` (default: a new snapshot).

    ``collect=True`` runs ``gc.collect()`` first, so only handles that even the cyclic
    collector cannot free are reported; the report notes that it ran one.
    ``diagnose=True`` (the default) explains each group: classification, the reference
    cycle, signals, access records, known SDK leak patterns and the native handle counts
    (see :func:`handletrace.diagnose`; it runs no collection). ``stale_after``: seconds
    after which a still-referenced handle is classified ``stale``.
    """
    if collect:
        _gc.collect()
    snap = snap if snap is not None else snapshot()
    diagnosis = None
    failed = ""
    if diagnose:
        from ._diagnosis import diagnose as run_diagnosis

        try:
            diagnosis = run_diagnosis(snap, stale_after=stale_after)
        except Exception as exc:  # a report is still worth having without its diagnosis
            TRACKER.registry.count_error("diagnose", exc)
            failed = f"the diagnosis failed ({type(exc).__name__}); groups are not explained"
    data = build_report(
        snap, installed=TRACKER.installed, sdk_version=sdk_version(), diagnosis=diagnosis
    )
    del snap, diagnosis
    notes = []
    if collect:
        notes.append("gc.collect() was run before this report")
    if failed:
        notes.append(failed)
    if notes:
        from dataclasses import replace

        data = replace(data, notes=(*data.notes, *notes))
    return data


def report(
    file: Optional[IO[str]] = None,
    format: str = "text",
    *,
    snap: Optional[Snapshot] = None,
    collect: bool = False,
    diagnose: bool = True,
    stale_after: Optional[float] = None,
) -> Report:
    """Write the live-handle report to ``file`` (default stderr) and return its data.

    ``format`` is ``"text"``, ``"json"`` (schema ``handletrace.report``, version 1) or
    ``"html"`` (a self-contained page, as ``handletrace report --format html`` writes).
    ``collect``, ``diagnose`` and ``stale_after`` are as for :func:`build`.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be 'text', 'json' or 'html'; got {format!r}")
    data = build(snap, collect=collect, diagnose=diagnose, stale_after=stale_after)
    render(data, file, format)
    return data
