"""handletrace.metrics: OpenTelemetry instruments that match the registry exactly."""

from __future__ import annotations

import asyncio
import gc
import io
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import handletrace
from handletrace import metrics
from handletrace._core.blocking import BlockingEvent, BlockingLog
from handletrace._core.stacks import capture
from handletrace._core.state import TRACKER
from handletrace._core.threads import ThreadInfo
from handletrace._env import EnvSettings, activate, settings_from_env
from handletrace._sdk.records import live_records
from handletrace.testing import SpeechService
from tests import blocking_scenarios, sdk_objects
from tests.blocking_scenarios import running_recognizer

held_service = blocking_scenarios.held_service

REPO = Path(__file__).resolve().parents[1]

Points = Dict[str, Dict[Optional[str], int]]


@pytest.fixture(autouse=True)
def _metrics_off() -> Iterator[None]:
    """Every test starts and ends with metrics disabled."""
    metrics.disable()
    yield
    metrics.disable()


def collect(memory: InMemoryMetricReader) -> Points:
    """{metric name: {its one attribute value (None if it has none): value}} of handletrace's
    meter (some SDK releases also report metrics about themselves, under their own scope); a
    histogram's value is its count."""
    points: Points = {}
    data = memory.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            if scope.scope.name != metrics.METER_NAME:
                continue
            for metric in scope.metrics:
                values = points.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    attributes = list(point.attributes.values())
                    assert len(attributes) <= 1
                    value = getattr(point, "value", None)
                    if value is None:
                        value = point.count  # a histogram's point
                    values[str(attributes[0]) if attributes else None] = value
    return points


class Exported:
    """A fresh meter provider with an in-memory reader, metrics enabled on it, and what it
    read at that moment (the counters are cumulative over the whole test session; the
    registry's ``stats()`` starts from zero in every test)."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        metrics.enable(self.provider)
        self.start = collect(self.reader)

    def collect(self) -> Points:
        return collect(self.reader)

    def counted(self) -> Points:
        """Counters: their increase since enable(); gauges: their value now. Zeros dropped."""
        points = self.collect()
        for name in (metrics.METRIC_CREATED, metrics.METRIC_RELEASED):
            start = self.start.get(name, {})
            points[name] = {k: v - start.get(k, 0) for k, v in points.get(name, {}).items()}
        return {name: {k: v for k, v in values.items() if v} for name, values in points.items()}


@pytest.fixture
def exported() -> Exported:
    """Metrics enabled on a fresh provider read by an InMemoryMetricReader."""
    return Exported()


def registry_view() -> Points:
    """The registry's own counters since the test began, shaped like ``Exported.counted()``."""
    stats = TRACKER.registry.stats()
    view: Points = {
        metrics.METRIC_CREATED: {k: s.created for k, s in stats.kinds.items()},
        metrics.METRIC_LIVE: {k: s.live for k, s in stats.kinds.items()},
        metrics.METRIC_RELEASED: dict(stats.released_by_cause),
    }
    return {name: {k: v for k, v in values.items() if v} for name, values in view.items()}


def assert_matches_registry(exported: Exported) -> Points:
    """The exported created / released / live equal the registry's, exactly; returns them."""
    counted = exported.counted()
    for name, expected in registry_view().items():
        assert counted.get(name, {}) == expected, name
    return counted


def run_python(code: str, env: Dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HANDLETRACE", "OTEL"))}
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (env.pop("PYTHONPATH", ""), str(REPO)) if p
    )
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=120,
    )


# -- what is exported ---------------------------------------------------------------------------


def test_created_and_live_match_the_registry_per_kind(installed: None, exported: Exported) -> None:
    """Creating SDK objects: created and live per kind equal the registry's counters."""
    keep = [sdk_objects.recognizer(), sdk_objects.synthesizer()]
    counted = assert_matches_registry(exported)
    assert counted[metrics.METRIC_LIVE]["recognizer"] == 1
    assert counted[metrics.METRIC_LIVE]["synthesizer"] == 1
    del keep


def test_release_by_reference_counting_is_counted_as_del(
    installed: None, exported: Exported
) -> None:
    """Dropping the last reference: released{cause=del} and live follow the registry."""
    recognizer = sdk_objects.recognizer()
    created = TRACKER.registry.stats().created
    del recognizer
    counted = assert_matches_registry(exported)
    assert counted[metrics.METRIC_RELEASED] == {"del": created}
    assert counted[metrics.METRIC_LIVE] == {}


def test_release_by_the_cyclic_collector_is_counted_as_gc(
    installed: None, no_gc: None, exported: Exported
) -> None:
    """The seed's callback cycle: live until gc.collect(), then released{cause=gc}."""
    sdk_objects.make_leaky_transcriber([])
    before = assert_matches_registry(exported)
    assert before[metrics.METRIC_LIVE] == {"recognizer": 1, "property_bag": 1}
    gc.collect()
    after = assert_matches_registry(exported)
    assert after[metrics.METRIC_LIVE] == {}
    assert after[metrics.METRIC_RELEASED]["gc"] == 2


def test_dispose_is_counted_as_forced(installed: None, no_gc: None, exported: Exported) -> None:
    """handletrace.dispose() on a leaked transcriber: released{cause=forced} matches."""
    segments: List[Any] = []
    sdk_objects.make_leaky_transcriber(segments)
    owner = next(r.owner_ref() for r in live_records(TRACKER.registry) if r.kind == "recognizer")
    handletrace.dispose(owner)
    counted = assert_matches_registry(exported)
    assert counted[metrics.METRIC_RELEASED]["forced"] == 2  # the recognizer, its property bag
    assert counted[metrics.METRIC_LIVE] == {}


def test_every_release_cause_has_a_series(exported: Exported) -> None:
    """released has one series per cause from the start (zeros included), so rates see no gap."""
    assert sorted(exported.collect()[metrics.METRIC_RELEASED]) == sorted(handletrace.RELEASE_CAUSES)


def test_counters_keep_counting_across_a_registry_clear(
    installed: None, exported: Exported
) -> None:
    """registry.clear() (reset_defaults) does not lower created or released: they stay monotonic."""
    sdk_objects.speech_config()
    first = exported.counted()
    TRACKER.registry.clear()
    sdk_objects.speech_config()
    second = exported.counted()
    assert first[metrics.METRIC_CREATED] == {"speech_config": 1, "property_bag": 1}
    assert second[metrics.METRIC_CREATED] == {"speech_config": 2, "property_bag": 2}
    assert second[metrics.METRIC_RELEASED] == {"del": 4}


def test_handles_created_between_a_collection_and_a_clear_are_not_lost(
    installed: None, exported: Exported
) -> None:
    """Counts are exact even when no collection ran between the creations and the clear."""
    keep = [sdk_objects.speech_config()]
    before_clear = registry_view()
    TRACKER.registry.clear()
    counted = exported.counted()
    assert counted[metrics.METRIC_CREATED] == before_clear[metrics.METRIC_CREATED]
    assert counted[metrics.METRIC_LIVE] == {}  # the cleared registry forgot the live records
    del keep


def test_native_handles_follow_the_sdk_handle_table(exported: Exported) -> None:
    """native.handles rises when a recognizer is made and falls back when it is released."""
    before = exported.collect()[metrics.METRIC_NATIVE][None]
    recognizer = sdk_objects.recognizer()
    during = exported.collect()[metrics.METRIC_NATIVE][None]
    del recognizer
    after = exported.collect()[metrics.METRIC_NATIVE][None]
    assert during > before
    assert after == before


def test_instrumentation_errors_are_exported(installed: None, exported: Exported) -> None:
    """instrumentation.errors reports the registry's count of caught failures."""
    TRACKER.registry.count_error("test", RuntimeError("injected"))
    assert exported.counted()[metrics.METRIC_ERRORS] == {
        None: exported.start[metrics.METRIC_ERRORS][None] + 1
    }


def test_only_low_cardinality_attributes_are_used(installed: None, exported: Exported) -> None:
    """Attributes are kinds, causes and patterns only: no addresses, stacks or owners."""
    keep = [sdk_objects.transcriber()]
    metrics.record_leak_findings({"callback_cycle": 1})
    data = exported.reader.get_metrics_data()
    keys = {
        key
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        if scope.scope.name == metrics.METER_NAME
        for metric in scope.metrics
        for point in metric.data.data_points
        for key in point.attributes
    }
    assert keys == {
        metrics.ATTR_HANDLE_KIND,
        metrics.ATTR_RELEASE_CAUSE,
        metrics.ATTR_LEAK_PATTERN,
        metrics.ATTR_BLOCKING_WHAT,
    }
    del keep


# -- leaks found -------------------------------------------------------------------------------


def test_record_leak_findings_counts_per_pattern(exported: Exported) -> None:
    """record_leak_findings adds each pattern's count to leaks.found, cumulatively."""
    metrics.record_leak_findings({"callback_cycle": 2, "unstopped_recognition": 1})
    metrics.record_leak_findings({"callback_cycle": 1})
    assert exported.collect()[metrics.METRIC_LEAKS] == {
        "callback_cycle": 3,
        "unstopped_recognition": 1,
    }


def test_unbounded_pattern_names_are_counted_as_other(exported: Exported) -> None:
    """A name that is not a short identifier cannot create a series of its own."""
    metrics.record_leak_findings({"at 0x7f3a12 in service.py:42": 1, "X" * 100: 2})
    assert exported.collect()[metrics.METRIC_LEAKS] == {"other": 3}


def test_zero_and_negative_findings_are_ignored(exported: Exported) -> None:
    """Counters only go up: counts below 1 add nothing."""
    metrics.record_leak_findings({"callback_cycle": 0, "unstopped_recognition": -1})
    assert metrics.METRIC_LEAKS not in exported.collect()


def test_record_diagnosis_counts_each_leaked_object_once(
    installed: None, no_gc: None, exported: Exported
) -> None:
    """A diagnosis run again over the same leaks adds nothing; a new leaked object adds 1."""
    sdk_objects.make_leaky_transcriber([])
    sdk_objects.make_leaky_transcriber([])
    metrics.record_diagnosis(handletrace.diagnose())
    metrics.record_diagnosis(handletrace.diagnose())
    # One per leaked transcriber, not one per handle (its recognizer and its property bag).
    assert exported.collect()[metrics.METRIC_LEAKS] == {"callback-captures-owner": 2}
    sdk_objects.make_leaky_transcriber([])
    metrics.record_diagnosis(handletrace.diagnose())
    assert exported.collect()[metrics.METRIC_LEAKS] == {"callback-captures-owner": 3}


def test_an_object_diagnosed_through_one_of_its_handles_is_not_counted_again(
    installed: None, no_gc: None, exported: Exported
) -> None:
    """A diagnosis of a snapshot holding only the property bag of a counted transcriber
    adds nothing (the object is known by any of its live handles)."""
    sdk_objects.make_leaky_transcriber([])
    handletrace.diagnose()
    bags = handletrace.snapshot().filter(kinds=["property_bag"])
    handletrace.diagnose(bags)
    assert exported.collect()[metrics.METRIC_LEAKS] == {"callback-captures-owner": 1}


def test_building_a_report_counts_its_leaks(
    installed: None, no_gc: None, exported: Exported
) -> None:
    """The diagnosis behind handletrace.build_report() feeds leaks.found with no extra call."""
    sdk_objects.make_leaky_transcriber([])
    handletrace.build_report()
    assert exported.collect()[metrics.METRIC_LEAKS] == {"callback-captures-owner": 1}


def test_leaks_found_equals_the_reports_finding_counts(
    installed: None, no_gc: None, exported: Exported
) -> None:
    """Four leaked transcribers and two dropped futures: the metric says what the text
    report's findings say (x4 and x2), not the handles behind them (8 and 2)."""
    for _ in range(4):
        sdk_objects.make_leaky_transcriber([])
    transcriber = sdk_objects.transcriber()
    transcriber.start_transcribing_async()
    transcriber.stop_transcribing_async()
    out = io.StringIO()
    report = handletrace.report(out)
    in_report: Dict[str, int] = {}
    for group in report.groups:
        for finding in group.findings:
            in_report[finding.pattern] = in_report.get(finding.pattern, 0) + finding.count
    assert in_report == {"callback-captures-owner": 4, "fire-and-forget-future": 2}, out.getvalue()
    assert "    finding [callback-captures-owner] x4 at " in out.getvalue()
    assert exported.collect()[metrics.METRIC_LEAKS] == in_report
    handletrace.dispose(transcriber)
    del transcriber


def test_record_leak_findings_does_nothing_while_disabled() -> None:
    """Without enable(), findings are dropped silently (and OpenTelemetry is not needed)."""
    metrics.record_leak_findings({"callback_cycle": 1})
    assert not metrics.is_enabled()


# -- enable / disable ----------------------------------------------------------------------------


def test_enable_returns_true_then_a_repeat_is_a_no_op() -> None:
    """enable() twice on the same provider: True, then False; still enabled."""
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    assert (metrics.enable(provider), metrics.enable(provider)) == (True, False)
    assert metrics.is_enabled()


def test_enable_with_another_provider_warns_and_keeps_the_first() -> None:
    """A second provider while enabled: one warning; the first keeps receiving metrics."""
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    metrics.enable(MeterProvider(metric_readers=[first]))
    with pytest.warns(handletrace.HandleTraceWarning, match="another meter provider"):
        assert metrics.enable(MeterProvider(metric_readers=[second])) is False
    assert metrics.METRIC_RELEASED in collect(first)
    assert collect(second) == {}


def test_disable_returns_true_then_a_repeat_is_a_no_op(exported: Exported) -> None:
    """disable() twice: True, then False."""
    assert (metrics.disable(), metrics.disable()) == (True, False)
    assert not metrics.is_enabled()


def test_disabled_instruments_observe_nothing(installed: None, exported: Exported) -> None:
    """After disable(), the observable instruments report no points and releases are no
    longer recorded (the histogram keeps what it had, as leaks.found does)."""
    sdk_objects.speech_config()
    recorded = exported.collect()[metrics.METRIC_RELEASE_DURATION]
    metrics.disable()
    sdk_objects.speech_config()
    assert exported.collect() == {metrics.METRIC_RELEASE_DURATION: recorded}


def test_enable_again_on_the_same_provider_reports_again(
    installed: None, exported: Exported
) -> None:
    """disable() then enable() on one provider: its instruments (registered once) report again."""
    metrics.disable()
    assert metrics.enable(exported.provider) is True
    keep = [sdk_objects.speech_config()]
    assert assert_matches_registry(exported)[metrics.METRIC_LIVE] == {
        "speech_config": 1,
        "property_bag": 1,
    }
    del keep


def test_switching_providers_after_disable_moves_the_metrics(exported: Exported) -> None:
    """disable(), then enable(other): only the other provider receives points."""
    metrics.disable()
    other = InMemoryMetricReader()
    metrics.enable(MeterProvider(metric_readers=[other]))
    assert exported.collect() == {}
    assert metrics.METRIC_RELEASED in collect(other)


def test_a_failing_read_is_counted_not_raised(
    installed: None, exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A callback failure never reaches the reader; it is counted as an instrumentation error."""

    # Fault injection: the real registry cannot fail to read its counters.
    def broken() -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(TRACKER.registry, "totals", broken)
    points = exported.collect()
    # The instruments not reading the registry's totals.
    assert sorted(points) == [metrics.METRIC_LOOP_BLOCKED, metrics.METRIC_NATIVE]
    # One error per failing instrument: live, created, released, instrumentation.errors,
    # releases in flight.
    assert TRACKER.registry.last_errors == ["metrics callback: RuntimeError"] * 5


# -- OpenTelemetry missing -----------------------------------------------------------------------


@pytest.fixture
def no_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate an environment without OpenTelemetry: a ``None`` entry in sys.modules makes
    ``import opentelemetry`` raise ImportError (the package itself is installed here)."""
    for name in list(sys.modules):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)


def test_enable_without_opentelemetry_names_the_extra(no_opentelemetry: None) -> None:
    """One ImportError telling exactly what to install."""
    with pytest.raises(ImportError, match=r"pip install handletrace\[otel\]"):
        metrics.enable()
    assert not metrics.is_enabled()


def test_env_metrics_without_opentelemetry_warns_and_still_tracks(no_opentelemetry: None) -> None:
    """HANDLETRACE_METRICS=otel without OpenTelemetry: one warning, tracking is on."""
    with pytest.warns(handletrace.HandleTraceWarning) as warned:
        activate(EnvSettings(enabled=True, metrics="otel"), report_at_exit=False)
    assert len(warned) == 1
    assert str(warned[0].message).startswith("handletrace: HANDLETRACE_METRICS=otel ignored: ")
    assert "pip install handletrace[otel]" in str(warned[0].message)
    assert handletrace.is_installed()


def test_importing_metrics_does_not_import_opentelemetry(tmp_path: Path) -> None:
    """Importing handletrace.metrics costs nothing until enable() is called."""
    result = run_python(
        """
        import sys
        import handletrace.metrics
        print(sorted(m for m in sys.modules if m.startswith(("opentelemetry", "azure"))))
        """,
        {},
        tmp_path,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "[]\n", "")


# -- environment ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected", [("otel", "otel"), (" OTel ", "otel"), ("none", "none")]
)
def test_env_metrics_accepted_values(value: str, expected: str) -> None:
    """HANDLETRACE_METRICS accepts otel and none (any case, spaces trimmed)."""
    settings, problems = settings_from_env({"HANDLETRACE": "1", "HANDLETRACE_METRICS": value})
    assert (settings.metrics, problems) == (expected, [])


def test_env_metrics_invalid_value_gives_one_message() -> None:
    """A bad value is reported with the variable, the value and what is accepted."""
    settings, problems = settings_from_env({"HANDLETRACE": "1", "HANDLETRACE_METRICS": "prom"})
    assert settings.metrics == "none"
    assert problems == [
        "handletrace: ignoring HANDLETRACE_METRICS='prom': expected otel or none; using the default"
    ]


# What opentelemetry-instrument does: its directory, holding a sitecustomize.py that sets the
# global meter provider, is put first on PYTHONPATH. Python runs that sitecustomize AFTER the
# .pth files of site-packages, so handletrace.pth enables metrics before any provider exists.
SITECUSTOMIZE = """
import sys
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

ENABLED_BEFORE_PROVIDER = (
    "handletrace.metrics" in sys.modules and sys.modules["handletrace.metrics"].is_enabled()
)
READER = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))
"""

SERVICE = """
import gc
import sitecustomize
from tests import sdk_objects

gc.disable()
sdk_objects.make_leaky_transcriber([])
data = sitecustomize.READER.get_metrics_data()
live = {
    point.attributes["handletrace.handle.kind"]: point.value
    for resource in data.resource_metrics
    for scope in resource.scope_metrics
    for metric in scope.metrics
    if metric.name == "handletrace.handles.live"
    for point in metric.data.data_points
}
print(sitecustomize.ENABLED_BEFORE_PROVIDER, live["recognizer"], live["property_bag"])
"""


def test_env_activation_reports_to_a_provider_set_later(tmp_path: Path) -> None:
    """HANDLETRACE=1 HANDLETRACE_METRICS=otel: the .pth enables metrics before the provider
    is set (as under opentelemetry-instrument), and they reach that provider."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    result = run_python(
        SERVICE,
        {
            "HANDLETRACE": "1",
            "HANDLETRACE_METRICS": "otel",
            "HANDLETRACE_REPORT": "none",
            "PYTHONPATH": str(tmp_path),
        },
        tmp_path,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "True 1 1\n"


def test_env_metrics_none_leaves_metrics_off(tmp_path: Path) -> None:
    """HANDLETRACE_METRICS=none (or unset): tracking only, OpenTelemetry never imported."""
    result = run_python(
        """
        import sys
        import handletrace.metrics
        print(handletrace.is_installed(), handletrace.metrics.is_enabled(),
              any(m.startswith("opentelemetry") for m in sys.modules))
        """,
        {"HANDLETRACE": "1", "HANDLETRACE_METRICS": "none", "HANDLETRACE_REPORT": "none"},
        tmp_path,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "True False False\n", "")


def test_native_handles_are_not_read_before_the_sdk_is_imported(tmp_path: Path) -> None:
    """A collection never imports the Speech SDK: native.handles is absent until it is."""
    result = run_python(
        """
        import sys
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from handletrace import metrics

        reader = InMemoryMetricReader()
        metrics.enable(MeterProvider(metric_readers=[reader]))
        names = [
            metric.name
            for resource in reader.get_metrics_data().resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        ]
        print(metrics.METRIC_NATIVE in names, "azure.cognitiveservices.speech" in sys.modules)
        """,
        {},
        tmp_path,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "False False\n", "")


# -- the Prometheus example ------------------------------------------------------------------------


def test_prometheus_example_exposes_the_growing_leak(tmp_path: Path) -> None:
    """examples/prometheus_metrics.py: three leaky requests show as 3 live recognizers in the
    Prometheus exposition (through the OpenTelemetry Prometheus exporter)."""
    pytest.importorskip("opentelemetry.exporter.prometheus")
    result = run_python(
        """
        import gc, sys
        sys.path.insert(0, "examples")
        from prometheus_client import generate_latest
        import prometheus_metrics as example
        from handletrace.testing import Phrase, Script, SpeechService, silence_wav

        gc.disable()
        example.serve_metrics(0)
        with SpeechService(Script(phrases=(Phrase("hello"),))) as service:
            texts = [example.transcribe(service.host, silence_wav(0.5), False) for _ in range(3)]
            print(texts)
            for line in generate_latest().decode().splitlines():
                if line.startswith('handletrace_handles_live{handletrace_handle_kind="recognizer"'):
                    print(line.rsplit(" ", 1)[1])
            gc.collect()
        """,
        {"PYTHONPATH": str(REPO)},
        REPO,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "[['hello'], ['hello'], ['hello']]\n3.0\n"


# -- releases: duration, in flight, event loops blocked -----------------------------------------


def test_release_duration_is_recorded_for_every_release_per_kind(
    installed: None, exported: Exported
) -> None:
    """Each release is one observation in handletrace.release.duration, per kind: the counts
    equal the registry's releases of each kind."""
    for _ in range(3):
        sdk_objects.speech_config()
    counted = exported.collect()[metrics.METRIC_RELEASE_DURATION]
    released = {k: s.released for k, s in TRACKER.registry.stats().kinds.items() if s.released}
    assert counted == released == {"speech_config": 3, "property_bag": 3}, counted


def test_the_release_listener_is_set_while_enabled_and_removed_on_disable(
    exported: Exported,
) -> None:
    """enable() sets TRACKER.release_listener, disable() removes it (only if still its own)."""
    listener = TRACKER.release_listener
    assert listener is not None
    metrics.disable()
    assert TRACKER.release_listener is None
    metrics.enable(exported.provider)
    assert TRACKER.release_listener is listener

    def other(kind: str, seconds: float) -> None:
        pass

    TRACKER.release_listener = other
    metrics.disable()
    assert TRACKER.release_listener is other


def test_a_failing_release_listener_is_counted_never_raised(installed: None) -> None:
    """A histogram that fails to record: the releases still happen and are counted, the
    failure is an instrumentation error (never raised from __del__)."""

    class Broken:  # fault injection: OpenTelemetry's histograms do not fail on their own
        def record(self, amount: float, attributes: Any = None) -> None:
            raise RuntimeError("injected")

    TRACKER.release_listener = metrics._release_listener(Broken())
    try:
        sdk_objects.speech_config()
    finally:
        TRACKER.release_listener = None
    assert TRACKER.registry.stats().released == 2
    assert TRACKER.registry.last_errors == ["metrics release listener: RuntimeError"] * 2


def test_releases_during_a_cyclic_collection_are_recorded_at_the_next_release(
    installed: None, no_gc: None, exported: Exported
) -> None:
    """Handles freed by gc.collect() are recorded when the next release happens outside a
    collection (recording inside one could wait forever on OpenTelemetry's own lock)."""
    sdk_objects.make_leaky_transcriber([])
    gc.collect()
    assert TRACKER.registry.stats().released_by_cause["gc"] == 2
    during = exported.collect().get(metrics.METRIC_RELEASE_DURATION, {})
    assert "recognizer" not in during, during
    sdk_objects.speech_config()
    after = exported.collect()[metrics.METRIC_RELEASE_DURATION]
    released = {k: s.released for k, s in TRACKER.registry.stats().kinds.items() if s.released}
    assert after == released and after["recognizer"] == 1, after


def test_a_release_that_blocks_is_in_flight_while_it_blocks(
    installed: None, exported: Exported, held_service: SpeechService
) -> None:
    """releases.in_flight{recognizer} is 1 while a dropped running recognizer's release
    blocks on another thread, and 0 once it returned."""
    recognizer, feed = running_recognizer(held_service)
    box = [recognizer]
    del recognizer
    dropper = threading.Thread(target=box.pop, name="dropper")
    dropper.start()
    seen: List[Points] = []
    waiting = threading.Event()
    for _ in range(3000):
        if TRACKER.registry.releasing():
            seen.append(exported.collect())
            break
        waiting.wait(0.001)
    dropper.join(60)
    assert seen, "the release was never seen in flight"
    assert seen[0][metrics.METRIC_IN_FLIGHT]["recognizer"] == 1, seen[0]
    assert exported.collect()[metrics.METRIC_IN_FLIGHT]["recognizer"] == 0
    del feed


def test_event_loop_blocked_counts_the_seconds_of_releases_and_calls_on_loops(
    installed: None, exported: Exported, held_service: SpeechService
) -> None:
    """A teardown and a synchronous stop on a loop: event_loop.blocked{release} and {call}
    are their recorded durations, and stay so at the next collection (counted once)."""
    dropped, dropped_feed = running_recognizer(held_service)
    stopped, stopped_feed = running_recognizer(held_service)
    holder = [dropped]
    del dropped

    async def main(stopped: Any) -> None:
        holder.pop()
        stopped.stop_continuous_recognition()

    asyncio.run(main(stopped))
    handletrace.dispose(stopped)
    sites = handletrace.blocking().sites
    release = sum(s.total for s in sites if s.what == "release" and s.on_event_loop)
    call = sum(s.total for s in sites if s.what == "call")
    assert release >= 0.5 and call >= 0.5, sites
    first = exported.collect()[metrics.METRIC_LOOP_BLOCKED]
    assert first == {"release": pytest.approx(release), "call": pytest.approx(call)}, first
    assert exported.collect()[metrics.METRIC_LOOP_BLOCKED] == first
    del stopped, dropped_feed, stopped_feed


def test_event_loop_blocked_never_goes_down_and_counts_only_on_loop_events() -> None:
    """From one site's events, some on a loop and some not: only the on-loop seconds are
    added, each once; a cleared record starts again from what it holds."""
    log = BlockingLog()
    loop, worker = ThreadInfo(1, "MainThread", event_loop=True), ThreadInfo(2, "worker")

    def add(thread: ThreadInfo, seconds: float, ended: float) -> None:
        site = capture(4)  # one line: one site
        log.add(BlockingEvent("release", "recognizer", "X", seconds, ended, thread, site))

    blocked = metrics._LoopBlocked()
    add(loop, 1.0, 1.0)
    add(worker, 0.1, 2.0)
    assert blocked.update(log.sites(), log.events())["release"] == pytest.approx(1.0)
    add(loop, 0.5, 3.0)
    add(worker, 2.0, 4.0)
    assert blocked.update(log.sites(), log.events())["release"] == pytest.approx(1.5)
    assert blocked.update(log.sites(), log.events())["release"] == pytest.approx(1.5)
    log.clear()
    assert blocked.update(log.sites(), log.events())["release"] == pytest.approx(1.5)
    add(loop, 0.2, 5.0)
    assert blocked.update(log.sites(), log.events())["release"] == pytest.approx(1.7)
