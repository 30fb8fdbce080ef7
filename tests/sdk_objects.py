"""Builders for real SDK objects that can be created offline, shared by the tests."""

from __future__ import annotations

from typing import Any, Callable, List

import azure.cognitiveservices.speech as speechsdk
from azure.cognitiveservices.speech import audio, transcription, translation

FAKE_KEY = "FAKEKEY-0123456789abcdef-SECRET"
UNREACHABLE_HOST = "ws://127.0.0.1:9"  # discard port: connection refused at once


def speech_config() -> speechsdk.SpeechConfig:
    return speechsdk.SpeechConfig(subscription=FAKE_KEY, region="westus")


def push_audio_config() -> audio.AudioConfig:
    return audio.AudioConfig(stream=audio.PushAudioInputStream())


def transcriber() -> transcription.ConversationTranscriber:
    return transcription.ConversationTranscriber(
        speech_config=speech_config(), audio_config=push_audio_config()
    )


def recognizer() -> speechsdk.SpeechRecognizer:
    return speechsdk.SpeechRecognizer(
        speech_config=speech_config(), audio_config=push_audio_config()
    )


def make_leaky_transcriber(segments: List[Any]) -> None:
    """The seed's leak: a callback closure that captures its own transcriber."""
    transcriber_ = transcriber()

    def on_transcribed(evt: Any) -> None:
        segments.append((transcriber_, evt))

    transcriber_.transcribed.connect(on_transcribed)


def translation_recognizer() -> translation.TranslationRecognizer:
    config = translation.SpeechTranslationConfig(subscription=FAKE_KEY, region="westus")
    config.speech_recognition_language = "en-US"
    config.add_target_language("de")
    return translation.TranslationRecognizer(
        translation_config=config, audio_config=push_audio_config()
    )


def synthesizer() -> speechsdk.SpeechSynthesizer:
    return speechsdk.SpeechSynthesizer(speech_config=speech_config(), audio_config=None)


OFFLINE_BUILDERS: dict[str, Callable[[], Any]] = {
    "speech_config": speech_config,
    "audio_config": push_audio_config,
    "transcriber": transcriber,
    "recognizer": recognizer,
    "translation_recognizer": translation_recognizer,
    "synthesizer": synthesizer,
}
