"""Reliability: a forked child process has a working registry and reports its own handles."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import traceback
from typing import Any, Callable, Dict, Iterator, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest

import handletrace
from handletrace._core.state import TRACKER

from . import sdk_objects

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

CHILD_TIMEOUT = 30.0


def run_in_fork(child: Callable[[], Any]) -> Tuple[int, Any]:
    """Fork; the child runs ``child()`` and sends its JSON result back. (exit status, result)"""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        status = 0
        try:
            payload = json.dumps({"result": child()})
        except BaseException:
            payload = json.dumps({"error": traceback.format_exc()})
            status = 1
        os.write(write_end, payload.encode())
        os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + CHILD_TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(read_end)
            pytest.fail("the forked child hung (deadlock?)")
        time.sleep(0.02)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    data = json.loads(b"".join(chunks) or b"{}")
    assert "error" not in data, data.get("error")
    return os.waitstatus_to_exitcode(status), data.get("result")


@pytest.fixture
def lock_held_by_another_thread() -> Iterator[None]:
    """The registry lock is held by another thread while the test forks."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with TRACKER.registry._lock:
            held.set()
            release.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    try:
        yield
    finally:
        release.set()
        thread.join()


def test_child_registry_works_even_if_its_lock_was_held_at_fork(
    installed: None, lock_held_by_another_thread: None
) -> None:
    """The child gets a fresh lock: it records, releases and reports without deadlock."""

    def child() -> Dict[str, Any]:
        marker = TRACKER.registry.last_seq()
        config = sdk_objects.speech_config()
        created = [(r.kind, r.owner_label) for r in handletrace.snapshot().filter(since=marker)]
        del config
        live_after_del = len(handletrace.snapshot().filter(since=marker))
        return {"created": created, "live_after_del": live_after_del}

    code, result = run_in_fork(child)
    assert code == 0
    assert result == {
        "created": [
            ["speech_config", "SpeechConfig"],
            ["property_bag", "PropertyCollection of SpeechConfig"],
        ],
        "live_after_del": 0,
    }


def test_child_report_shows_the_handles_it_created_on_its_own_thread(installed: None) -> None:
    """A JSON report written in the child lists its new recognizer, made on its main thread."""

    def child() -> Dict[str, Any]:
        marker = TRACKER.registry.last_seq()
        recognizer = sdk_objects.recognizer()
        out = io.StringIO()
        handletrace.report(out, "json", snap=handletrace.snapshot().filter(since=marker))
        report = json.loads(out.getvalue())
        handles = [h for g in report["groups"] for h in g["handles"]]
        del recognizer
        return {
            "kinds": sorted(h["kind"] for h in handles),
            "threads": sorted({h["thread"] for h in handles}),
            "report_pid": report["pid"],
            "pid": os.getpid(),
        }

    code, result = run_in_fork(child)
    assert code == 0
    assert result["kinds"] == ["property_bag", "recognizer"]
    assert result["threads"] == ["MainThread"]
    assert result["report_pid"] == result["pid"] != os.getpid()


def test_releases_in_the_child_do_not_change_the_parents_counts(installed: None) -> None:
    """The child's registry is its own copy: what it releases stays live in the parent."""
    config = speechsdk.SpeechConfig(subscription=sdk_objects.FAKE_KEY, region="westus")
    before = handletrace.stats()

    def child() -> Dict[str, int]:
        nonlocal config
        del config
        stats = handletrace.stats()
        return {"live": stats.live, "released": stats.released}

    code, result = run_in_fork(child)
    assert code == 0
    assert result == {"live": before.live - 2, "released": before.released + 2}
    after = handletrace.stats()
    assert (after.live, after.released) == (before.live, before.released)
    del config
