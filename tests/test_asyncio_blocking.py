"""The asyncio voice service of ``examples/asyncio_service.py`` against the real SDK and the
local speech service: each of its three teardown mistakes is reported by handletrace with
its kind, owner, line and thread, and the correct service reports nothing.

The local service never answers the end of the audio (``Teardown(answer_end=False)``) where
that is what makes a mistake slow, and the SDK's stop timeout is 2 s: dropping a running
recognizer, or stopping it synchronously, then waits those 2 s every time. A recognizer
released on the SDK's own callback thread, as its ``session_stopped`` callback returns,
waits its stop timeout for that very thread whatever the service does. A ticker on the loop
(``LoopLagProbe``) measures how long the loop was held, independently of handletrace.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, List, Optional, Tuple

import pytest

import handletrace
from handletrace.testing import Script, SpeechService

from .speech_fixtures import ReleaseWatcher

# Seconds the SDK waits for the end of a turn (its default is 10): long enough for a
# snapshot and its diagnosis (0.2-0.7 s here) to be made while a release still blocks.
STOP_TIMEOUT = 2.0
AGREEMENT = 0.25  # the probe and handletrace agree within 25 %
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "asyncio_service.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("asyncio_service_example", EXAMPLE)
    assert spec is not None and spec.loader is not None, EXAMPLE
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


example = load_example()


def example_line(marker: str) -> int:
    """The line of the example holding ``marker`` (exactly one)."""
    lines = [
        number
        for number, line in enumerate(EXAMPLE.read_text(encoding="utf-8").splitlines(), 1)
        if marker in line
    ]
    assert len(lines) == 1, (marker, lines)
    return lines[0]


class LoopLagProbe:
    """A ticker task on the loop: wakes every ``PERIOD`` seconds and adds up how late it
    woke, each lateness of at least ``FLOOR`` (below that it is scheduling jitter, and
    handletrace records nothing under 0.1 s either). A block of B seconds makes one wake
    between B - PERIOD and B late."""

    PERIOD = 0.005
    FLOOR = 0.05

    def __init__(self) -> None:
        self.late = 0.0
        self.lates: List[float] = []
        self._ticking = False
        self._task: Optional[asyncio.Task[None]] = None

    def start(self) -> None:
        self._ticking = True
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        """Stop after one more tick: a block that just ended is measured by it."""
        self._ticking = False
        assert self._task is not None
        await self._task

    async def _tick(self) -> None:
        while self._ticking:
            started = time.monotonic()
            await asyncio.sleep(self.PERIOD)
            late = time.monotonic() - started - self.PERIOD
            if late >= self.FLOOR:
                self.late += late
                self.lates.append(round(late, 3))


def one_call(variant: str, host: str) -> Tuple[List[str], LoopLagProbe, int]:
    """One call of 3 s of audio to the ``variant`` service, with the probe ticking on the
    loop: (the texts recognized, the probe, the loop thread's ident)."""

    async def main() -> Tuple[List[str], LoopLagProbe, int]:
        probe = LoopLagProbe()
        probe.start()
        service = example.SERVICES[variant](host, stop_timeout=STOP_TIMEOUT)
        texts = await service.handle_call("call-1", example.audio_chunks(3.0))
        await probe.stop()
        assert service.sessions == {} or variant == "drop_in_callback", service.sessions
        return texts, probe, threading.get_ident()

    return asyncio.run(main())


def wait_for_site(what: str, name: str, timeout: float = 30.0) -> handletrace.BlockingSite:
    """The recorded site of ``what`` ``name`` (a release ends after the call returned when
    it blocks an SDK thread)."""
    deadline = time.monotonic() + timeout
    while True:
        blocking = handletrace.blocking()
        sites = [s for s in blocking.sites if (s.what, s.name) == (what, name)]
        if sites and not blocking.in_flight:
            assert len(sites) == 1, sites
            return sites[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} {name} recorded in {timeout} s: {blocking}")
        time.sleep(0.02)


def releasing(snapshot: Any, kind: str) -> List[Any]:
    """The releases in flight of ``kind`` handles in ``snapshot``."""
    kinds = {r.seq: r.kind for r in snapshot.records}
    return [f for seq, f in snapshot.releasing.items() if kinds[seq] == kind]


def assert_agrees(probe: LoopLagProbe, held: float) -> None:
    """The probe's lateness agrees with handletrace's time on the loop within 25 %."""
    ratio = probe.late / held if held else float("inf")
    print(f"probe {probe.late:.3f} s {probe.lates}, handletrace {held:.3f} s, ratio {ratio:.3f}")
    assert abs(ratio - 1) <= AGREEMENT, (probe.late, probe.lates, held, ratio)


@pytest.fixture(scope="module")
def speech_service() -> Iterator[SpeechService]:
    with SpeechService() as service:
        yield service


@pytest.fixture
def service(speech_service: SpeechService) -> Iterator[SpeechService]:
    """The module's service with no records; every connection closed afterwards."""
    speech_service.reset()
    yield speech_service
    assert speech_service.wait_active_connections(0, timeout=10.0), speech_service.connections


def use(service: SpeechService, script: Script) -> str:
    service.script = script
    return service.host


def test_a_running_recognizer_dropped_on_the_loop_blocks_the_loop_at_its_line(
    hook_kind: str, service: SpeechService
) -> None:
    """drop_on_loop: the recognizer is 'releasing' on the loop thread at the del line while
    it blocks, then recorded there (kind recognizer, cause del, event-loop thread); the
    probe's lateness agrees with handletrace's time on the loop."""
    handletrace.install()
    host = use(service, example.script_for("drop_on_loop"))
    with ReleaseWatcher() as watcher:
        texts, probe, loop_thread = one_call("drop_on_loop", host)
    assert texts == [example.PHRASE], texts
    line = example_line("# (a) LAST REFERENCE DROPPED ON THE LOOP")

    assert watcher.seen, "no snapshot saw the release in flight"
    snapshot, diagnosis, stats = watcher.seen[0]
    (flight,) = releasing(snapshot, "recognizer")
    record = next(r for r in snapshot.records if r.seq == flight.seq)
    print(flight, record.kind, diagnosis.get(flight.seq).state)
    assert record.kind == "recognizer", record
    assert diagnosis.get(flight.seq).state == "releasing", diagnosis.get(flight.seq)
    assert stats.kinds["recognizer"].live == 1, stats.kinds["recognizer"]
    assert (flight.thread.ident, flight.thread.event_loop, flight.cause) == (
        loop_thread,
        True,
        "del",
    ), flight
    assert flight.site.origin is not None, flight
    assert (flight.site.origin.filename, flight.site.origin.lineno) == (str(EXAMPLE), line)

    site = wait_for_site("release", "recognizer")
    print(site)
    # A handle released by reference counting is named after the SDK class whose method
    # made it: Recognizer.__init__ for every recognizer.
    assert (site.owner, site.count, site.last.cause) == ("Recognizer", 1, "del"), site
    assert site.site is not None and (site.site.filename, site.site.lineno) == (
        str(EXAMPLE),
        line,
    ), site
    thread = site.last.thread
    assert (thread.ident, thread.event_loop, thread.sdk_thread) == (loop_thread, True, False)
    assert site.on_event_loop == 1, site
    blocking = handletrace.blocking()
    assert blocking.in_flight == () and [s.name for s in blocking.sites] == ["recognizer"]
    assert_agrees(probe, blocking.on_event_loop())


def test_the_last_reference_dropped_in_a_callback_blocks_the_sdk_thread(
    hook_kind: str, service: SpeechService
) -> None:
    """drop_in_callback: the recognizer is released on the SDK's callback thread as its
    session_stopped callback returns, 'releasing' there while it waits for that thread for
    the stop timeout, then recorded with that thread (no Python line of the service is on
    its stack: the SDK callback's own reference was the last); the loop is never held."""
    handletrace.install()
    host = use(service, example.script_for("drop_in_callback"))
    with ReleaseWatcher() as watcher:
        texts, probe, loop_thread = one_call("drop_in_callback", host)
        assert watcher.wait(30), f"no snapshot saw the release in flight: {handletrace.blocking()}"
    assert texts == [example.PHRASE], texts
    created = example_line("# CREATED")

    snapshot, diagnosis, stats = watcher.seen[0]
    (flight,) = releasing(snapshot, "recognizer")
    record = next(r for r in snapshot.records if r.seq == flight.seq)
    print(flight, record.kind, diagnosis.get(flight.seq).state)
    assert record.kind == "recognizer", record
    assert diagnosis.get(flight.seq).state == "releasing", diagnosis.get(flight.seq)
    assert stats.kinds["recognizer"].live == 1, stats.kinds["recognizer"]
    assert (flight.thread.sdk_thread, flight.thread.event_loop, flight.cause) == (
        True,
        False,
        "del",
    ), flight
    assert flight.thread.ident != loop_thread, flight
    assert record.traceback.origin is not None, record
    assert record.traceback.origin.lineno == created, record.traceback

    site = wait_for_site("release", "recognizer")
    print(site)
    assert (site.owner, site.count, site.last.cause) == ("Recognizer", 1, "del"), site
    thread = site.last.thread
    assert (thread.ident, thread.sdk_thread, thread.event_loop) == (
        flight.thread.ident,
        True,
        False,
    ), thread
    assert site.on_sdk_thread == 1 and site.on_event_loop == 0, site
    assert site.site is None and site.last.site.origin is None, site.last.site
    assert site.created is not None and (site.created.filename, site.created.lineno) == (
        str(EXAMPLE),
        created,
    ), site
    # It waited for itself the whole stop timeout, though the service answered at once.
    assert site.worst >= STOP_TIMEOUT / 2, site
    ended = service.connections[-1]
    print(ended.timeline)
    assert ended.time_of("turn.end") is not None, ended.timeline
    # The probe agrees: the loop was not held for the SDK thread's release.
    blocking = handletrace.blocking()
    print(f"probe {probe.late:.3f} s {probe.lates}, release {site.total:.3f} s on {thread}")
    assert blocking.on_event_loop() == 0.0, blocking
    assert probe.late <= AGREEMENT * site.total, (probe.late, probe.lates, site.total)


def test_a_synchronous_stop_on_the_loop_is_a_blocking_call_at_its_line(
    service: SpeechService,
) -> None:
    """sync_stop_on_loop: stop_continuous_recognition() is recorded as a call on the loop
    thread at its line, and nothing else holds the loop; the probe agrees."""
    handletrace.install()
    host = use(service, example.script_for("sync_stop_on_loop"))
    texts, probe, loop_thread = one_call("sync_stop_on_loop", host)
    assert texts == [example.PHRASE], texts
    blocking = handletrace.blocking()
    on_loop = [s for s in blocking.sites if s.on_event_loop]
    print(blocking.sites)
    assert [(s.what, s.name, s.owner, s.count) for s in on_loop] == [
        ("call", "SpeechRecognizer.stop_continuous_recognition()", "SpeechRecognizer", 1)
    ], on_loop
    (call,) = on_loop
    assert call.site is not None and (call.site.filename, call.site.lineno) == (
        str(EXAMPLE),
        example_line("# (c) SYNC STOP"),
    ), call
    assert (call.last.thread.ident, call.last.thread.event_loop) == (loop_thread, True)
    assert_agrees(probe, blocking.on_event_loop())


@pytest.mark.parametrize("teardown", ["end never answered", "default"])
def test_the_correct_service_blocks_nothing(teardown: str, service: SpeechService) -> None:
    """correct: no release in flight, nothing recorded on an event loop or an SDK thread,
    no handle releasing, no recognizer left; with a slow end of audio or the default."""
    handletrace.install()
    script = example.script_for("correct") if teardown != "default" else Script.of("hello")
    texts, probe, _ = one_call("correct", use(service, script))
    assert texts == [example.PHRASE], texts
    blocking = handletrace.blocking()
    diagnosis = handletrace.diagnose(paths=False)
    print(blocking, f"probe {probe.late:.3f} s {probe.lates}")
    assert blocking.in_flight == (), blocking.in_flight
    assert [s for s in blocking.sites if s.on_event_loop or s.on_sdk_thread] == [], blocking
    assert blocking.on_event_loop() == 0.0, blocking
    assert "releasing" not in diagnosis.counts(), diagnosis.counts()
    kinds = handletrace.stats().kinds
    assert kinds["recognizer"].live == 0, kinds["recognizer"]


def test_the_example_runs_as_a_script_and_prints_what_blocked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``python examples/asyncio_service.py drop_on_loop --calls 2`` starts its own local
    service, makes two concurrent calls and prints both releases on the loop at their line."""
    assert example.main(["drop_on_loop", "--calls", "2", "--stop-timeout", "1"]) == 0
    out = capsys.readouterr().out
    print(out)
    lines = out.splitlines()
    assert lines[0].startswith("heartbeat: late "), lines
    assert lines[1].startswith("drop_on_loop: 2 calls in "), lines
    assert lines[1].endswith("[['hello'], ['hello']]"), lines
    line = example_line("# (a) LAST REFERENCE DROPPED ON THE LOOP")
    assert lines[2].startswith("release recognizer (Recognizer) x2: "), lines
    assert lines[2].endswith(f"on MainThread (event loop) at {EXAMPLE}:{line}"), lines
    assert lines[3].startswith("event loops held "), lines
    assert len(lines) == 4, lines
