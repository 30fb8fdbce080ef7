"""Reliability: cyclic collections (and the ``__del__`` they run) inside handletrace's own code.

With ``gc.set_threshold(1, 1, 1)`` a collection can start at almost any allocation, including
the ones handletrace makes while it holds the registry lock, while it builds records for a
snapshot, and while a report is rendered. The leaked transcribers below are cyclic garbage,
so those collections finalise ``_Handle`` objects and re-enter the registry.
"""

from __future__ import annotations

import gc
import io
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest

import handletrace
from handletrace._core.state import TRACKER

from . import sdk_objects


@pytest.fixture
def gc_everywhere() -> Iterator[Dict[str, int]]:
    """GC threshold 1; counts collections that started while this thread held the registry lock."""
    seen = {"collections": 0, "inside_registry_lock": 0}

    def probe(phase: str, info: Dict[str, int]) -> None:
        if phase == "start":
            seen["collections"] += 1
            if TRACKER.registry._lock._is_owned():  # type: ignore[attr-defined]
                seen["inside_registry_lock"] += 1

    old = gc.get_threshold()
    was_enabled = gc.isenabled()
    gc.enable()
    gc.callbacks.append(probe)
    gc.set_threshold(1, 1, 1)
    try:
        yield seen
    finally:
        gc.set_threshold(*old)
        gc.callbacks.remove(probe)
        if not was_enabled:
            gc.disable()


def churn(rounds: int, keep: List[Any]) -> None:
    """Leaked cycles, plain objects, snapshots, stats and reports, interleaved."""
    for index in range(rounds):
        sdk_objects.make_leaky_transcriber([])  # cyclic garbage: released by a collection
        audio_config = sdk_objects.push_audio_config()  # released by reference counting
        if index % 3 == 0:
            keep.append(sdk_objects.speech_config())  # stays alive
        handletrace.snapshot().groups()
        handletrace.stats()
        handletrace.report(io.StringIO(), "json")
        del audio_config


def test_collections_inside_registry_operations_lose_and_invent_no_record(
    hook_kind: str, installed: None, gc_everywhere: Dict[str, int]
) -> None:
    """Every record created is released exactly once or still held; nothing else is live."""
    keep: List[Any] = []
    churn(12, keep)
    gc.collect()
    stats = handletrace.stats()
    held = {id(obj) for obj in keep}
    live_owners = {
        id(record.parent_ref() or record.owner_ref()) for record in handletrace.snapshot()
    }
    assert gc_everywhere["inside_registry_lock"] > 0  # the re-entrant case really happened
    assert live_owners == held
    assert stats.created == stats.released + stats.live
    assert stats.live == 2 * len(keep)  # speech_config and property_bag each
    assert stats.released_by_cause["gc"] > 0
    assert stats.released_by_cause["del"] > 0
    assert stats.instrumentation_errors == 0


def test_finalisers_on_other_threads_during_snapshots_do_not_deadlock(
    hook_kind: str, installed: None
) -> None:
    """Collections on two threads while a third takes snapshots: all finish, counts agree."""
    old = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    errors: List[BaseException] = []
    deadline = time.monotonic() + 3.0

    def leak_and_collect() -> None:
        try:
            while time.monotonic() < deadline:
                sdk_objects.make_leaky_transcriber([])
                gc.collect(0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def look() -> None:
        try:
            while time.monotonic() < deadline:
                handletrace.snapshot().groups()
                handletrace.report(io.StringIO())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (leak_and_collect, leak_and_collect, look)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        gc.set_threshold(*old)
    assert [t.is_alive() for t in threads] == [False, False, False]
    assert errors == []
    gc.collect()
    stats = handletrace.stats()
    assert stats.live == 0
    assert stats.created == stats.released > 0
    assert stats.instrumentation_errors == 0


def test_snapshot_records_are_built_once_and_shared_by_later_snapshots(installed: None) -> None:
    """The lazily built records are kept: a second snapshot returns the same objects."""
    keep = [sdk_objects.recognizer() for _ in range(3)]
    first = handletrace.snapshot().records
    second = handletrace.snapshot().records
    assert len(first) == len(second) == 6  # recognizer and property_bag each
    assert all(a is b for a, b in zip(first, second))
    del keep


def test_collections_while_install_prunes_lose_and_invent_no_record(
    hook_kind: str, gc_everywhere: Dict[str, int]
) -> None:
    """install() prunes the records of handles that died unseen (and their index entries)
    with a collection possible at every allocation: nothing raises, nothing is lost."""
    gc.disable()  # keep the leaked cycles for install() (the fixture enables it again)
    handletrace.install()
    unseen = [sdk_objects.speech_config() for _ in range(20)]
    for _ in range(20):
        sdk_objects.make_leaky_transcriber([])  # cyclic garbage, finalised unseen
    handletrace.uninstall()
    del unseen  # finalised while not installed: pruned by the next install()
    gc.enable()
    handletrace.install()
    gc.collect()
    stats = handletrace.stats()
    assert gc_everywhere["inside_registry_lock"] > 0
    assert stats.created == stats.released and stats.live == 0
    assert stats.released_by_cause["untracked"] >= 40  # the speech configs, if no more
    assert stats.instrumentation_errors == 0 and TRACKER.registry.last_errors == []
    assert len(TRACKER.registry.handle_index) == 0
