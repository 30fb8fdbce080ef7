"""The blocking section of reports (text, JSON, HTML, ``handletrace report``) and the process's
threads and sockets in the native section, from real releases and calls: against the local
speech service where a release must really block (it waits ~1 s, see blocking_scenarios),
with ``slow_release=0`` (every release is recorded) where only the rendering matters.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, List

import pytest

import handletrace
from handletrace import Report, cli
from handletrace._analysis.blocking import blocking_findings, sites_since
from handletrace._core import process
from handletrace._core.blocking import BlockingEvent, BlockingLog
from handletrace._core.state import TRACKER
from handletrace._core.threads import ThreadInfo
from handletrace._report.html import format_html
from handletrace._report.render import render_json
from handletrace._report.text import format_text
from handletrace.testing import SpeechService

from . import blocking_scenarios, sdk_objects
from .blocking_scenarios import line_of, running_recognizer

held_service = blocking_scenarios.held_service
HERE = __file__
CREATE_LINE = (blocking_scenarios.__file__, line_of(blocking_scenarios.__file__, "# CREATE-LINE"))


def where(frames: Any) -> Any:
    """(filename, lineno) of the last frame of a site (its line)."""
    return (frames[-1].filename, frames[-1].lineno) if frames else None


def finding(report: Report, pattern: str) -> Any:
    assert report.blocking is not None
    found = [f for f in report.blocking.findings if f.pattern == pattern]
    assert len(found) == 1, report.blocking.findings
    return found[0]


# -- what blocked, from the real SDK -------------------------------------------------------


def test_a_teardown_on_the_event_loop_is_reported_at_its_line_with_the_adispose_fix(
    held_service: SpeechService,
) -> None:
    """Dropping a running recognizer on a loop: one release site at the drop line (created
    at the recognizer's line, on the loop), named with its fix, in text, JSON and HTML."""
    handletrace.install()
    recognizer, feed = running_recognizer(held_service)
    holder = [recognizer]
    del recognizer

    async def drop() -> None:
        holder.pop()  # LOOP-DROP

    asyncio.run(drop())
    report = handletrace.build_report()
    blocking = report.blocking
    assert blocking is not None
    sites = [s for s in blocking.sites if s.what == "release" and s.name == "recognizer"]
    assert len(sites) == 1, blocking.sites
    (site,) = sites
    assert where(site.site) == (HERE, line_of(HERE, "# LOOP-DROP")), site.site
    assert where(site.created) == CREATE_LINE, site.created
    assert (site.count, site.on_event_loop, site.on_sdk_thread, site.cause) == (1, 1, 0, "del")
    assert site.thread.event_loop and site.thread.name == "MainThread", site.thread
    assert site.worst >= 0.5 and blocking.event_loop >= 0.5, site
    found = finding(report, "blocking-release-on-event-loop")
    assert (found.filename, found.lineno) == (HERE, line_of(HERE, "# LOOP-DROP")), found
    assert "the event loop was blocked" in found.message and "teardown of a" in found.message
    assert "await handletrace.adispose(recognizer)" in found.fix, found.fix
    assert "run_in_executor" in found.fix, found.fix
    text = format_text(report)
    assert "blocking: 1 slow release" in text and "event loops blocked" in text, text
    assert f"finding [blocking-release-on-event-loop] at {found.where}" in text, text
    assert f"fix: {found.fix}" in text, text
    assert "holder.pop()  # LOOP" + "-DROP" in text, text  # the line itself
    assert "asyncio" + "/base_events.py" not in text, text  # the loop's frames left out
    data = report.to_dict()["blocking"]
    assert data["event_loop"] >= 0.5 and data["worst"] >= 0.5, data
    assert Report.from_dict(json.loads(json.dumps(report.to_dict()))) == report
    page = format_html(report)
    assert "<h2>What blocked</h2>" in page, page
    assert "a native teardown blocked the event loop" in page, page
    del feed


def test_synchronous_calls_on_the_loop_are_named_with_the_async_variant_fix(
    held_service: SpeechService,
) -> None:
    """A synchronous stop, and a .get() of its _async future, on a loop: each a call site at
    its line with its own fix (the _async variant awaited in a worker)."""
    handletrace.install()
    first, first_feed = running_recognizer(held_service)
    second, second_feed = running_recognizer(held_service)

    async def main(first: Any, second: Any) -> None:
        first.stop_continuous_recognition()  # SYNC-STOP
        second.stop_continuous_recognition_async().get()  # FUTURE-GET

    asyncio.run(main(first, second))
    handletrace.dispose(first)
    handletrace.dispose(second)
    report = handletrace.build_report()
    sync = finding(report, "blocking-sync-call-on-event-loop")
    assert sync.lineno == line_of(HERE, "# SYNC-STOP"), sync
    assert "synchronous SpeechRecognizer.stop_continuous_recognition() on the event loop" in (
        sync.message
    )
    assert sync.fix == (
        "use the _async variant and wait for it in a worker: "
        "await asyncio.to_thread(recognizer.stop_continuous_recognition_async().get)"
    ), sync.fix
    future = finding(report, "blocking-future-get-on-event-loop")
    assert future.lineno == line_of(HERE, "# FUTURE-GET"), future
    assert future.message.startswith(
        "SpeechRecognizer.stop_continuous_recognition_async().get() on the event loop"
    ), future.message
    assert "await asyncio.to_thread(recognizer.stop_continuous_recognition_async().get)" in (
        future.fix
    )
    assert report.blocking is not None
    calls = sorted(s.name for s in report.blocking.sites if s.what == "call")
    assert calls == [
        "SpeechRecognizer.stop_continuous_recognition()",
        "SpeechRecognizer.stop_continuous_recognition_async().get()",
    ], report.blocking.sites
    del first, second, first_feed, second_feed


def test_dispose_on_the_loop_is_reported_with_the_adispose_fix() -> None:
    """handletrace.dispose() of a recognizer whose teardown is slow, called on a loop: its
    own pattern, whose fix is adispose()."""
    with SpeechService(blocking_scenarios.SLOW_CLOSE) as service:
        handletrace.install()
        blocking_scenarios.dispose_on_a_loop(service)
        report = handletrace.build_report()
    found = finding(report, "blocking-dispose-on-event-loop")
    assert found.lineno == line_of(blocking_scenarios.__file__, "# DISPOSE-LINE"), found
    assert found.fix.startswith("await handletrace.adispose(recognizer)"), found.fix
    # The slow release is its property bag's (which keeps the native recognizer alive).
    assert found.message.startswith(
        "handletrace.dispose() of a SpeechRecognizer's PropertyCollection at "
    ), found.message


def test_a_release_in_flight_is_reported_with_its_thread_and_lines(
    held_service: SpeechService,
) -> None:
    """A report made while a release blocks on another thread lists it in flight: kind,
    owner, elapsed, thread, the line releasing it and the line that created it."""
    handletrace.install()
    recognizer, feed = running_recognizer(held_service)
    box = [recognizer]
    del recognizer

    def drop() -> None:
        box.pop()  # THREAD-DROP

    dropper = threading.Thread(target=drop, name="dropper")
    registry = TRACKER.registry
    dropper.start()
    reports: List[Report] = []
    waiting = threading.Event()
    # The registry's releasing table first: a snapshot finds owners, and taken before the
    # drop it could hold the recognizer for a moment and release it itself.
    for _ in range(3000):
        if registry.releasing():
            reports.append(handletrace.build_report(handletrace.snapshot()))
            break
        waiting.wait(0.001)
    dropper.join(60)
    assert reports, "the release was never seen in flight"
    report = reports[0]
    blocking = report.blocking
    assert blocking is not None and len(blocking.in_flight) == 1, blocking
    (flight,) = blocking.in_flight
    assert (flight.kind, flight.cause, flight.thread.name) == ("recognizer", "del", "dropper")
    assert not flight.thread.event_loop and not flight.thread.sdk_thread, flight.thread
    assert flight.owner, flight
    assert where(flight.site) == (HERE, line_of(HERE, "# THREAD-DROP")), flight.site
    assert where(flight.created) == CREATE_LINE, flight.created
    text = format_text(report)
    assert f"recognizer ({flight.owner}) releasing for" in text and "on dropper, cause del" in text
    assert "blocking: 1 release in flight" in text, text
    assert Report.from_dict(json.loads(json.dumps(report.to_dict()))) == report
    assert "Releases in flight" in format_html(report)
    del feed


def test_a_teardown_blocking_a_loop_now_is_named_while_in_flight(
    held_service: SpeechService,
) -> None:
    """A report made on another thread while a loop's teardown blocks: the release in flight
    is on an event loop, and the finding says the loop is blocked now, with the fix."""
    handletrace.install()
    recognizer, feed = running_recognizer(held_service)
    box = [recognizer]
    del recognizer

    async def drop() -> None:
        box.pop()  # LOOP-IN-FLIGHT

    looping = threading.Thread(target=asyncio.run, args=(drop(),), name="loop")
    looping.start()
    reports: List[Report] = []
    waiting = threading.Event()
    for _ in range(3000):
        if TRACKER.registry.releasing():
            reports.append(handletrace.build_report(handletrace.snapshot()))
            break
        waiting.wait(0.001)
    looping.join(60)
    assert reports, "the release was never seen in flight"
    blocking = reports[0].blocking
    assert blocking is not None and len(blocking.in_flight) == 1, blocking
    assert blocking.in_flight[0].thread.event_loop, blocking.in_flight[0]
    found = finding(reports[0], "blocking-release-on-event-loop")
    assert found.lineno == line_of(HERE, "# LOOP-IN-FLIGHT"), found
    assert "so far by the teardown of a" in found.message and "(still in flight)" in found.message
    assert found.fix.startswith("await handletrace.adispose(recognizer)"), found.fix
    del feed


# -- rendering, saving, loading ---------------------------------------------------------------


def released_on_a_loop() -> None:
    """A SpeechConfig made and dropped on an event loop (with ``slow_release=0``, both of its
    releases are recorded)."""

    async def main() -> None:
        config = sdk_objects.speech_config()
        del config  # QUICK-DROP

    asyncio.run(main())


def test_with_a_zero_threshold_every_release_on_a_loop_is_a_site() -> None:
    """slow_release=0: the speech config and its property bag, released on the loop at one
    line, are two sites (one per kind), each once on an event loop."""
    handletrace.install(slow_release=0)
    released_on_a_loop()
    report = handletrace.build_report()
    assert report.blocking is not None and report.blocking.threshold == 0.0
    line = (HERE, line_of(HERE, "# QUICK-DROP"))
    mine = sorted(s.name for s in report.blocking.sites if where(s.site) == line)
    assert mine == ["property_bag", "speech_config"], report.blocking.sites
    # One object dropped at one line: one finding (its longest release), not one per handle.
    found = [f for f in report.blocking.findings if (f.filename, f.lineno) == line]
    assert [f.pattern for f in found] == ["blocking-release-on-event-loop"], found
    assert "(recorded: 0 ms or longer)" in format_text(report)


def test_a_saved_report_renders_its_blocking_section_with_handletrace_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """handletrace report saved.json shows the blocking section as the live report does,
    in text and in HTML."""
    handletrace.install(slow_release=0)
    released_on_a_loop()
    saved = tmp_path / "saved.json"
    with open(saved, "w", encoding="utf-8") as out:
        report = handletrace.report(out, "json")
    assert cli.main(["report", str(saved)]) in (0, 3)
    text = capsys.readouterr().out
    assert text == format_text(report), text
    assert "blocking: " in text and f'line {line_of(HERE, "# QUICK-DROP")}, in main' in text
    page = tmp_path / "saved.html"
    assert cli.main(["report", str(saved), "-o", str(page)]) in (0, 3)
    assert "<h2>What blocked</h2>" in page.read_text(encoding="utf-8")


def test_a_report_saved_before_these_fields_still_loads() -> None:
    """A version 1 report without 'blocking' and without the process counts loads: no
    blocking section, no counts."""
    handletrace.install()
    config = sdk_objects.speech_config()
    data = handletrace.build_report().to_dict()
    del config
    del data["blocking"]
    assert data["native"] is not None, data
    for key in ("threads", "sockets", "per_object"):
        del data["native"][key]
    report = Report.from_dict(data)
    assert report.blocking is None and report.native is not None
    assert (report.native.threads, report.native.sockets) == (None, None)
    assert "process:" not in format_text(report) and "blocking:" not in format_text(report)


def test_a_program_that_blocked_nothing_has_an_empty_section_and_no_text() -> None:
    """Nothing blocked: the JSON says so (threshold, empty lists), the text and the page say
    nothing about it."""
    handletrace.install()
    config = sdk_objects.speech_config()
    del config
    report = handletrace.build_report()
    assert report.to_dict()["blocking"] == {
        "threshold": 0.1,
        "in_flight": [],
        "sites": [],
        "findings": [],
        "total": 0.0,
        "worst": 0.0,
        "event_loop": 0.0,
    }
    assert "blocking" not in format_text(report)
    assert "What blocked" not in format_html(report)


def test_values_in_the_blocking_section_are_escaped_in_html() -> None:
    """Thread names (the application's own) are HTML-escaped on the page."""
    handletrace.install(slow_release=0)
    done: List[str] = []

    def on_a_thread() -> None:
        released_on_a_loop()
        done.append("yes")

    worker = threading.Thread(target=on_a_thread, name="<b>worker</b>")
    worker.start()
    worker.join(30)
    assert done
    page = format_html(handletrace.build_report())
    assert "&lt;b&gt;worker&lt;/b&gt;" in page and "<b>worker</b>" not in page


# -- the patterns, from recorded events -------------------------------------------------------
#
# The SDK-callback-thread case is real (the last reference dropped inside a recognized
# handler blocks ~10 s with the C hooks), but whether the handler or the SDK's own callback
# code drops the last reference varies from run to run: the events below are made as the
# hooks make them (value types, no SDK object), on a thread described as the SDK's.


def event(thread: ThreadInfo, cause: str, duration: float, what: str = "release") -> Any:
    from handletrace._core import stacks

    def here() -> Any:
        return stacks.capture(8)  # SDK-THREAD-DROP

    name = "recognizer" if what == "release" else "SpeechRecognizer.recognize_once()"
    return BlockingEvent(
        what,  # type: ignore[arg-type]
        name,
        "SpeechRecognizer",
        duration,
        0.0,
        thread,
        here(),
        here() if what == "release" else stacks.EMPTY_TRACEBACK,
        cause,
    )


def test_the_last_reference_dropped_on_an_sdk_thread_is_named_with_its_fix() -> None:
    """A release of cause del on an SDK callback thread: the pattern, the thread, the line,
    the wait and the fix (drop it elsewhere, or dispose(), which defers)."""
    log = BlockingLog()
    sdk_thread = ThreadInfo(1, "native-1", sdk_thread=True)
    log.add(event(sdk_thread, "del", 10.02))
    ((found, count),) = blocking_findings(log.sites())
    assert (found.pattern, count) == ("blocking-release-on-sdk-thread", 1), found
    assert found.lineno == line_of(HERE, "# SDK-THREAD-DROP"), found
    assert found.message.startswith(
        "the last reference to a SpeechRecognizer was dropped on the SDK's callback thread "
        f"native-1 at {HERE}:{found.lineno}: its release waits for that thread (~10 s; "
        "10.02 s worst, once)"
    ), found.message
    assert "handletrace.dispose(recognizer)" in found.fix and "defers" in found.fix, found.fix


def test_forced_and_direct_releases_on_an_sdk_thread_match_no_pattern() -> None:
    """Only a dropped last reference (del, gc) waits for its own thread: dispose() there
    defers; a direct release is the SDK's own doing."""
    log = BlockingLog()
    sdk_thread = ThreadInfo(1, "native-1", sdk_thread=True)
    log.add(event(sdk_thread, "forced", 0.5))
    assert blocking_findings(log.sites()) == ()


def test_what_a_record_gained_is_exact_in_counts_and_totals() -> None:
    """sites_since: only the events added between the two looks, their count, total,
    worst and on-loop count (a site that gained nothing is left out)."""
    log = BlockingLog()
    loop = ThreadInfo(1, "MainThread", event_loop=True)
    log.add(event(loop, "del", 0.9))
    log.add(event(loop, "call", 0.4, "call"))
    before = log.sites()
    log.add(event(loop, "del", 0.2))
    log.add(event(ThreadInfo(2, "worker"), "del", 0.3))
    (grown,) = sites_since(before, log.sites(), log.events())
    assert (grown.what, grown.count, grown.on_event_loop) == ("release", 2, 1), grown
    assert grown.total == pytest.approx(0.5) and grown.worst == pytest.approx(0.3), grown
    assert sites_since(log.sites(), log.sites(), log.events()) == ()


# -- the process's threads and sockets --------------------------------------------------------


def test_native_section_gives_threads_and_sockets_per_live_recognizer() -> None:
    """With two live recognizers: the process's native threads and open sockets, and each
    divided by two, in the text, the page and the JSON."""
    handletrace.install()
    recognizers = [sdk_objects.recognizer(), sdk_objects.recognizer()]
    report = handletrace.build_report()
    native = report.native
    assert native is not None and native.threads is not None and native.sockets is not None
    assert native.threads >= threading.active_count(), native
    (per,) = [p for p in native.per_object() if p.kind == "recognizer"]
    assert (per.live, per.threads, per.sockets) == (2, native.threads / 2, native.sockets / 2)
    text = format_text(report)
    assert f"process: {native.threads} native threads" in text, text
    assert "threads and" in text and "per live recognizer (2 live)" in text, text
    assert f"{native.threads} native threads" in format_html(report)
    data = report.to_dict()["native"]
    assert data["threads"] == native.threads and data["sockets"] == native.sockets, data
    kept = {k: v for k, v in data["per_object"][0].items() if k in ("kind", "live")}
    assert kept == {"kind": "recognizer", "live": 2}, data["per_object"]
    del recognizers


def test_an_open_socket_is_counted() -> None:
    """count_sockets() sees one more socket while one is open."""
    before = process.count_sockets()
    assert before is not None
    with socket.socket() as opened:
        assert opened.fileno() >= 0
        assert process.count_sockets() == before + 1


def test_without_proc_the_counts_are_none_and_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where /proc is missing (macOS, Windows; here: its paths made to point nowhere), the
    counts are None and the report leaves the process line out."""
    monkeypatch.setattr(process, "_TASKS", "/nonexistent/task")
    monkeypatch.setattr(process, "_FDS", "/nonexistent/fd")
    handletrace.install()
    recognizer = sdk_objects.recognizer()
    report = handletrace.build_report()
    assert report.native is not None
    assert (report.native.threads, report.native.sockets) == (None, None)
    assert report.native.per_object() == ()
    assert "process:" not in format_text(report)
    del recognizer


def test_a_report_loaded_back_is_equal_and_renders_the_same() -> None:
    """JSON round trip of a report with a blocking section and process counts: equal, and
    its text is the same text."""
    handletrace.install(slow_release=0)
    recognizer = sdk_objects.recognizer()
    released_on_a_loop()
    report = handletrace.build_report()
    loaded = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert loaded == report
    assert format_text(loaded) == format_text(report)
    out = io.StringIO()
    render_json(loaded, out)
    assert json.loads(out.getvalue()) == report.to_dict()
    assert replace(loaded, blocking=None).blocking is None
    del recognizer


def test_sites_past_the_bound_are_one_other_row_in_text_and_json() -> None:
    """A record full of sites counts later ones in one 'other sites' row: shown as such in
    the text, marked "other": true in the JSON (and read back)."""
    from handletrace._core.blocking import Blocking
    from handletrace._report.model import ReportBlocking, make_blocking
    from handletrace._report.text import blocking_lines

    log = BlockingLog(max_sites=1)
    loop = ThreadInfo(1, "MainThread", event_loop=True)
    log.add(event(loop, "del", 0.3))
    log.add(event(loop, "call", 0.2, "call"))
    blocking = make_blocking(Blocking((), log.sites(), log.events(), 0.1))
    assert [site.other for site in blocking.sites] == [False, True], blocking.sites
    lines = blocking_lines(blocking)
    assert "    1 more event at other sites (not kept one by one), 200 ms in all, 200 ms worst" in (
        lines
    ), lines
    codec = handletrace._report.model._CODEC
    data = json.loads(json.dumps(codec.encode(blocking)))
    assert ["other" in site for site in data["sites"]] == [False, True], data["sites"]
    assert codec.decode(ReportBlocking, data) == blocking


PROGRAM = """
import asyncio

import azure.cognitiveservices.speech as speechsdk


async def main():
    config = speechsdk.SpeechConfig(subscription="dummy", region="westus")
    del config  # ON-THE-LOOP


asyncio.run(main())
"""


def test_handletrace_run_and_the_at_exit_report_show_the_blocking_section(tmp_path: Path) -> None:
    """handletrace run and HANDLETRACE=1 print the blocking section; its sites begin at the
    program's own lines (no runpy or handletrace frames)."""
    script = tmp_path / "service.py"
    script.write_text(PROGRAM)
    line = PROGRAM.splitlines().index("    del config  # ON-THE-LOOP") + 1
    env = {"HANDLETRACE_SLOW_RELEASE": "0"}
    for how, argv in (
        ("run", [sys.executable, "-m", "handletrace", "run", str(script)]),
        ("at exit", [sys.executable, str(script)]),
    ):
        extra = {"HANDLETRACE": "1"} if how == "at exit" else {}
        environment = {k: v for k, v in os.environ.items() if not k.startswith("HANDLETRACE")}
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env={**environment, **env, **extra},
            cwd=tmp_path,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        report = result.stderr
        assert "blocking: 2 slow releases at 2 sites" in report, (how, report)
        assert f"finding [blocking-release-on-event-loop] at {script}:{line}" in report, report
        stacks = report.split("by site (longest total first):\n", 1)[1].split("  finding", 1)[0]
        files = [line.strip() for line in stacks.splitlines() if line.strip().startswith("File")]
        assert files and all(f.startswith(f'File "{script}"') for f in files), (how, stacks)
        assert f'File "{script}", line {line}, in main' in stacks, (how, stacks)
