"""The SDK's native handles by kind: the release functions handletrace wraps and the kind
each names, the async handles' kinds, and the SDK methods handletrace patches."""

from __future__ import annotations

import difflib
from typing import Any, FrozenSet, Iterable, List, Optional, Tuple

from .modules import INTEROP_MODULE, SDK_MODULE, SPEECH_MODULE

__all__ = [
    "ACCESS_METHODS",
    "ASYNC_KIND_BY_OWNER",
    "BLOCKING_CALLS",
    "CALL_ATTR",
    "KNOWN_KINDS",
    "PATCHED_METHODS",
    "RELEASE_FUNCTIONS",
    "async_kind",
    "closest_kind",
    "kind_of",
    "unknown_kinds",
    "unknown_kinds_message",
]

#: The ``_sdk_lib`` release functions the SDK passes to ``_Handle`` or calls directly.
RELEASE_FUNCTIONS: Tuple[str, ...] = (
    "audio_config_release",
    "audio_data_stream_release",
    "audio_stream_format_release",
    "audio_stream_release",
    "auto_detect_source_lang_config_release",
    "connection_async_handle_release",
    "connection_handle_release",
    "dialog_service_connector_activity_received_event_release",
    "dialog_service_connector_handle_release",
    "dialog_service_connector_turn_status_received_release",
    "grammar_handle_release",
    "grammar_phrase_handle_release",
    "keyword_recognition_model_handle_release",
    "meeting_release_handle",
    "participant_release_handle",
    "pronunciation_assessment_config_release",
    "property_bag_release",
    "recognizer_async_handle_release",
    "recognizer_event_handle_release",
    "recognizer_handle_release",
    "recognizer_result_handle_release",
    "source_lang_config_release",
    "speech_config_release",
    "speech_recognition_model_handle_release",
    "speech_synthesis_request_release",
    "speech_translation_model_handle_release",
    "speechapi_async_handle_release",
    "synthesizer_async_handle_release",
    "synthesizer_event_handle_release",
    "synthesizer_handle_release",
    "synthesizer_result_handle_release",
    "voice_info_handle_release",
)

#: (module, attribute path) of the Python methods handletrace wraps.
PATCHED_METHODS: Tuple[Tuple[str, str], ...] = (
    (INTEROP_MODULE, "_Handle.__init__"),
    (INTEROP_MODULE, "_Handle.__del__"),
    (SPEECH_MODULE, "ResultFuture.__init__"),
)

#: (module, attribute path) of SDK methods wrapped to keep access records
#: (``_instrument/access.py``): who connected which signal, and who started / stopped an
#: operation, at which line.
#: Entries this SDK version does not define are skipped.
ACCESS_METHODS: Tuple[Tuple[str, str], ...] = (
    (SPEECH_MODULE, "EventSignal.connect"),
    (SPEECH_MODULE, "EventSignal.disconnect_all"),
    (SPEECH_MODULE, "Recognizer.start_continuous_recognition"),
    (SPEECH_MODULE, "Recognizer.stop_continuous_recognition"),
    (SPEECH_MODULE, "Recognizer.start_keyword_recognition"),
    (SPEECH_MODULE, "Recognizer.stop_keyword_recognition"),
    (SPEECH_MODULE, "SpeechRecognizer.start_continuous_recognition_async"),
    (SPEECH_MODULE, "SpeechRecognizer.stop_continuous_recognition_async"),
    (SPEECH_MODULE, "SpeechRecognizer.start_keyword_recognition_async"),
    (SPEECH_MODULE, "SpeechRecognizer.stop_keyword_recognition_async"),
    (SPEECH_MODULE, "SourceLanguageRecognizer.start_continuous_recognition_async"),
    (SPEECH_MODULE, "SourceLanguageRecognizer.stop_continuous_recognition_async"),
    (SPEECH_MODULE, "KeywordRecognizer.stop_recognition_async"),
    (SPEECH_MODULE, "SpeechSynthesizer.start_speaking"),
    (SPEECH_MODULE, "SpeechSynthesizer.start_speaking_text"),
    (SPEECH_MODULE, "SpeechSynthesizer.start_speaking_ssml"),
    (SPEECH_MODULE, "SpeechSynthesizer.start_speaking_text_async"),
    (SPEECH_MODULE, "SpeechSynthesizer.start_speaking_ssml_async"),
    (SPEECH_MODULE, "SpeechSynthesizer.stop_speaking"),
    (SPEECH_MODULE, "SpeechSynthesizer.stop_speaking_async"),
    (SDK_MODULE + ".transcription", "ConversationTranscriber.start_transcribing_async"),
    (SDK_MODULE + ".transcription", "ConversationTranscriber.stop_transcribing_async"),
    (SDK_MODULE + ".transcription", "MeetingTranscriber.start_transcribing_async"),
    (SDK_MODULE + ".transcription", "MeetingTranscriber.stop_transcribing_async"),
    (SDK_MODULE + ".translation", "TranslationRecognizer.start_continuous_recognition_async"),
    (SDK_MODULE + ".translation", "TranslationRecognizer.stop_continuous_recognition_async"),
    (SDK_MODULE + ".dialog", "DialogServiceConnector.start_keyword_recognition"),
    (SDK_MODULE + ".dialog", "DialogServiceConnector.start_keyword_recognition_async"),
    (SDK_MODULE + ".dialog", "DialogServiceConnector.stop_keyword_recognition"),
    (SDK_MODULE + ".dialog", "DialogServiceConnector.stop_keyword_recognition_async"),
    (SDK_MODULE + ".dialog", "DialogServiceConnector.stop_listening"),
    (SDK_MODULE + ".dialog", "DialogServiceConnector.stop_listening_async"),
)

#: (module, attribute path) of the SDK calls that block their thread until the native side
#: answers: timed when made on an event-loop thread (``_instrument/blocking.py``). Every
#: synchronous SDK method other than these (``recognize_once()``,
#: ``stop_continuous_recognition()``, ``speak_text()``...) waits in ``ResultFuture.get()``:
#: the wrapper of ``get()`` names the method it was called from.
BLOCKING_CALLS: Tuple[Tuple[str, str], ...] = (
    (SPEECH_MODULE, "ResultFuture.get"),
    (SPEECH_MODULE, "SpeechSynthesizer.start_speaking"),
    (SPEECH_MODULE, "Connection.open"),
    (SPEECH_MODULE, "Connection.close"),
)
#: Attribute on a ``ResultFuture`` naming the call that made it
#: (``"SpeechRecognizer.stop_continuous_recognition_async"``), when an SDK object did.
CALL_ATTR = "_handletrace_call"

_SUFFIXES = ("_release_handle", "_handle_release", "_release")


def kind_of(release_function_name: str) -> str:
    """The kind a release function names: ``recognizer_handle_release`` -> ``recognizer``."""
    for suffix in _SUFFIXES:
        if release_function_name.endswith(suffix):
            return release_function_name[: -len(suffix)].rstrip("_")
    return release_function_name



# Async handles belong to whatever started the operation; the release function tells the rest.
ASYNC_KIND_BY_OWNER = {
    "SpeechSynthesizer": "synthesizer_async",
    "Connection": "connection_async",
}
#: An async handle of any other owner (a recognizer, transcriber, connector...).
DEFAULT_ASYNC_KIND = "recognizer_async"


def async_kind(owner: Any) -> str:
    """The kind of the async handle of an operation that ``owner`` started."""
    for cls in type(owner).__mro__:
        kind = ASYNC_KIND_BY_OWNER.get(cls.__name__)
        if kind is not None:
            return kind
    return DEFAULT_ASYNC_KIND


#: Every kind handletrace can track.
KNOWN_KINDS: FrozenSet[str] = frozenset(
    {kind_of(name) for name in RELEASE_FUNCTIONS}
    | set(ASYNC_KIND_BY_OWNER.values())
    | {DEFAULT_ASYNC_KIND}
)


def unknown_kinds(names: Iterable[str]) -> List[str]:
    """The names in ``names`` that are not kinds (sorted)."""
    return sorted(set(names) - KNOWN_KINDS)


def closest_kind(name: str) -> Optional[str]:
    """The known kind closest to a misspelled ``name``, if one is close."""
    matches = difflib.get_close_matches(name, sorted(KNOWN_KINDS), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_kinds_message(names: Iterable[str]) -> Optional[str]:
    """One line naming the ``names`` that are not kinds, the closest kind to each, and the
    known kinds; ``None`` when every name is a kind.

    The one wording for ``install(kinds=)``, ``HANDLETRACE_KINDS``, ``handletrace run
    --kinds`` and the pytest plugin's ``allow``: a misspelt kind is refused everywhere, since
    tracking or allowing a kind that does not exist would look like an all-clear."""
    unknown = unknown_kinds(names)
    if not unknown:
        return None
    described = []
    for name in unknown:
        closest = closest_kind(name)
        described.append(f"{name!r} (did you mean {closest!r}?)" if closest else repr(name))
    noun = "kind" if len(unknown) == 1 else "kinds"
    return (
        f"unknown handle {noun} {', '.join(described)}; "
        f"known kinds: {', '.join(sorted(KNOWN_KINDS))}"
    )
