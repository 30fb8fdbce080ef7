"""Known SDK leak patterns, each reproduced on the real SDK: the report names the pattern,
the right file:line and the fix; the clean counterpart (objects still alive) has no finding."""

from __future__ import annotations

import sys
import weakref
from typing import Any, Iterator, List, Tuple

import azure.cognitiveservices.speech as speechsdk
import pytest
from azure.core.credentials import AccessToken

import handletrace
from handletrace import Report
from handletrace._report.model import ReportFinding
from handletrace._sdk.signals import callbacks_of

from . import sdk_objects

ENDPOINT = "ws://127.0.0.1:9/speech"  # never contacted: nothing here connects


class FakeCredential:
    """A TokenCredential (the SDK checks the protocol: a get_token method)."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls.append(scopes)
        return AccessToken("not-a-token", 2_000_000_000)


class MyRecognizer(speechsdk.SpeechRecognizer):
    """A user subclass of an SDK recognizer (the pattern)."""


class RecognizerWrapper:
    """The clean counterpart: composition instead of inheritance."""

    def __init__(self) -> None:
        self.recognizer = sdk_objects.recognizer()


def line_of(text: str) -> int:
    """The line of this file that contains ``text`` (found by reading the file)."""
    with open(__file__, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if text in line and "line_of(" not in line:
                return number
    raise AssertionError(f"{text!r} not in {__file__}")


def findings(report: Report, pattern: str) -> List[ReportFinding]:
    return [f for g in report.groups for f in g.findings if f.pattern == pattern]


def no_findings(report: Report) -> bool:
    return bool(report.groups) and all(not g.findings for g in report.groups)


def dispose_hint(var: str) -> str:
    """What a fix adds when handletrace.dispose() exists (issue 3)."""
    if hasattr(handletrace, "dispose"):
        return f"; or release it at once with handletrace.dispose({var})"
    return ""


def token_config(credential: FakeCredential) -> speechsdk.SpeechConfig:
    return speechsdk.SpeechConfig(token_credential=credential, endpoint=ENDPOINT)


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[Any]]:
    """Exceptions raised in __del__ during the test, as (exception type, object)."""
    caught: List[Any] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda u: caught.append((u.exc_type, getattr(u, "object", None)))
    )
    yield caught


# -- 1. a user callback closure capturing its recognizer (the seed) ------------------------


def make_seed_leak() -> None:
    transcriber = sdk_objects.transcriber()

    def on_transcribed(evt: Any) -> None:  # seed callback
        print(transcriber, evt)

    transcriber.transcribed.connect(on_transcribed)  # seed connect


def test_callback_capturing_its_transcriber_is_named_with_line_and_fix(
    installed: None, no_gc: None
) -> None:
    """The seed leak: the callback's line, where it was connected, and the fix."""
    make_seed_leak()
    (finding,) = findings(handletrace.build_report(), "callback-captures-owner")
    assert (finding.filename, finding.lineno) == (__file__, line_of("# seed callback"))
    assert finding.message == (
        f"make_seed_leak.<locals>.on_transcribed ({__file__}:{line_of('# seed callback')}), "
        f"connected to ConversationTranscriber.transcribed at {__file__}:"
        f"{line_of('# seed connect')} and never disconnected, captures 'transcriber' (the "
        "ConversationTranscriber itself): ConversationTranscriber -> EventSignal (transcribed) "
        "-> callback -> ConversationTranscriber is a reference cycle, so the "
        "ConversationTranscriber and its native handles stay alive until a cyclic garbage "
        "collection"
    )
    assert finding.fix == (
        "Disconnect what you connected before dropping the ConversationTranscriber: "
        "transcriber.transcribed.disconnect_all(); or let the callback hold "
        f"weakref.ref(transcriber) instead of transcriber{dispose_hint('transcriber')}."
    )


def test_callback_holding_a_weak_reference_has_no_finding(installed: None) -> None:
    """Clean counterpart: the callback holds weakref.ref(transcriber)."""
    transcriber = sdk_objects.transcriber()
    ref = weakref.ref(transcriber)
    transcriber.transcribed.connect(lambda evt: print(ref(), evt))
    assert no_findings(handletrace.build_report())
    del transcriber


# -- 2. SpeechConfig(token_credential=...) --------------------------------------------------


def make_token_recognizer(credential: FakeCredential) -> None:
    speechsdk.SpeechRecognizer(  # token recognizer
        speech_config=token_config(credential), audio_config=sdk_objects.push_audio_config()
    )


def test_token_credential_recognizer_cycle_is_named_with_line_and_fix(
    installed: None, no_gc: None
) -> None:
    """The SDK's own token lambda keeps a dropped recognizer alive: named, line, fix."""
    credential = FakeCredential()
    make_token_recognizer(credential)
    report = handletrace.build_report()
    (finding,) = findings(report, "token-credential-cycle")
    assert (finding.filename, finding.lineno) == (__file__, line_of("# token recognizer"))
    assert finding.fix == (
        "When you are done with it, call recognizer._Recognizer__token_requested_signal"
        ".disconnect_all() (a private SDK attribute) before dropping it, or run gc.collect() "
        "after dropping it; or authenticate with auth_token=... and refresh "
        "recognizer.authorization_token yourself (no lambda is connected then)"
        f"{dispose_hint('recognizer')}."
    )
    assert [g.cycle.text for g in report.groups if g.cycle is not None] == [
        "SpeechRecognizer -> EventSignal (token_requested) -> list -> "
        "function <lambda> (closure cell 'self') -> SpeechRecognizer"
    ]
    assert credential.calls == []  # offline: the SDK never asked for a token


def test_recognizer_with_a_subscription_key_has_no_token_finding(installed: None) -> None:
    """Clean counterpart: a key-based recognizer connects no token lambda."""
    recognizer = sdk_objects.recognizer()
    assert no_findings(handletrace.build_report())
    del recognizer


# -- 3. fire-and-forget futures ---------------------------------------------------------------


def test_future_dropped_without_get_is_named_with_line_and_fix(installed: None) -> None:
    """start_transcribing_async() without .get(): its async handle is orphaned."""
    transcriber = sdk_objects.transcriber()
    transcriber.start_transcribing_async()  # fire and forget
    report = handletrace.build_report()
    (finding,) = findings(report, "fire-and-forget-future")
    line = line_of("# fire and forget")
    assert (finding.filename, finding.lineno) == (__file__, line)
    assert finding.message == (
        f"start_transcribing_async() at {__file__}:{line} returned a ResultFuture that was "
        "dropped without .get(): its native async handle (recognizer_async) is never "
        "released and keeps the ConversationTranscriber's operation and audio session alive"
    )
    assert finding.fix == (
        "Call .get() on the future (transcriber.start_transcribing_async().get()), or keep it "
        "and call .get() before dropping it; a ResultFuture has no __del__, so nothing else "
        "ever releases its handle."
    )
    (group,) = [g for g in report.groups if g.findings]
    assert group.classification == (("orphaned", 1),)
    transcriber.stop_transcribing_async().get()


def test_future_resolved_with_get_has_no_finding(installed: None) -> None:
    """Clean counterpart: .get() releases the async handle; no future is left."""
    transcriber = sdk_objects.transcriber()
    transcriber.start_transcribing_async().get()
    transcriber.stop_transcribing_async().get()
    report = handletrace.build_report()
    assert [k for g in report.groups for k, _, _ in g.kinds] == ["recognizer", "property_bag"]
    assert no_findings(report)
    del transcriber


# -- 4. a user subclass of a recognizer -------------------------------------------------------


def test_recognizer_subclass_is_named_with_class_line_and_fix(installed: None) -> None:
    """A live subclass instance: the class line, the missed base signals, the fix."""
    recognizer = MyRecognizer(
        speech_config=sdk_objects.speech_config(), audio_config=sdk_objects.push_audio_config()
    )
    (finding,) = findings(handletrace.build_report(), "recognizer-subclass-del")
    line = line_of("class MyRecognizer(")
    assert (finding.filename, finding.lineno) == (__file__, line)
    assert finding.message == (
        f"MyRecognizer ({__file__}:{line}) subclasses SpeechRecognizer, whose __del__ calls "
        "super(type(self), self).__del__(): for a subclass that calls SpeechRecognizer.__del__ "
        "again and again until RecursionError, so the base signals (session_started, "
        "session_stopped, speech_end_detected, speech_start_detected, token_requested) are "
        "never disconnected"
    )
    assert finding.fix == (
        "Do not subclass SpeechRecognizer: keep one in an attribute of your class "
        "(composition); or give MyRecognizer a __del__ that disconnects every signal itself "
        "and does not call super().__del__()."
    )
    recognizer.__class__ = speechsdk.SpeechRecognizer  # let it be finalised without recursing


def test_subclass_finaliser_really_recurses_and_skips_the_base_signals() -> None:
    """What the finding says, on the real SDK: RecursionError, base signal left connected."""
    recognizer = MyRecognizer(
        speech_config=sdk_objects.speech_config(), audio_config=sdk_objects.push_audio_config()
    )
    recognizer.recognized.connect(print)
    recognizer.session_started.connect(print)
    with pytest.raises(RecursionError):
        recognizer.__del__()
    assert callbacks_of(recognizer.recognized) == ()  # its own class's signal: disconnected
    assert callbacks_of(recognizer.session_started) == (print,)  # the base's: never
    recognizer.__class__ = speechsdk.SpeechRecognizer  # let it be finalised without recursing


def test_subclass_finaliser_raises_recursion_error_when_dropped(unraisable: List[Any]) -> None:
    """Dropping a subclass instance reports a RecursionError from SpeechRecognizer.__del__."""
    recognizer = MyRecognizer(
        speech_config=sdk_objects.speech_config(), audio_config=sdk_objects.push_audio_config()
    )
    del recognizer
    assert [(exc, obj.__qualname__) for exc, obj in unraisable] == [
        (RecursionError, "SpeechRecognizer.__del__")
    ]


def test_recognizer_held_by_composition_has_no_finding(installed: None) -> None:
    """Clean counterpart: a class holding a recognizer instead of subclassing it."""
    wrapper = RecognizerWrapper()
    assert no_findings(handletrace.build_report())
    del wrapper


# -- 5. a synthesizer built with token_credential ---------------------------------------------


def test_synthesizer_token_signal_missed_by_del_is_named_with_line_and_fix(
    installed: None, no_gc: None
) -> None:
    """SpeechSynthesizer.__del__ forgets its token signal: named, line, fix."""
    synthesizer = speechsdk.SpeechSynthesizer(  # token synthesizer
        speech_config=token_config(FakeCredential()), audio_config=None
    )
    report = handletrace.build_report()
    (finding,) = findings(report, "synthesizer-del-misses-token-signal")
    assert (finding.filename, finding.lineno) == (__file__, line_of("# token synthesizer"))
    assert finding.fix == (
        "Disconnect it yourself before dropping the synthesizer: "
        "synthesizer._SpeechSynthesizer__token_requested_signal.disconnect_all(); or "
        "authenticate with auth_token=... and refresh synthesizer.authorization_token "
        f"yourself{dispose_hint('synthesizer')}."
    )
    assert len(findings(report, "token-credential-cycle")) == 1
    synthesizer._SpeechSynthesizer__token_requested_signal.disconnect_all()  # type: ignore[attr-defined]


def test_synthesizer_finaliser_really_leaves_the_token_signal_connected(
    installed: None, no_gc: None
) -> None:
    """What the finding says, on the real SDK: after __del__ the token lambda is connected."""
    synthesizer = speechsdk.SpeechSynthesizer(
        speech_config=token_config(FakeCredential()), audio_config=None
    )
    signal = synthesizer._SpeechSynthesizer__token_requested_signal  # type: ignore[attr-defined]
    synthesizer.__del__()
    assert len(callbacks_of(signal)) == 1
    signal.disconnect_all()


def test_synthesizer_with_a_subscription_key_has_no_finding(installed: None) -> None:
    """Clean counterpart: a key-based synthesizer."""
    synthesizer = sdk_objects.synthesizer()
    assert no_findings(handletrace.build_report())
    del synthesizer
