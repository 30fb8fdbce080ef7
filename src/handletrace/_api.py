"""The query functions of the public API: snapshot(), stats(), diagnose(), build_report(),
report()."""

from __future__ import annotations

import gc as _gc
import warnings
from dataclasses import replace
from typing import IO, Optional

from ._analysis.diagnosis import Diagnosis
from ._analysis.diagnosis import diagnose as _diagnose
from ._core.blocking import Blocking
from ._core.registry import Stats
from ._core.snapshot import Snapshot
from ._core.state import TRACKER
from ._instrument.install import prune_unobserved
from ._report.model import Report, make_report
from ._report.render import FORMATS, render
from ._sdk.blocking import in_flight
from ._sdk.modules import sdk_version
from ._sdk.records import live_records

__all__ = ["blocking", "build_report", "diagnose", "report", "snapshot", "stats"]


def snapshot() -> Snapshot:
    """An immutable copy of the live handle records (and counters) right now."""
    tracker = TRACKER
    if not tracker.installed:
        prune_unobserved(tracker)
    registry = tracker.registry
    # Releases in flight first: a record listed after its release began is still live.
    releasing = in_flight(tracker)
    return Snapshot.of(live_records(registry), registry.stats(), releasing)


_take_snapshot = snapshot  # the name ``snapshot`` is also a parameter below


def blocking() -> Blocking:
    """What blocked: native releases in flight now (each with its thread and the line it
    is being made from), and the releases and SDK calls on an event-loop thread that took at
    least ``slow_release`` seconds (``install(slow_release=)``, default 0.1), by site."""
    tracker = TRACKER
    in_flight_now = sorted(in_flight(tracker).values(), key=lambda r: -r.elapsed)
    return Blocking(
        in_flight=tuple(in_flight_now),
        sites=tracker.blocking.sites(),
        events=tracker.blocking.events(),
        threshold=tracker.config.slow_release,
    )


def _recorded_blocking(snapshot: Snapshot) -> Blocking:
    """What blocked, for a report of ``snapshot``: its releases in flight (one moment), and
    the releases and calls recorded so far."""
    tracker = TRACKER
    log = tracker.blocking
    return Blocking(
        in_flight=tuple(sorted(snapshot.releasing.values(), key=lambda r: -r.elapsed)),
        sites=log.sites(),
        events=log.events(),
        threshold=tracker.config.slow_release,
    )


def stats() -> Stats:
    """Created / released / live / peak per kind, and releases per cause."""
    return TRACKER.registry.stats()


def diagnose(
    snapshot: Optional[Snapshot] = None,
    *,
    stale_after: Optional[float] = None,
    native: bool = True,
    paths: bool = True,
) -> Diagnosis:
    """Classify every record of ``snapshot`` (default: a new one) and explain it.

    ``stale_after``: seconds after which a still-referenced handle is ``stale``;
    ``native``: add the SDK's native handle counts; ``paths``: find the reference path from
    a root for reachable handles (one more walk over the heap).
    """
    return _diagnose(
        snapshot if snapshot is not None else _take_snapshot(),
        stale_after=stale_after,
        native=native,
        paths=paths,
    )


def _snapshot_argument(
    snapshot: Optional[Snapshot], snap: Optional[Snapshot]
) -> Optional[Snapshot]:
    if snap is not None:
        warnings.warn(
            "the snap= argument is now called snapshot= (as in diagnose())",
            DeprecationWarning,
            stacklevel=3,
        )
        if snapshot is None:
            return snap
    return snapshot


def build_report(
    snapshot: Optional[Snapshot] = None,
    *,
    collect: bool = False,
    diagnose: bool = True,
    stale_after: Optional[float] = None,
    snap: Optional[Snapshot] = None,
) -> Report:
    """The report data for ``snapshot`` (default: a new snapshot), without writing it.

    ``collect=True`` runs ``gc.collect()`` first, so only handles that even the cyclic
    collector cannot free are reported; the report notes that it ran one.
    ``diagnose=True`` (the default) explains each group: classification, the reference
    cycle, signals, access records, known SDK leak patterns and the native handle counts
    (see :func:`handletrace.diagnose`; it runs no collection). ``stale_after``: seconds
    after which a still-referenced handle is classified ``stale``.
    """
    snapshot = _snapshot_argument(snapshot, snap)
    if collect:
        _gc.collect()
    snapshot = snapshot if snapshot is not None else _take_snapshot()
    # Read with the snapshot, before the diagnosis (which takes a while): one moment.
    blocking = _recorded_blocking(snapshot)
    diagnosis = None
    failed = ""
    if diagnose:
        try:
            diagnosis = _diagnose(snapshot, stale_after=stale_after)
        except Exception as exc:  # a report is still worth having without its diagnosis
            TRACKER.registry.count_error("diagnose", exc)
            failed = f"the diagnosis failed ({type(exc).__name__}); groups are not explained"
    data = make_report(
        snapshot,
        installed=TRACKER.installed,
        sdk_version=sdk_version(),
        diagnosis=diagnosis,
        blocking=blocking,
    )
    del snapshot, diagnosis
    notes = []
    if collect:
        notes.append("gc.collect() was run before this report")
    if failed:
        notes.append(failed)
    if notes:
        data = replace(data, notes=(*data.notes, *notes))
    return data


def report(
    file: Optional[IO[str]] = None,
    format: str = "text",
    *,
    snapshot: Optional[Snapshot] = None,
    collect: bool = False,
    diagnose: bool = True,
    stale_after: Optional[float] = None,
    snap: Optional[Snapshot] = None,
) -> Report:
    """Write the live-handle report to ``file`` (default stderr) and return its data.

    ``format`` is ``"text"``, ``"json"`` (schema ``handletrace.report``, version 1) or
    ``"html"`` (a self-contained page, as ``handletrace report --format html`` writes).
    ``snapshot``, ``collect``, ``diagnose`` and ``stale_after`` are as for
    :func:`build_report`.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be 'text', 'json' or 'html'; got {format!r}")
    data = build_report(
        _snapshot_argument(snapshot, snap),
        collect=collect,
        diagnose=diagnose,
        stale_after=stale_after,
    )
    render(data, file, format)
    return data
