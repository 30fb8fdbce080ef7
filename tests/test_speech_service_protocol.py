"""Specification of the service's pure parts: streaming timelines, synthesis audio and
messages, close-frame scanning, and the new value types' validation (no SDK, no sockets)."""

from __future__ import annotations

import struct
import warnings
from typing import Any, List, Optional

import pytest

from handletrace.testing import (
    TICKS_PER_SECOND,
    Phrase,
    Script,
    ServerClose,
    Synthesis,
    Teardown,
)
from handletrace.testing._protocol import (
    TurnSettings,
    continuation_origin,
    phrase_cues,
    place_phrases,
    resolve_end_silence,
    turn_settings,
)
from handletrace.testing._synthesis import (
    OutputFormat,
    format_audio_message,
    metadata_options,
    output_format,
    ssml_text,
    synthesis_audio,
    synthesis_close,
    word_boundaries,
)
from handletrace.testing._teardown import CloseFrameScanner

SECOND = TICKS_PER_SECOND
HALF = SECOND // 2


def placed(script: Script, silence: int = HALF, origin: int = 0, count: int = 10) -> List[Any]:
    """(text, offset, duration, owed) of the first ``count`` placed phrases."""
    result = []
    for phrase in place_phrases(script, silence, origin):
        result.append((phrase.phrase.text, phrase.offset, phrase.duration, phrase.owed))
        if len(result) == count:
            break
    return result


# -- streaming timeline ------------------------------------------------------------------


def test_untimed_phrases_follow_each_other_after_the_end_silence() -> None:
    """Untimed phrases last phrase_duration and start end_silence after the previous one."""
    assert placed(Script.of("a", "b", "c")) == [
        ("a", 0, SECOND, True),
        ("b", 3 * HALF, SECOND, True),
        ("c", 6 * HALF, SECOND, True),
    ]


def test_explicit_timing_is_kept() -> None:
    """A phrase's own offset and duration are used; untimed ones follow it."""
    script = Script(phrases=(Phrase("a", offset=SECOND, duration=HALF), Phrase("b")))
    assert placed(script) == [("a", SECOND, HALF, True), ("b", 2 * SECOND, SECOND, True)]


def test_repetitions_start_after_the_pass_and_are_not_owed() -> None:
    """With repeat, pass k starts end_silence after pass k-1 ended; only pass 0 is owed."""
    assert placed(Script.of("a", "b", repeat=True), count=4) == [
        ("a", 0, SECOND, True),
        ("b", 3 * HALF, SECOND, True),
        ("a", 6 * HALF, SECOND, False),
        ("b", 9 * HALF, SECOND, False),
    ]


def test_a_continuation_gets_the_phrases_from_its_origin_on() -> None:
    """A continuation resuming at 1 s gets "b" (at 1.5 s) at offset 0.5 s of its own audio."""
    assert placed(Script.of("a", "b"), origin=SECOND) == [("b", HALF, SECOND, True)]


def test_without_repeat_the_timeline_ends() -> None:
    """Without repeat, the phrases are placed once."""
    assert len(placed(Script.of("a", "b"), count=10)) == 2


def test_cues_wait_for_their_part_of_the_audio() -> None:
    """startDetected waits for one tick past the offset, the k-th of n hypotheses for
    k/(n+1) of the phrase, endDetected and the phrase for its end plus the silence."""
    [phrase] = place_phrases(Script(phrases=(Phrase("a b", hypotheses=("a",)),)), HALF)
    cues = phrase_cues(phrase, HALF)
    assert [(cue.at, cue.reply.path, cue.final) for cue in cues] == [
        (1, "speech.startDetected", False),
        (HALF, "speech.hypothesis", False),
        (3 * HALF, "speech.endDetected", True),
        (3 * HALF, "speech.phrase", True),
    ]


def test_turn_settings_come_from_speech_context_and_query() -> None:
    """Segmentation and initial silence timeouts, in ticks, from what the SDK sent."""
    context = {
        "phraseDetection": {
            "initialSilenceTimeout": 3000,
            "CONVERSATION": {"segmentation": {"segmentationSilenceTimeoutMs": 800}},
        }
    }
    assert turn_settings(context) == TurnSettings(8 * SECOND // 10, 3 * SECOND)
    assert turn_settings({}, (("initialSilenceTimeoutMs", "2000"),)) == TurnSettings(
        None, 2 * SECOND
    )


def test_end_silence_order_is_script_then_sdk_then_default() -> None:
    """The script's end_silence wins over the SDK's, which wins over 0.5 s."""
    sdk = TurnSettings(end_silence=SECOND)
    assert [
        resolve_end_silence(Script(end_silence=0.1), sdk),
        resolve_end_silence(Script(), sdk),
        resolve_end_silence(Script(), TurnSettings()),
    ] == [SECOND // 10, SECOND, HALF]


def test_continuation_origin_is_read_from_the_context() -> None:
    """The SDK's resume offset (ticks, as a string) of stream 1; 0 without a continuation."""
    context = {"continuation": {"audio": {"streams": {"1": {"offset": "10000000"}}}}}
    assert (continuation_origin(context), continuation_origin({})) == (SECOND, 0)


# -- synthesis ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("raw-16khz-16bit-mono-pcm", OutputFormat("raw-16khz-16bit-mono-pcm", 16_000, "pcm")),
        ("raw-44100hz-16bit-mono-pcm", OutputFormat("raw-44100hz-16bit-mono-pcm", 44_100, "pcm")),
        ("raw-8khz-8bit-mono-mulaw", OutputFormat("raw-8khz-8bit-mono-mulaw", 8_000, "mulaw")),
        ("audio-16khz-32kbitrate-mono-mp3", None),
        ("ogg-24khz-16bit-mono-opus", None),
        ("raw-16khz-8bit-mono-pcm", None),
    ],
)
def test_output_formats(name: str, expected: Optional[OutputFormat]) -> None:
    """Raw PCM and G.711 formats are made; compressed ones are not."""
    assert output_format(name) == expected


def g711_reference(encoding: str, pcm: bytes) -> Optional[bytes]:
    """``audioop``'s G.711 encoding of ``pcm``, or None where audioop is gone (3.13+)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioop
    except ImportError:
        return None
    convert = audioop.lin2ulaw if encoding == "mulaw" else audioop.lin2alaw
    return bytes(convert(pcm, 2))


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_g711_matches_audioop(encoding: str) -> None:
    """The service's mu-law and A-law tone is what audioop makes of the same PCM."""
    synthesis = Synthesis(amplitude=0.8)
    pcm = synthesis_audio(OutputFormat("pcm", 8_000, "pcm"), 1.0, synthesis)
    expected = g711_reference(encoding, pcm)
    if expected is None:
        pytest.skip("audioop is not available to compare with")
    assert synthesis_audio(OutputFormat(encoding, 8_000, encoding), 1.0, synthesis) == expected


def test_audio_is_whole_samples_of_the_length_asked() -> None:
    """0.25 s at 22.05 kHz 16-bit is 5513 samples (rounded), 11026 bytes."""
    fmt = OutputFormat("raw-22050hz-16bit-mono-pcm", 22_050, "pcm")
    assert len(synthesis_audio(fmt, 0.25, Synthesis())) == 2 * round(0.25 * 22_050)


def test_ssml_text_is_the_character_data() -> None:
    """Markup goes, text stays, whitespace collapses."""
    ssml = "<speak><voice name='x'>Hello <break/>  big\n world</voice></speak>"
    assert ssml_text(ssml) == "Hello big world"


def test_ssml_that_is_not_xml_is_refused() -> None:
    """Malformed SSML raises ValueError (the service closes with 1007)."""
    with pytest.raises(ValueError, match="invalid SSML"):
        ssml_text("<speak>")


def test_word_boundaries_strip_punctuation() -> None:
    """Each word gets word_seconds of audio; punctuation around it is not part of it."""
    boundaries = word_boundaries('"Hi," she said.', Synthesis(word_seconds=0.5))
    assert [(b.text, b.offset, b.duration) for b in boundaries] == [
        ("Hi", 0, HALF),
        ("she", HALF, HALF),
        ("said", SECOND, HALF),
    ]


def test_metadata_options_read_the_context() -> None:
    """Output format and the metadata the SDK asked for."""
    context = {
        "synthesis": {
            "audio": {
                "outputFormat": "raw-24khz-16bit-mono-pcm",
                "metadataOptions": {"wordBoundaryEnabled": True, "sessionEndEnabled": False},
            }
        }
    }
    request = metadata_options(context)
    assert (request.output_format, request.word_boundaries, request.session_end) == (
        "raw-24khz-16bit-mono-pcm",
        True,
        False,
    )


def test_audio_message_layout() -> None:
    """2-byte big-endian header length, case-sensitive headers, then the audio."""
    message = format_audio_message("r1", b"\x01\x02")
    (length,) = struct.unpack(">H", message[:2])
    assert (
        message[2 : 2 + length] == b"X-RequestId:r1\r\nContent-Type:audio/x-wav\r\nPath:audio\r\n"
    )
    assert message[2 + length :] == b"\x01\x02"


def test_synthesis_close_codes() -> None:
    """Faults become the close codes the SDK maps to the same error."""
    from handletrace.testing import CloseError, HandshakeError, StatusError

    assert [
        synthesis_close(CloseError(1011, "x")),
        synthesis_close(StatusError("BadRequest")),
        synthesis_close(StatusError("TooManyRequests")),
        synthesis_close(StatusError("Forbidden")),
        synthesis_close(HandshakeError(500)),
        synthesis_close(None),
    ] == [
        (1011, "x"),
        (1007, "BadRequest"),
        (4429, "TooManyRequests"),
        (1011, "Forbidden"),
        None,
        None,
    ]


# -- close frames ------------------------------------------------------------------------


def frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (mask of zeros, so the payload stays readable)."""
    size = len(payload)
    if size < 126:
        head = struct.pack(">BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack(">BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + bytes(4) + payload


def test_scanner_finds_the_close_after_frames_of_every_length() -> None:
    """Short, 16-bit and 64-bit length frames are skipped; the close frame is found."""
    data = frame(1, b"x" * 5) + frame(2, b"y" * 3316) + frame(2, b"z" * 70_000)
    close = frame(8, struct.pack(">H", 1000))
    assert CloseFrameScanner().feed(data + close) == len(data)


def test_scanner_follows_frames_split_anywhere() -> None:
    """Fed one byte at a time, the scanner reports the close once its 6-byte header is
    complete (the header's first bytes went on already: no one acts on half a frame)."""
    data = frame(2, b"a" * 300) + frame(8, b"\x03\xe8")
    scanner = CloseFrameScanner()
    found = [index for index, byte in enumerate(data) if scanner.feed(bytes([byte])) == 0]
    assert found[0] == len(frame(2, b"a" * 300)) + 5


def test_scanner_without_close_returns_none() -> None:
    """Data frames only: no close found."""
    assert CloseFrameScanner().feed(frame(2, b"audio") * 3) is None


# -- value types -------------------------------------------------------------------------


def test_repeat_needs_phrases_that_take_time() -> None:
    """Repeating zero-length phrases with no silence would never end."""
    with pytest.raises(ValueError, match="repeat needs phrases"):
        Script(phrases=(Phrase("a", duration=0),), repeat=True, end_silence=0)


def test_teardown_rejects_infinite_delays() -> None:
    """'Never' is answer_end/answer_close=False, not an infinite delay."""
    with pytest.raises(ValueError, match="answer_close=False"):
        Teardown(close_delay=float("inf"))


def test_server_close_rejects_an_unknown_moment() -> None:
    """The moment must be one of CLOSE_MOMENTS."""
    with pytest.raises(ValueError, match="at must be one of"):
        ServerClose(at="later")


def test_synthesis_rejects_unknown_audio() -> None:
    """Only a tone or silence is made."""
    with pytest.raises(ValueError, match="'tone' or 'silence'"):
        Synthesis(audio="noise")


def test_script_of_passes_options() -> None:
    """Script.of(texts, **options) is a script of plain phrases with those options."""
    assert Script.of("a", repeat=True) == Script(phrases=(Phrase("a"),), repeat=True)
