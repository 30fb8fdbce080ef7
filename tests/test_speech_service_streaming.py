"""Specification of streaming recognition: the local service answers while audio streams in."""

from __future__ import annotations

import time
from typing import Any, Callable, List, Tuple

import azure.cognitiveservices.speech as speechsdk

from handletrace.testing import (
    TICKS_PER_SECOND,
    Phrase,
    Script,
    SpeechService,
    push_stream_audio_config,
)

from . import speech_fixtures
from .speech_fixtures import (
    UNTHROTTLED,
    StreamLog,
    run_streaming,
    speech_config,
    write_audio,
)

speech_service = speech_fixtures.speech_service
service = speech_fixtures.service

SECOND = TICKS_PER_SECOND
Reason = speechsdk.ResultReason


def audio_ended(service: SpeechService) -> List[bool]:
    """For each turn of the first connection, whether the SDK ended its audio."""
    return [turn.audio_ended for turn in service.connections[0].turns]


def received(service: SpeechService) -> int:
    """PCM bytes the service has received so far (0 before the first connection)."""
    connections = service.connections
    return connections[0].audio_bytes if connections else 0


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` every 10 ms until it holds or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- continuous recognition --------------------------------------------------------------


def test_finals_arrive_while_the_stream_is_still_open(service: SpeechService) -> None:
    """Each phrase is recognized once its audio (and the end silence) was received, before
    the push stream closes."""
    service.script = Script.of("one", "two")

    def during(stream: Any, log: StreamLog) -> Tuple[bool, List[bool]]:
        write_audio(stream, 3.0)  # "two" ends at 2.5 s, plus 0.5 s of silence
        return log.wait_count("recognized", 2), audio_ended(service)

    (arrived, ended_then), log = run_streaming(service, during)
    assert (arrived, ended_then) == (True, [False]), log.events
    assert log.named("recognized") == [
        ("one", 0, SECOND),
        ("two", 3 * SECOND // 2, SECOND),
    ]


def test_a_phrase_waits_for_its_end_silence(service: SpeechService) -> None:
    """Audio up to a phrase's end is not enough: its final needs end_silence more."""
    service.script = Script(
        phrases=(Phrase("late", duration=SECOND, hypotheses=("la",)),), end_silence=1.0
    )

    def during(stream: Any, log: StreamLog) -> Tuple[List[Any], List[Any]]:
        write_audio(stream, 1.5)
        log.wait_count("recognizing", 1)
        assert wait_until(lambda: received(service) == 48_000), received(service)
        before = log.named("recognized")
        write_audio(stream, 0.5)
        log.wait_count("recognized", 1)
        return before, log.named("recognized")

    (before, after), log = run_streaming(service, during)
    assert (before, after) == ([], [("late", 0, SECOND)]), log.events


def test_hypotheses_stream_as_their_part_of_the_phrase_arrives(service: SpeechService) -> None:
    """A phrase's k-th of n hypotheses goes once k/(n+1) of the phrase's audio was received."""
    service.script = Script(phrases=(Phrase("a b c", hypotheses=("a", "a b")),))

    def during(stream: Any, log: StreamLog) -> List[Any]:
        write_audio(stream, 0.4)  # past 1/3 of the 1 s phrase, not 2/3
        log.wait_count("recognizing", 1)
        return log.named("recognizing")

    seen, log = run_streaming(service, during)
    assert seen == [("a", 0, SECOND // 3)], log.events


def test_speech_start_and_end_detected_come_once_around_the_call(
    service: SpeechService,
) -> None:
    """In continuous modes speech_start_detected comes before the first phrase and
    speech_end_detected only after the audio ended (the SDK stops sending audio on it)."""
    service.script = Script.of("one", "two")

    def during(stream: Any, log: StreamLog) -> List[str]:
        write_audio(stream, 3.0)
        log.wait_count("recognized", 2)
        return log.names()

    names_while_open, log = run_streaming(service, during)
    assert names_while_open == [
        "session_started",
        "speech_start_detected",
        "recognized",
        "recognized",
    ], log.events
    assert log.names()[4:] == ["speech_end_detected", "canceled", "session_stopped"]


def test_one_turn_and_all_audio_acknowledged(service: SpeechService) -> None:
    """Phrases acknowledge the audio up to their end and EndOfDictation the rest: the SDK
    replays nothing in a continuation turn."""
    service.script = Script.of("one", "two")
    run_streaming(service, lambda stream, log: write_audio(stream, 4.0))
    turns = service.connections[0].turns
    assert [(t.continuation, t.audio_bytes, t.audio_ended) for t in turns] == [
        (False, 4 * 32_000, True)
    ]


def test_sixty_second_call_with_repeated_phrases(service: SpeechService) -> None:
    """A script with repeat=True answers a 60 s stream phrase after phrase (1.5 s apart),
    all 40 before the stream closes, in one turn; 60 s of audio time, pushed as fast as
    the SDK takes it."""
    service.script = Script.of("one", "two", "three", repeat=True)

    def during(stream: Any, log: StreamLog) -> Tuple[bool, List[bool]]:
        write_audio(stream, 60.0)
        return log.wait_count("recognized", 40, timeout=60), audio_ended(service)

    (arrived, ended_then), log = run_streaming(service, during, UNTHROTTLED)
    recognized = log.named("recognized")
    assert (arrived, ended_then) == (True, [False]), recognized[-3:]
    expected = [
        (("one", "two", "three")[index % 3], index * 3 * SECOND // 2, SECOND) for index in range(40)
    ]
    assert recognized == expected
    [turn] = service.connections[0].turns
    assert (turn.continuation, turn.audio_bytes) == (False, 60 * 32_000)


def test_a_repetition_in_progress_is_finished_when_the_audio_ends(
    service: SpeechService,
) -> None:
    """With repeat, the phrase under way when the stream closes is answered; none after it."""
    service.script = Script.of("one", "two", repeat=True)
    _, log = run_streaming(service, lambda stream, log: write_audio(stream, 5.0))
    # finals are due at 1.5, 3.0 and 4.5 s; the 4th phrase starts at 4.5 s, under way at 5 s
    assert log.named("recognized") == [
        ("one", 0, SECOND),
        ("two", 15 * SECOND // 10, SECOND),
        ("one", 3 * SECOND, SECOND),
        ("two", 45 * SECOND // 10, SECOND),
    ]


def test_the_whole_script_is_delivered_when_the_audio_ends_early(
    service: SpeechService,
) -> None:
    """Phrases the audio never reached are sent when it ends, with their scripted offsets."""
    service.script = Script.of("one", "two", "three")
    _, log = run_streaming(service, lambda stream, log: write_audio(stream, 0.5))
    assert log.named("recognized") == [
        ("one", 0, SECOND),
        ("two", 3 * SECOND // 2, SECOND),
        ("three", 3 * SECOND, SECOND),
    ]


def test_end_silence_follows_the_sdk_segmentation_timeout(service: SpeechService) -> None:
    """Speech_SegmentationSilenceTimeoutMs sets the silence between untimed phrases."""
    service.script = Script.of("one", "two")
    properties = {"SPEECH-SegmentationSilenceTimeoutMs": "200"}
    _, log = run_streaming(service, lambda stream, log: write_audio(stream, 2.5), properties)
    assert [offset for _, offset, _ in log.named("recognized")] == [0, 12 * SECOND // 10]


def test_end_silence_of_the_script_wins(service: SpeechService) -> None:
    """A script's own end_silence is used even when the SDK sends a segmentation timeout."""
    service.script = Script.of("one", "two", end_silence=0.1)
    properties = {"SPEECH-SegmentationSilenceTimeoutMs": "900"}
    _, log = run_streaming(service, lambda stream, log: write_audio(stream, 2.5), properties)
    assert [offset for _, offset, _ in log.named("recognized")] == [0, 11 * SECOND // 10]


def test_phrase_duration_sets_untimed_phrases(service: SpeechService) -> None:
    """An untimed phrase lasts phrase_duration seconds."""
    service.script = Script.of("one", "two", phrase_duration=0.25)
    _, log = run_streaming(service, lambda stream, log: write_audio(stream, 2.0))
    assert log.named("recognized") == [
        ("one", 0, SECOND // 4),
        ("two", 3 * SECOND // 4, SECOND // 4),
    ]


def test_answer_at_end_of_audio_waits_for_the_stream_to_close(service: SpeechService) -> None:
    """streaming=False answers nothing while the stream is open, then every phrase."""
    service.script = Script.of("one", "two", streaming=False)

    def during(stream: Any, log: StreamLog) -> Tuple[bool, List[str]]:
        write_audio(stream, 3.0)
        return wait_until(lambda: received(service) == 3 * 32_000), log.names()

    (saw_all, names_while_open), log = run_streaming(service, during)
    assert (saw_all, names_while_open) == (True, ["session_started"]), log.events
    assert [text for text, *_ in log.named("recognized")] == ["one", "two"]


# -- transcriber -------------------------------------------------------------------------


def test_transcriber_gets_speakers_while_the_stream_is_open(service: SpeechService) -> None:
    """A ConversationTranscriber on an open stream gets each phrase with its speaker."""
    service.script = Script(
        phrases=(Phrase("hi", speaker_id="Guest-1"), Phrase("hello", speaker_id="Guest-2"))
    )

    def during(stream: Any, log: StreamLog) -> bool:
        write_audio(stream, 3.0)
        return log.wait_count("transcribed", 2)

    arrived, log = run_streaming(service, during, transcriber=True)
    assert arrived, log.events
    assert log.named("transcribed") == [
        ("hi", 0, SECOND, "Guest-1"),
        ("hello", 3 * SECOND // 2, SECOND, "Guest-2"),
    ]


# -- recognize_once ----------------------------------------------------------------------


def recognize_twice_on_open_stream(service: SpeechService) -> List[Tuple[Any, ...]]:
    """Two recognize_once() calls on one recognizer whose push stream is never closed."""
    feed = push_stream_audio_config(b"")
    recognizer = speechsdk.SpeechRecognizer(speech_config(service), audio_config=feed.config)
    results = []
    for _ in range(2):
        future = recognizer.recognize_once_async()
        write_audio(feed.stream, 3.0)
        result = future.get()
        results.append((result.reason, result.text, result.offset, result.duration))
        del result, future
    del recognizer, feed
    return results


def test_recognize_once_returns_at_its_first_phrase(service: SpeechService) -> None:
    """recognize_once() returns its first phrase while the stream is still open."""
    service.script = Script.of("first", "second")
    first, _ = recognize_twice_on_open_stream(service)
    assert first == (Reason.RecognizedSpeech, "first", 0, SECOND)


def test_next_recognize_once_on_the_open_stream_gets_the_next_phrase(
    service: SpeechService,
) -> None:
    """A second recognize_once() is a continuation turn: the script goes on where the SDK
    resumes (after the first phrase), at the right offset of the stream."""
    service.script = Script.of("first", "second")
    _, second = recognize_twice_on_open_stream(service)
    turns = service.connections[0].turns
    assert second == (Reason.RecognizedSpeech, "second", 3 * SECOND // 2, SECOND)
    assert [(turn.mode, turn.continuation) for turn in turns] == [
        ("interactive", False),
        ("interactive", True),
    ]


def test_recognize_once_without_phrases_times_out_on_an_open_stream(
    service: SpeechService,
) -> None:
    """No phrase: NoMatch once the SDK's initial silence timeout of audio was received."""
    service.script = Script()
    feed = push_stream_audio_config(b"")
    config = speech_config(service)
    config.set_property(
        speechsdk.PropertyId.SpeechServiceConnection_InitialSilenceTimeoutMs, "1000"
    )
    recognizer = speechsdk.SpeechRecognizer(config, audio_config=feed.config)
    future = recognizer.recognize_once_async()
    write_audio(feed.stream, 3.0)
    result = future.get()
    outcome = (result.reason, result.no_match_details.reason, result.duration)
    del result, future, recognizer, feed
    assert outcome == (Reason.NoMatch, speechsdk.NoMatchReason.InitialSilenceTimeout, SECOND)
