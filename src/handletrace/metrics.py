"""Export handle counts as OpenTelemetry metrics, so leaks show on fleet dashboards.

``handletrace.metrics.enable()`` registers these instruments on a meter named ``handletrace``
(the global meter provider unless one is passed):

- ``handletrace.handles.live``: observable up-down counter by ``handletrace.handle.kind``
- ``handletrace.handles.created``: observable counter by ``handletrace.handle.kind``
- ``handletrace.handles.released``: observable counter by ``handletrace.release.cause``
- ``handletrace.leaks.found``: counter by ``handletrace.leak.pattern``: leaked SDK objects,
  each once per pattern (see ``record_diagnosis``)
- ``handletrace.native.handles``: observable up-down counter (no attributes)
- ``handletrace.instrumentation.errors``: observable counter (no attributes)
- ``handletrace.release.duration``: histogram (seconds) by ``handletrace.handle.kind``: every
  timed native release
- ``handletrace.releases.in_flight``: observable up-down counter by ``handletrace.handle.kind``:
  native releases started and not returned
- ``handletrace.event_loop.blocked``: observable counter (seconds) by
  ``handletrace.blocking.what`` (``release``, ``call``): how long recorded releases and SDK
  calls held event loops

The observable instruments read the registry when a metric reader collects: nothing runs per
handle, so handle creation costs the same with metrics on or off. The release histogram is
the one per-release cost: while metrics are on, ``TRACKER.release_listener`` records each
release's duration (docs/metrics.md gives the measured cost). Created and released are
cumulative since the registry was made (``Registry.totals()``): ``registry.clear()`` (only
``reset_defaults()`` calls it) does not lower them, so they stay monotonic as OpenTelemetry
counters must. ``handletrace.native.handles`` is the Speech SDK's own handle-table total
(every native handle, tracked or not), read only once the SDK has been imported.

Importing this module does not import OpenTelemetry; ``enable()`` does, and raises one
``ImportError`` naming ``pip install handletrace[otel]`` if it is missing.
"""

from __future__ import annotations

import collections
import re
import threading
import warnings
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
)

from ._analysis.blocking import site_key
from ._core.blocking import BlockingEvent, BlockingSite
from ._core.registry import ENTRY_KIND
from ._core.state import TRACKER
from ._sdk.native import native_handle_total
from ._version import __version__
from .errors import HandleTraceWarning

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

__all__ = [
    "ATTR_BLOCKING_WHAT",
    "ATTR_HANDLE_KIND",
    "ATTR_LEAK_PATTERN",
    "ATTR_RELEASE_CAUSE",
    "INSTALL_HINT",
    "METER_NAME",
    "METRIC_ERRORS",
    "METRIC_CREATED",
    "METRIC_IN_FLIGHT",
    "METRIC_LEAKS",
    "METRIC_LIVE",
    "METRIC_LOOP_BLOCKED",
    "METRIC_NATIVE",
    "METRIC_RELEASED",
    "METRIC_RELEASE_DURATION",
    "disable",
    "enable",
    "is_enabled",
    "record_diagnosis",
    "record_leak_findings",
]

#: The instrumentation scope (meter) name.
METER_NAME = "handletrace"
#: Live tracked handles per kind (observable up-down counter; a gauge in Prometheus).
METRIC_LIVE = "handletrace.handles.live"
#: Tracked handles created, per kind (observable counter, cumulative).
METRIC_CREATED = "handletrace.handles.created"
#: Tracked handles released, per cause (observable counter, cumulative).
METRIC_RELEASED = "handletrace.handles.released"
#: Leaked SDK objects found by diagnosis, each once per pattern (counter; see
#: ``record_diagnosis``).
METRIC_LEAKS = "handletrace.leaks.found"
#: Native handles in the Speech SDK's own handle table (observable up-down counter).
METRIC_NATIVE = "handletrace.native.handles"
#: Instrumentation failures handletrace caught and counted (observable counter).
METRIC_ERRORS = "handletrace.instrumentation.errors"
#: How long each native release took, per kind (histogram, seconds).
METRIC_RELEASE_DURATION = "handletrace.release.duration"
#: Native releases started and not returned, per kind (observable up-down counter).
METRIC_IN_FLIGHT = "handletrace.releases.in_flight"
#: Seconds event loops were held by recorded releases and SDK calls (observable counter).
METRIC_LOOP_BLOCKED = "handletrace.event_loop.blocked"

#: Handle kind, e.g. ``recognizer``, ``property_bag`` (from the SDK's release function).
ATTR_HANDLE_KIND = "handletrace.handle.kind"
#: Why a handle was released: one of ``handletrace.RELEASE_CAUSES``.
ATTR_RELEASE_CAUSE = "handletrace.release.cause"
#: The leak pattern a diagnosis matched.
ATTR_LEAK_PATTERN = "handletrace.leak.pattern"
#: What held an event loop: ``release`` (a native release) or ``call`` (a synchronous SDK
#: call).
ATTR_BLOCKING_WHAT = "handletrace.blocking.what"

#: Bucket boundaries of the release histogram (seconds), given to OpenTelemetry as advice:
#: a release takes tens of microseconds; one that blocks takes 1-10 s (the SDK's timeouts).
RELEASE_BUCKETS = (
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0
)  # fmt: skip
#: Releases timed during a cyclic collection wait here (at most this many) for the next
#: release outside one.
PENDING_RELEASES = 4096

#: The one line telling what to install when OpenTelemetry is missing.
INSTALL_HINT = "pip install handletrace[otel]"

# Pattern names become attribute values: keep them short identifiers so a bad caller cannot
# create unbounded series (anything else is counted as "other").
_PATTERN_NAME = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,63}\Z")
_OTHER_PATTERN = "other"


class _Binding:
    """The instruments registered on one meter provider (kept while that provider lives)."""

    def __init__(self, leaks_counter: Any, release_histogram: Any) -> None:
        self.leaks_counter = leaks_counter
        self.listener = _release_listener(release_histogram)


def _release_listener(histogram: Any) -> Callable[[str, float], None]:
    """What ``TRACKER.release_listener`` is while metrics are on: records a release's
    duration in ``histogram``. Never raises (it runs inside ``__del__``).

    A release during a cyclic collection is not recorded at once but at the next release
    outside one: a collection can start inside any allocation, also one that OpenTelemetry
    makes while it holds the histogram's (non-reentrant) lock on this thread, and recording
    then would wait for that lock forever."""
    record = histogram.record
    tracker = TRACKER
    get_ident = threading.get_ident
    attributes: Dict[str, Dict[str, str]] = {}
    pending: Deque[Tuple[str, float]] = collections.deque(maxlen=PENDING_RELEASES)

    def attributes_of(kind: str) -> Dict[str, str]:
        found = attributes.get(kind)
        if found is None:
            found = attributes[kind] = {ATTR_HANDLE_KIND: kind}
        return found

    def listener(kind: str, seconds: float) -> None:
        try:
            if tracker.gc_thread == get_ident():
                pending.append((kind, seconds))
                return
            while pending:
                earlier, duration = pending.popleft()
                record(duration, attributes_of(earlier))
            record(seconds, attributes_of(kind))
        except Exception as exc:
            try:
                tracker.registry.count_error("metrics release listener", exc)
            except Exception:
                pass

    return listener


class _LoopBlocked:
    """Seconds event loops were held, cumulative, per what held them (``release``,
    ``call``), worked out from the blocking record's sites at each collection.

    The record keeps every event in its site's count and total, and the most recent events
    as they were: what a site gained since the last look is added, all of it when all its
    new events ran on a loop (calls always do), none when none did; for a site whose new
    events were mixed, the new on-loop events themselves while they are still among the
    recent ones, else the on-loop share of what it gained. Never goes down."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: site key -> (count, total, on-loop count, last event's end) at the last look
        self.seen: Dict[Tuple[object, ...], Tuple[int, float, int, float]] = {}
        self.totals: Dict[str, float] = {"release": 0.0, "call": 0.0}

    def update(
        self, sites: Sequence[BlockingSite], events: Sequence[BlockingEvent]
    ) -> Dict[str, float]:
        with self.lock:
            seen: Dict[Tuple[object, ...], Tuple[int, float, int, float]] = {}
            for site in sites:
                key = site_key(site)
                old = self.seen.get(key)
                if old is None or old[0] > site.count:  # new, or the record was cleared
                    old = (0, 0.0, 0, 0.0)
                seen[key] = (site.count, site.total, site.on_event_loop, site.last.ended_at)
                count, total, on_loop = (
                    site.count - old[0],
                    site.total - old[1],
                    site.on_event_loop - old[2],
                )
                if count <= 0 or on_loop <= 0:
                    continue
                if on_loop < count:
                    mine = site.last.key
                    exact = [
                        e.duration
                        for e in events
                        if e.thread.event_loop and e.ended_at > old[3] and e.key == mine
                    ]
                    total = sum(exact) if len(exact) == on_loop else total * on_loop / count
                what = site.what if site.what in self.totals else "release"
                self.totals[what] += max(0.0, total)
            # Sites no longer listed were cleared (tests): if they come back, they are new.
            self.seen = seen
            return dict(self.totals)


class _MetricsState:
    """Which meter provider handletrace reports to; ``_STATE`` is the only instance."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: Optional[_Binding] = None
        # A provider keeps the instruments (and so their callbacks) registered on it for its
        # lifetime, and OpenTelemetry ignores the callbacks of a second registration under the
        # same name: re-enabling on the same provider reuses its binding.
        self.bindings: weakref.WeakKeyDictionary[Any, _Binding] = weakref.WeakKeyDictionary()
        self.pinned: List[Any] = []  # (provider, binding) for providers without weak references
        self.loop_blocked = _LoopBlocked()
        # pattern -> the live handles (seqs) of the leaked objects already counted for it by
        # record_diagnosis().
        self.counted_findings: Dict[str, Set[int]] = {}

    def binding_for(self, provider: Any) -> Optional[_Binding]:
        try:
            return self.bindings.get(provider)
        except TypeError:
            return next((b for p, b in self.pinned if p is provider), None)

    def remember(self, provider: Any, binding: _Binding) -> None:
        try:
            self.bindings[provider] = binding
        except TypeError:
            self.pinned.append((provider, binding))


_STATE = _MetricsState()


def _otel_metrics() -> Any:
    try:
        from opentelemetry import metrics as otel_metrics
    except ImportError as exc:
        raise ImportError(
            "handletrace.metrics needs OpenTelemetry, which is not installed; "
            f"install it with: {INSTALL_HINT}"
        ) from exc
    return otel_metrics


def enable(meter_provider: Optional[MeterProvider] = None) -> bool:
    """Report handle metrics to ``meter_provider`` (default: the global one); ``True`` if this
    call turned them on.

    With no global provider set yet, OpenTelemetry's proxy provider is used: the instruments
    start reporting once the application (or ``opentelemetry-instrument``) sets one. A second
    call while enabled is a no-op; if it names another provider, it warns and keeps the first
    (call ``disable()`` first to switch).
    """
    otel_metrics = _otel_metrics()
    provider = otel_metrics.get_meter_provider() if meter_provider is None else meter_provider
    state = _STATE
    with state.lock:
        current = state.active
        binding = state.binding_for(provider)
        if current is not None:
            if meter_provider is not None and binding is not current:
                warnings.warn(
                    "handletrace.metrics.enable() called again with another meter provider; "
                    "metrics stay on the first one (call disable() first to switch)",
                    HandleTraceWarning,
                    stacklevel=2,
                )
            return False
        if binding is None:
            binding = _register(provider, otel_metrics)
            state.remember(provider, binding)
        state.active = binding
        TRACKER.release_listener = binding.listener
    return True


def disable() -> bool:
    """Stop reporting; ``True`` if metrics were enabled.

    OpenTelemetry cannot remove instruments from a provider: they stay registered and observe
    nothing until ``enable()`` is called again.
    """
    state = _STATE
    with state.lock:
        current = state.active
        state.active = None
        # Only if it is still ours (as uninstall() restores only what is still its own).
        if current is not None and TRACKER.release_listener is current.listener:
            TRACKER.release_listener = None
    return current is not None


def is_enabled() -> bool:
    """Whether handle metrics are being reported."""
    return _STATE.active is not None


def record_leak_findings(pattern_counts: Mapping[str, int]) -> None:
    """Add ``{pattern: count}`` to ``handletrace.leaks.found`` as given (no deduplication:
    ``record_diagnosis()`` counts each leaked object once). Does nothing while metrics are off.

    Pattern names that are not short lower-case identifiers are counted as ``other``
    (attribute values must stay few). Never raises.
    """
    binding = _STATE.active
    if binding is None:
        return
    try:
        for pattern, count in pattern_counts.items():
            if not isinstance(count, int) or count <= 0:
                continue
            name = pattern if isinstance(pattern, str) and _PATTERN_NAME.match(pattern) else None
            binding.leaks_counter.add(count, {ATTR_LEAK_PATTERN: name or _OTHER_PATTERN})
    except Exception as exc:
        TRACKER.registry.count_error("metrics.record_leak_findings", exc)


def record_diagnosis(diagnosis: Any) -> None:
    """Count the leaked SDK objects a diagnosis matched to a known leak pattern (``leaks.found``).

    The unit is the finding's subject, as the report's finding counts have it: one leaked
    SDK object with all its handles (a transcriber and its property bag count 1), or one
    dropped ``ResultFuture``. Each counts once per pattern for the life of the process,
    however often it is diagnosed again: an object whose live handles (told apart by their
    records' ``seq``, never reused) were counted for a pattern before is not counted again.
    ``diagnosis`` is what ``handletrace.diagnose()`` returns (its ``leaks()``). Does nothing
    while metrics are off; never raises.
    """
    state = _STATE
    if state.active is None:
        return
    registry = TRACKER.registry
    try:
        live = registry.live_seqs()
        leaks = diagnosis.leaks()
        counts: Dict[str, int] = {}
        with state.lock:
            # Forget released handles: an object that is gone is never seen again.
            counted = {p: seqs & live for p, seqs in state.counted_findings.items()}
            for leak in leaks:
                seqs = [seq for seq in leak.seqs if seq in live]
                if not seqs:
                    continue
                known = counted.setdefault(leak.pattern, set())
                if known.isdisjoint(seqs):
                    counts[leak.pattern] = counts.get(leak.pattern, 0) + 1
                known.update(seqs)
            state.counted_findings = {p: seqs for p, seqs in counted.items() if seqs}
    except Exception as exc:
        registry.count_error("metrics.record_diagnosis", exc)
        return
    record_leak_findings(counts)


# -- instruments -------------------------------------------------------------------------------


def _register(provider: Any, otel_metrics: Any) -> _Binding:
    Observation = otel_metrics.Observation
    meter = provider.get_meter(METER_NAME, __version__)
    binding = _Binding(
        meter.create_counter(
            METRIC_LEAKS,
            unit="{object}",
            description=(
                "Leaked Speech SDK objects (a recognizer with its property bag counts 1) found "
                "by handletrace diagnosis, each once per known pattern"
            ),
        ),
        _release_histogram(meter),
    )
    ref = weakref.ref(binding)

    def observing(read: Callable[[], Iterable[Any]]) -> Callable[[Any], Iterator[Any]]:
        # Callbacks run on the reader's thread: never raise into OpenTelemetry, and observe
        # nothing unless this provider is the active one.
        def callback(options: Any) -> Iterator[Any]:
            if ref() is None or _STATE.active is not ref():
                return
            try:
                observations: List[Any] = list(read())
            except Exception as exc:
                TRACKER.registry.count_error("metrics callback", exc)
                return
            yield from observations

        return callback

    def live() -> Iterable[Any]:
        for kind, count in TRACKER.registry.totals().live.items():
            yield Observation(count, {ATTR_HANDLE_KIND: kind})

    def created() -> Iterable[Any]:
        for kind, count in TRACKER.registry.totals().created.items():
            yield Observation(count, {ATTR_HANDLE_KIND: kind})

    def released() -> Iterable[Any]:
        for cause, count in TRACKER.registry.totals().released_by_cause.items():
            yield Observation(count, {ATTR_RELEASE_CAUSE: cause})

    def errors() -> Iterable[Any]:
        yield Observation(TRACKER.registry.totals().instrumentation_errors)

    def native() -> Iterable[Any]:
        count = native_handle_total()
        if count is not None:
            yield Observation(count)

    def in_flight() -> Iterable[Any]:
        registry = TRACKER.registry
        counts = dict.fromkeys(registry.totals().live, 0)
        live = registry.live_table
        for seq in registry.releasing():
            entry = live.get(seq)
            if entry is not None:
                kind = entry[ENTRY_KIND]
                counts[kind] = counts.get(kind, 0) + 1
        for kind, count in counts.items():
            yield Observation(count, {ATTR_HANDLE_KIND: kind})

    def loop_blocked() -> Iterable[Any]:
        log = TRACKER.blocking
        totals = _STATE.loop_blocked.update(log.sites(), log.events())
        for what, seconds in totals.items():
            yield Observation(seconds, {ATTR_BLOCKING_WHAT: what})

    meter.create_observable_up_down_counter(
        METRIC_LIVE,
        [observing(live)],
        unit="{handle}",
        description="Live native Speech SDK handles tracked by handletrace",
    )
    meter.create_observable_counter(
        METRIC_CREATED,
        [observing(created)],
        unit="{handle}",
        description="Native Speech SDK handles created while tracked",
    )
    meter.create_observable_counter(
        METRIC_RELEASED,
        [observing(released)],
        unit="{handle}",
        description="Tracked native Speech SDK handles released",
    )
    meter.create_observable_up_down_counter(
        METRIC_NATIVE,
        [observing(native)],
        unit="{handle}",
        description="Handles in the Speech SDK's native handle table (tracked or not)",
    )
    meter.create_observable_counter(
        METRIC_ERRORS,
        [observing(errors)],
        unit="{error}",
        description="Instrumentation failures handletrace caught and counted",
    )
    meter.create_observable_up_down_counter(
        METRIC_IN_FLIGHT,
        [observing(in_flight)],
        unit="{handle}",
        description="Native Speech SDK releases started and not returned (the handle is live)",
    )
    meter.create_observable_counter(
        METRIC_LOOP_BLOCKED,
        [observing(loop_blocked)],
        unit="s",
        description=(
            "Time event loops were held by native Speech SDK releases and synchronous SDK "
            "calls of at least handletrace's slow_release threshold"
        ),
    )
    return binding


def _release_histogram(meter: Any) -> Any:
    name, unit = METRIC_RELEASE_DURATION, "s"
    description = "How long each native Speech SDK release took"
    try:
        return meter.create_histogram(
            name, unit, description, explicit_bucket_boundaries_advisory=RELEASE_BUCKETS
        )
    except TypeError:  # opentelemetry-api < 1.23 takes no advice: its default buckets
        return meter.create_histogram(name, unit, description)


# Subscribed here, not imported from below: diagnoses feed leaks.found, and a reset of the
# state object (tests) switches metrics off.
TRACKER.on_diagnosis.append(record_diagnosis)
TRACKER.on_reset.append(disable)
