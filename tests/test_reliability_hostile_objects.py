"""Reliability: a program's hostile objects never break what handletrace reads of them
(issue #18.8).

Before: ``signals_tree()`` raised what a signal's callback list, a callback or a class
with a hostile metaclass raised (a BaseException of their own: the report's ``except
Exception`` did not catch it either); one holder whose ``__dict__`` could not be read made
the reference path search fail for the whole report (no group said what held it); and a
handle held by an object of a hostile metaclass made ``snapshot()`` raise.
"""

from __future__ import annotations

from typing import Any, Iterator

import azure.cognitiveservices.speech as speechsdk
import pytest

import handletrace
from handletrace.analysis import signals_tree

from . import sdk_objects


class Hostile(BaseException):
    """What a hostile object raises: not even an Exception."""


class Armed:
    """Hostility is switched on only around the call under test (the SDK reads these
    objects too, at construction and in ``__del__``)."""

    on = False


class HostileMeta(type):
    """A metaclass whose classes' names, MRO and dictionary cannot be read once armed."""

    def __getattribute__(cls, name: str) -> Any:
        if Armed.on and name in ("__mro__", "__name__", "__qualname__", "__dict__", "__module__"):
            raise Hostile(name)
        return type.__getattribute__(cls, name)


class MetaSynthesizer(speechsdk.SpeechSynthesizer, metaclass=HostileMeta):
    pass


class HostileCallbacks(list):
    """A callback list whose iteration raises."""

    def __iter__(self) -> Iterator[Any]:
        raise Hostile("iterate")


class HostileCallback:
    """A callable whose every attribute read raises, its class's name too."""

    def __call__(self, evt: Any) -> None:
        pass

    def __getattribute__(self, name: str) -> Any:
        if Armed.on:
            raise Hostile(name)
        return object.__getattribute__(self, name)


@pytest.fixture
def armed() -> Iterator[None]:
    try:
        yield
    finally:
        Armed.on = False


def synthesizer(cls: type = speechsdk.SpeechSynthesizer) -> Any:
    return cls(speech_config=sdk_objects.speech_config(), audio_config=None)


@pytest.mark.usefixtures("installed", "armed")
def test_signals_tree_survives_a_hostile_callback_and_callback_list() -> None:
    """A callback whose attributes raise a BaseException of its own is named by its type;
    a signal whose callback list cannot be iterated shows no callback; no exception."""
    speaker = synthesizer()
    speaker.synthesis_started.connect(HostileCallback())
    speaker.synthesis_completed.connect(print)
    completed = vars(speaker.synthesis_completed)
    callbacks = completed["_EventSignal__callbacks"]
    completed["_EventSignal__callbacks"] = HostileCallbacks(callbacks)
    Armed.on = True
    try:
        tree = signals_tree(speaker)
    finally:
        Armed.on = False
        completed["_EventSignal__callbacks"] = callbacks
    connected = {s.name: [str(cb) for cb in s.callbacks] for s in tree if s.created}
    assert connected == {"synthesis_started": ["HostileCallback"], "synthesis_completed": []}
    speaker.synthesis_started.disconnect_all()
    speaker.synthesis_completed.disconnect_all()


@pytest.mark.usefixtures("installed", "armed")
def test_signals_tree_reads_a_class_past_its_hostile_metaclass() -> None:
    """An SDK subclass whose metaclass raises on its name, MRO and dictionary: the whole
    tree (eight signals, the connected one with its callback)."""
    speaker = synthesizer(MetaSynthesizer)
    speaker.synthesis_started.connect(print)
    Armed.on = True
    try:
        tree = signals_tree(speaker)
    finally:
        Armed.on = False
    assert len(tree) == 8, tree
    assert [(s.name, [str(c) for c in s.callbacks]) for s in tree if s.connected] == [
        ("synthesis_started", ["print"])
    ]
    speaker.synthesis_started.disconnect_all()


class HostileHolder:
    """An object whose instance dictionary cannot be read (nor anything else, once armed)."""

    def __init__(self, held: Any) -> None:
        self.held = held

    def __getattribute__(self, name: str) -> Any:
        if Armed.on or name == "__dict__":
            raise RuntimeError(f"hostile holder: {name}")
        return object.__getattribute__(self, name)


class MetaHolder(metaclass=HostileMeta):
    """An object of a class whose metaclass is hostile, holding a handle's owner."""


#: Module globals (roots of the reference paths).
PLAIN: list = []
HELD: list = []


@pytest.fixture
def globals_cleared() -> Iterator[None]:
    try:
        yield
    finally:
        PLAIN.clear()
        HELD.clear()


@pytest.mark.usefixtures("installed", "armed", "globals_cleared")
def test_a_hostile_holder_loses_only_its_own_held_by_path() -> None:
    """Two leaks, one held through an object whose __dict__ cannot be read: the other
    group still says what holds it; the failure is counted."""
    PLAIN.append(speechsdk.audio.PushAudioInputStream())
    HELD.append(HostileHolder(speechsdk.audio.PullAudioInputStream(_Pull())))
    errors = handletrace.stats().instrumentation_errors
    report = handletrace.build_report()
    paths = {
        group.kinds[0].owner if group.kinds else "": (
            group.root_path.text if group.root_path else None
        )
        for group in report.groups
    }
    plain = paths.get("PushAudioInputStream")
    assert plain is not None and plain.startswith("module global "), paths
    assert "PLAIN" in plain, paths
    assert handletrace.stats().instrumentation_errors > errors, paths


class _Pull(speechsdk.audio.PullAudioInputStreamCallback):
    def read(self, buffer: memoryview) -> int:
        return 0


@pytest.mark.usefixtures("installed", "armed", "globals_cleared")
def test_a_handle_held_by_an_object_of_a_hostile_metaclass_is_on_record() -> None:
    """An SDK object held by an object whose metaclass raises on its MRO: snapshot() and
    build_report() list its handle (they raised)."""
    holder = MetaHolder()
    holder.stream = speechsdk.audio.PushAudioInputStream()  # type: ignore[attr-defined]
    HELD.append(holder)
    Armed.on = True
    try:
        owners = [r.owner for r in handletrace.snapshot().records]
        report = handletrace.build_report()
    finally:
        Armed.on = False
    assert "PushAudioInputStream" in owners, owners
    assert report.live == len(owners), (report.live, owners)
