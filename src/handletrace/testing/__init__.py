"""A local Speech service and audio helpers for testing code that uses the Speech SDK.

``SpeechService`` is a websocket server on ``127.0.0.1`` that the real
``azure-cognitiveservices-speech`` SDK connects to instead of Azure: it answers every
recognition turn while its audio streams in, and every synthesis request, as its ``Script``
says (phrases, hypotheses, speaker ids, synthesized audio, error replies, delays, slow or
abrupt teardowns) and records what it saw, secrets redacted. Importing this package starts
nothing and imports neither the SDK nor ``websockets``; they are imported when first needed.
See ``docs/speech-service.md``.

Example::

    import azure.cognitiveservices.speech as speechsdk
    from handletrace.testing import Phrase, Script, SpeechService, push_stream_audio_config
    from handletrace.testing import silence_wav

    with SpeechService(Script(phrases=(Phrase("hello world"),))) as service:
        audio = push_stream_audio_config(silence_wav(1.0))
        recognizer = speechsdk.SpeechRecognizer(
            speechsdk.SpeechConfig(host=service.host), audio_config=audio.config
        )
        audio.feed_when_connected(recognizer)
        assert recognizer.recognize_once().text == "hello world"
        del recognizer, audio  # release SDK objects before the service stops
"""

from ._audio import PushAudio, pcm_from_wav, push_stream_audio_config, silence_wav, tone_wav
from ._records import REDACTED, ConnectionRecord, TurnRecord
from ._script import (
    CLOSE_MOMENTS,
    DEFAULT_END_SILENCE,
    DEFAULT_SCRIPT,
    TICKS_PER_SECOND,
    CloseError,
    Fault,
    HandshakeError,
    Phrase,
    Script,
    ServerClose,
    StatusError,
    Synthesis,
    Teardown,
)
from ._service import SpeechService

__all__ = [
    "CLOSE_MOMENTS",
    "DEFAULT_END_SILENCE",
    "DEFAULT_SCRIPT",
    "REDACTED",
    "TICKS_PER_SECOND",
    "CloseError",
    "ConnectionRecord",
    "Fault",
    "HandshakeError",
    "Phrase",
    "PushAudio",
    "Script",
    "ServerClose",
    "SpeechService",
    "StatusError",
    "Synthesis",
    "Teardown",
    "TurnRecord",
    "pcm_from_wav",
    "push_stream_audio_config",
    "silence_wav",
    "tone_wav",
]
