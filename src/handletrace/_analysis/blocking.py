"""Known ways SDK work blocks a thread it should not, found in the blocking record: each
with its name, what happened (thread, line, how long, how often) and the fix.

``blocking-release-on-sdk-thread``
    the last reference to an SDK object dropped (``del``, or the cyclic collector) on one of
    the SDK's callback threads: its native release waits for that very thread.
``blocking-release-on-event-loop``
    a native teardown (``del``, ``gc``, a release function) ran on an event loop's thread.
``blocking-dispose-on-event-loop``
    ``handletrace.dispose()`` called on an event loop (``adispose()`` does it in a worker).
``blocking-sync-call-on-event-loop``
    a synchronous SDK method (``stop_continuous_recognition()``, ``recognize_once()``,
    ``speak_text()``...) called on an event loop.
``blocking-future-get-on-event-loop``
    ``ResultFuture.get()`` called on an event loop.

They read the recorded sites (and the releases in flight) only: plain data, no SDK object.
Also here: :func:`sites_since`, what a blocking record gained since an earlier look (the
pytest plugin attributes it to the test that ran in between).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .._core.blocking import BlockingEvent, BlockingSite, InFlight
from .._core.registry import HandleRecord
from .._core.stacks import Frame
from .._sdk.modules import SDK_MODULE
from .patterns import Finding

__all__ = [
    "BLOCKING_PATTERNS",
    "CountedFinding",
    "blocking_findings",
    "duration_text",
    "sites_since",
    "site_key",
]

RELEASE_ON_SDK_THREAD = "blocking-release-on-sdk-thread"
RELEASE_ON_EVENT_LOOP = "blocking-release-on-event-loop"
DISPOSE_ON_EVENT_LOOP = "blocking-dispose-on-event-loop"
SYNC_CALL_ON_EVENT_LOOP = "blocking-sync-call-on-event-loop"
FUTURE_GET_ON_EVENT_LOOP = "blocking-future-get-on-event-loop"

#: Pattern name -> its title, in the order findings are reported.
BLOCKING_PATTERNS: Dict[str, str] = {
    RELEASE_ON_SDK_THREAD: "last reference dropped on the SDK's callback thread",
    RELEASE_ON_EVENT_LOOP: "a native teardown blocked the event loop",
    DISPOSE_ON_EVENT_LOOP: "handletrace.dispose() blocked the event loop",
    SYNC_CALL_ON_EVENT_LOOP: "a synchronous SDK call blocked the event loop",
    FUTURE_GET_ON_EVENT_LOOP: "ResultFuture.get() blocked the event loop",
}

#: Release causes that mean "the last reference was dropped" (not dispose(), not a direct
#: release function call).
_DROPPED = ("del", "gc")

#: A finding and how many releases or calls it stands for.
CountedFinding = Tuple[Finding, int]


def duration_text(seconds: float) -> str:
    """``850 ms``, ``1.02 s``, ``2.5 min``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def _variable(owner: str) -> str:
    """A conventional variable name for an object of the SDK class ``owner`` (the one the
    application holds), for fixes."""
    owner = _held(owner)
    for part, name in (
        ("Transcriber", "transcriber"),
        ("Synthesizer", "synthesizer"),
        ("Connector", "connector"),
        ("Connection", "connection"),
        ("Recognizer", "recognizer"),
        ("ResultFuture", "future"),
    ):
        if part in owner:
            return name
    return "obj"


def _a(owner: str) -> str:
    """``a SpeechRecognizer``; ``a SpeechRecognizer's PropertyCollection`` for an owner
    ``PropertyCollection of SpeechRecognizer`` (the object the application holds first)."""
    child, _, parent = owner.partition(" of ")
    if parent:
        return f"{_a(parent)}'s {child}"
    return f"an {owner}" if owner[:1] in "AEIOU" else f"a {owner}"


def _held(owner: str) -> str:
    """The SDK class the application holds: ``SpeechRecognizer`` for
    ``PropertyCollection of SpeechRecognizer``."""
    return owner.rpartition(" of ")[2]


def _where(frame: Optional[Frame]) -> Tuple[str, int, str]:
    """(filename, lineno, "file:line") of a site (``""``, 0, "an unknown line")."""
    if frame is None:
        return "", 0, "an unknown line"
    return frame.filename, frame.lineno, f"{frame.filename}:{frame.lineno}"


def _times(count: int, total: float) -> str:
    return "once" if count == 1 else f"{count} times, {duration_text(total)} in all"


def _has_async_variant(owner: str, method: str) -> bool:
    """Whether the imported SDK's class ``owner`` has ``method + "_async"`` (the SDK's
    synchronous methods are ``x_async().get()``; ``Connection.open()`` has no variant)."""
    for name, module in list(sys.modules.items()):
        if module is None or not (name == SDK_MODULE or name.startswith(SDK_MODULE + ".")):
            continue
        cls = getattr(module, owner, None)
        if isinstance(cls, type):
            return callable(getattr(cls, f"{method}_async", None))
    return False


def _dispose_fix(var: str) -> str:
    return (
        f"await handletrace.adispose({var}): the same teardown in a worker thread, while the "
        "event loop keeps running"
    )


def _teardown_fix(var: str) -> str:
    return (
        f"await handletrace.adispose({var}) before dropping it, or drop the last reference in "
        "a worker (loop.run_in_executor(None, ...))"
    )


def _release_on_sdk_thread(
    owner: str, thread: str, where: Tuple[str, int, str], how: str
) -> Finding:
    var = _variable(owner)
    # No application frame: the SDK's callback code held the last reference, after a handler
    # returned (the handler had dropped the others).
    at = f"at {where[2]}" if where[0] else "in the SDK's own callback code"
    return Finding(
        RELEASE_ON_SDK_THREAD,
        BLOCKING_PATTERNS[RELEASE_ON_SDK_THREAD],
        f"the last reference to {_a(owner)} was dropped on the SDK's callback thread {thread} "
        f"{at}: its release waits for that thread (~10 s; {how})",
        where[0],
        where[1],
        f"drop it elsewhere (hand it to another thread or to the event loop), or call "
        f"handletrace.dispose({var}) there: on an SDK callback thread it disconnects at once "
        "and defers the release to a thread of its own",
    )


def _site_finding(site: BlockingSite) -> Optional[CountedFinding]:
    """The finding a recorded site matches, with how many of its events match."""
    if site.other:
        return None
    last = site.last
    where = _where(site.site)
    var = _variable(site.owner)
    worst, times = duration_text(site.worst), _times(site.count, site.total)
    if site.what == "release":
        if site.on_sdk_thread and last.cause in _DROPPED:
            how = f"{worst} worst, {_times(site.on_sdk_thread, site.total)}"
            return (
                _release_on_sdk_thread(site.owner, last.thread.name, where, how),
                site.on_sdk_thread,
            )
        if not site.on_event_loop:
            return None
        if last.cause == "forced":
            finding = Finding(
                DISPOSE_ON_EVENT_LOOP,
                BLOCKING_PATTERNS[DISPOSE_ON_EVENT_LOOP],
                f"handletrace.dispose() of {_a(site.owner)} at {where[2]} blocked the event loop "
                f"{worst} ({times})",
                where[0],
                where[1],
                _dispose_fix(var),
            )
        else:
            finding = Finding(
                RELEASE_ON_EVENT_LOOP,
                BLOCKING_PATTERNS[RELEASE_ON_EVENT_LOOP],
                f"the event loop was blocked {worst} by the teardown of {_a(site.owner)} at "
                f"{where[2]} ({times})",
                where[0],
                where[1],
                _teardown_fix(var),
            )
        return finding, site.on_event_loop
    if not site.on_event_loop:
        return None
    name = site.name
    if name.endswith(".get()") or name == "ResultFuture.get()":
        made_by = name[: -len(".get()")] if name.endswith("_async().get()") else ""
        future = f"{var}.{made_by.split('.', 1)[1]}" if "." in made_by else "future"
        return (
            Finding(
                FUTURE_GET_ON_EVENT_LOOP,
                BLOCKING_PATTERNS[FUTURE_GET_ON_EVENT_LOOP],
                f"{name} on the event loop at {where[2]} blocked it {worst} ({times})",
                where[0],
                where[1],
                f"wait for it in a worker: await asyncio.to_thread({future}.get) (or "
                "loop.run_in_executor(None, ...))",
            ),
            site.on_event_loop,
        )
    method = name.rsplit(".", 1)[-1].rstrip("()") if "." in name else name.rstrip("()")
    if _has_async_variant(site.owner, method):
        fix = (
            f"use the _async variant and wait for it in a worker: await asyncio.to_thread("
            f"{var}.{method}_async().get)"
        )
    else:
        fix = f"call it in a worker: await asyncio.to_thread({var}.{method}, ...)"
    return (
        Finding(
            SYNC_CALL_ON_EVENT_LOOP,
            BLOCKING_PATTERNS[SYNC_CALL_ON_EVENT_LOOP],
            f"synchronous {name} on the event loop at {where[2]} blocked it {worst} ({times})",
            where[0],
            where[1],
            fix,
        ),
        site.on_event_loop,
    )


def _in_flight_finding(flight: InFlight, record: HandleRecord) -> Optional[CountedFinding]:
    """A release in flight on an SDK callback thread after its last reference was dropped
    there (it is waiting for that thread now), or on an event loop (blocking it now)."""
    owner = record.owner_label or record.kind
    where = _where(flight.site.origin)
    so_far = duration_text(flight.elapsed)
    if flight.thread.sdk_thread and flight.cause in _DROPPED:
        how = f"releasing for {so_far} so far"
        return _release_on_sdk_thread(owner, flight.thread.name, where, how), 1
    if not flight.thread.event_loop:
        return None
    var = _variable(owner)
    if flight.cause == "forced":
        pattern = DISPOSE_ON_EVENT_LOOP
        message = (
            f"handletrace.dispose() of {_a(owner)} at {where[2]} has been blocking the event "
            f"loop for {so_far} (still in flight)"
        )
        fix = _dispose_fix(var)
    else:
        pattern = RELEASE_ON_EVENT_LOOP
        message = (
            f"the event loop has been blocked {so_far} so far by the teardown of {_a(owner)} "
            f"at {where[2]} (still in flight)"
        )
        fix = _teardown_fix(var)
    return Finding(pattern, BLOCKING_PATTERNS[pattern], message, where[0], where[1], fix), 1


def blocking_findings(
    sites: Iterable[BlockingSite],
    in_flight: Iterable[Tuple[InFlight, HandleRecord]] = (),
) -> Tuple[CountedFinding, ...]:
    """The known patterns the recorded ``sites`` and the releases ``in_flight`` (each with
    its handle's record) match, ordered as :data:`BLOCKING_PATTERNS`, the longest first."""
    found: List[Tuple[float, CountedFinding]] = []
    for flight, record in in_flight:
        counted = _in_flight_finding(flight, record)
        if counted is not None:
            found.append((flight.elapsed, counted))
    for site in sites:
        counted = _site_finding(site)
        if counted is not None:
            found.append((site.total, counted))
    order = {name: index for index, name in enumerate(BLOCKING_PATTERNS)}
    found.sort(key=lambda item: (order[item[1][0].pattern], -item[0]))
    # One finding per pattern and line: dropping an object releases each of its handles
    # (a recognizer, its property bag) from that line; the longest tells its teardown.
    kept: Dict[Tuple[str, str, int], CountedFinding] = {}
    for _, (item, count) in found:
        key = (
            (item.pattern, item.filename, item.lineno)
            if item.filename
            else (item.pattern, item.message, 0)
        )
        first = kept.get(key)
        kept[key] = (item, count) if first is None else (first[0], max(first[1], count))
    return tuple(kept.values())


# -- what a record gained ---------------------------------------------------------------------


def site_key(site: BlockingSite) -> Tuple[object, ...]:
    """What makes two recorded sites the same (as ``BlockingEvent.key`` for events)."""
    return (site.what, site.name, site.owner, site.site, site.created, site.other)


def sites_since(
    before: Sequence[BlockingSite],
    after: Sequence[BlockingSite],
    events: Sequence[BlockingEvent] = (),
) -> Tuple[BlockingSite, ...]:
    """The events ``after`` has that ``before`` had not, by site (``before`` and ``after``:
    two looks at one record, the longest total first).

    Counts, totals and on-loop / on-SDK-thread counts are exact. A site's worst is exact
    when it grew; otherwise it is the longest of its new events still among the recent
    ``events`` (at least its last one's).
    """
    earlier = {site_key(site): site for site in before}
    grown: List[BlockingSite] = []
    for site in after:
        old = earlier.get(site_key(site))
        if old is None:
            grown.append(site)
            continue
        count = site.count - old.count
        if count <= 0:
            continue  # nothing new (or the record was cleared and refilled: not comparable)
        worst = site.worst
        if worst <= old.worst:
            since = old.last.ended_at
            recent = [
                event.duration
                for event in events
                if event.ended_at > since and event.key == site.last.key
            ]
            worst = max([site.last.duration, *recent])
        grown.append(
            replace(
                site,
                count=count,
                total=max(0.0, site.total - old.total),
                worst=worst,
                on_event_loop=max(0, site.on_event_loop - old.on_event_loop),
                on_sdk_thread=max(0, site.on_sdk_thread - old.on_sdk_thread),
            )
        )
    grown.sort(key=lambda site: (site.other, -site.total, -site.worst))
    return tuple(grown)
