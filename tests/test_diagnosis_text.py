"""What the diagnosis says about the objects on a path: attributes the application set on
SDK objects, application subclasses of SDK callback interfaces, threads, and the events and
results the SDK made on its callback threads."""

from __future__ import annotations

import gc
import io
import threading
from typing import Any, Iterator, List, Optional

import azure.cognitiveservices.speech as speechsdk
import pytest
from azure.cognitiveservices.speech import audio, transcription

import handletrace
from handletrace._analysis.diagnosis import HandleDiagnosis
from handletrace._sdk.attributes import is_sdk_attribute

from . import sdk_objects, speech_fixtures

HELD: List[Any] = []  # a module global: the root of the paths drawn below

speech_service = speech_fixtures.speech_service
service = speech_fixtures.service


@pytest.fixture(autouse=True)
def _release_held() -> Iterator[None]:
    yield
    HELD.clear()


def diagnosis_of(kind: str, owner: str) -> HandleDiagnosis:
    """The diagnosis of the one live handle of ``kind`` whose owner is ``owner``."""
    records = [r for r in handletrace.snapshot().records if (r.kind, r.owner) == (kind, owner)]
    assert len(records) == 1, [(r.kind, r.owner) for r in handletrace.snapshot().records]
    found = handletrace.diagnose().get(records[0].seq)
    assert found is not None
    return found


# -- attributes the application set on an SDK object (#14.12 a) ---------------------------------


class Job:
    """Keeps its recognizer, and the recognizer keeps its job (an application attribute)."""

    def __init__(self) -> None:
        self.recognizer = sdk_objects.recognizer()
        self.recognizer.job = self  # type: ignore[attr-defined]


def test_attribute_the_application_set_on_an_sdk_object_is_named_in_the_cycle(
    installed: None, no_gc: None
) -> None:
    """recognizer.job = self: the cycle says 'attribute job' (only the SDK's own are hidden)."""
    Job()
    cycle = diagnosis_of("recognizer", "SpeechRecognizer").cycle
    assert cycle is not None
    assert cycle.text == (
        "SpeechRecognizer (attribute 'job') -> Job (attribute 'recognizer') -> SpeechRecognizer"
    )


def test_every_attribute_the_sdk_sets_is_the_sdks_and_an_added_one_is_not() -> None:
    """The rule read from the SDK's code covers what its constructors set, nothing else."""
    seen = {}
    for name, build in sdk_objects.OFFLINE_BUILDERS.items():
        obj = build()
        if hasattr(type(obj), "canceled"):
            assert obj.canceled is not None  # a lazily created signal, stored by its property
        seen[name] = [a for a in vars(obj) if not is_sdk_attribute(type(obj), a)]
        obj.job = None
        assert not is_sdk_attribute(type(obj), "job"), name
        del obj
    assert seen == dict.fromkeys(sdk_objects.OFFLINE_BUILDERS, [])


def test_a_user_subclass_keeps_the_sdk_attributes_hidden_and_shows_its_own() -> None:
    """A subclass of an SDK class: the SDK's attributes are still the SDK's, its own are not."""

    class Config(speechsdk.SpeechConfig):
        def __init__(self) -> None:
            super().__init__(subscription=sdk_objects.FAKE_KEY, region="westus")
            self.tenant = "contoso"

    obj = Config()
    flags = {a: is_sdk_attribute(type(obj), a) for a in vars(obj)}
    assert flags == {
        "_SpeechConfig__handle": True,
        "_SpeechConfig__key_credential": True,
        "_SpeechConfig__token_credential": True,
        "_properties": True,
        "tenant": False,
    }
    del obj


# -- an application subclass of an SDK callback interface (#14.12 b) ---------------------------


class Reader(audio.PullAudioInputStreamCallback):
    """An application's pull-stream callback that keeps the recognizer it feeds."""

    def __init__(self) -> None:
        super().__init__()
        self.recognizer: Optional[speechsdk.SpeechRecognizer] = None

    def read(self, buffer: memoryview) -> int:
        return 0

    def close(self) -> None:
        pass


def test_stream_callback_subclass_holding_its_recognizer_is_not_its_parent(
    installed: None,
) -> None:
    """The recognizer stays the subject: its signals, and the path through the callback."""
    reader = Reader()
    recognizer = speechsdk.SpeechRecognizer(
        speech_config=sdk_objects.speech_config(),
        audio_config=audio.AudioConfig(stream=audio.PullAudioInputStream(reader)),
    )
    recognizer.canceled.connect(print)
    reader.recognizer = recognizer
    HELD.append(reader)
    del recognizer, reader
    found = diagnosis_of("recognizer", "SpeechRecognizer")
    assert found.subject == "SpeechRecognizer"
    assert [(s.name, s.connected) for s in found.signals if s.created] == [("canceled", True)]
    assert found.path is not None
    assert found.path.text == (
        f"module global {__name__}.HELD: list -> Reader (attribute 'recognizer') "
        "-> SpeechRecognizer"
    )
    HELD[0].recognizer.canceled.disconnect_all()



def test_stream_callback_subclass_is_not_the_recognizers_parent_in_the_snapshot(
    installed: None,
) -> None:
    """A record's parent is an SDK object holding its owner in one of the SDK's attributes:
    the application's callback keeping the recognizer in ``self.recognizer`` is not one,
    the recognizer keeping its PropertyCollection still is."""
    reader = Reader()
    recognizer = speechsdk.SpeechRecognizer(
        speech_config=sdk_objects.speech_config(),
        audio_config=audio.AudioConfig(stream=audio.PullAudioInputStream(reader)),
    )
    reader.recognizer = recognizer
    seen = {(r.kind, r.owner, r.parent) for r in handletrace.snapshot()}
    assert ("recognizer", "SpeechRecognizer", None) in seen, seen
    assert ("property_bag", "PropertyCollection", "SpeechRecognizer") in seen, seen
    del recognizer, reader


# -- threads on a path (#14.12 c) ----------------------------------------------------------------


def serve(recognizer: Any) -> None:
    pass


def test_thread_on_a_path_is_named_with_its_target(installed: None) -> None:
    """A Thread on a path: "Thread 'worker-3' (target serve)"."""
    HELD.append(threading.Thread(target=serve, args=(sdk_objects.recognizer(),), name="worker-3"))
    path = diagnosis_of("recognizer", "SpeechRecognizer").path
    assert path is not None
    assert path.text == (
        f"module global {__name__}.HELD: list -> Thread 'worker-3' (target serve) "
        "(attribute '_args') -> tuple -> SpeechRecognizer"
    )


# -- events and results made on the SDK's callback threads (#14.12 d) ----------------------------


class Transcription:
    """A transcription whose ``on_transcribed`` keeps what the SDK delivers."""

    def __init__(self, host: str, keep: str) -> None:
        self.feed = speech_fixtures.push_stream_audio_config(speech_fixtures.ONE_SECOND)
        self.transcriber = transcription.ConversationTranscriber(
            speechsdk.SpeechConfig(host=host), audio_config=self.feed.config
        )
        self.keep = keep
        self.kept: List[Any] = []
        self.stopped = threading.Event()
        self.transcriber.transcribed.connect(self.on_transcribed)
        self.transcriber.session_stopped.connect(self.on_stopped)

    def on_transcribed(self, evt: Any) -> None:
        self.kept.append(evt if self.keep == "event" else evt.result)

    def on_stopped(self, evt: Any) -> None:
        self.stopped.set()

    def run(self) -> None:
        self.transcriber.start_transcribing_async().get()
        self.feed.feed()
        assert self.stopped.wait(speech_fixtures.SESSION_TIMEOUT)
        self.transcriber.stop_transcribing_async().get()

    def close(self) -> List[Any]:
        """Release the transcriber and its audio; return what was kept."""
        handletrace.dispose(self.transcriber)
        handletrace.dispose(self.feed.config)
        kept, self.kept = self.kept, []
        return kept


ON_TRANSCRIBED = Transcription.on_transcribed.__code__
DELIVERED = (
    f"delivered to Transcription.on_transcribed ({ON_TRANSCRIBED.co_filename}:"
    f"{ON_TRANSCRIBED.co_firstlineno}) by ConversationTranscriber.transcribed"
)


@pytest.mark.parametrize(
    ("keep", "kind", "owner"),
    [
        ("event", "recognizer_event", "ConversationTranscriptionEventArgs"),
        ("result", "recognizer_result", "ConversationTranscriptionResult"),
    ],
)
def test_kept_event_or_result_names_the_signal_and_callback_it_was_delivered_to(
    installed: None, service: Any, keep: str, kind: str, owner: str
) -> None:
    """No application line in its creation stack: the diagnosis names the signal and the
    callback connected to it instead."""
    app = Transcription(service.host, keep)
    app.run()
    try:
        assert len(app.kept) == 1, app.kept
        found = diagnosis_of(kind, owner)
        assert found.delivery is not None
        assert found.delivery.text == DELIVERED
    finally:
        app.close()
        del app
        gc.collect()


def test_kept_result_whose_transcriber_is_gone_names_the_signals_that_deliver_it(
    installed: None, service: Any
) -> None:
    """With the transcriber disposed, no callback is known: the signals are still named."""
    app = Transcription(service.host, "result")
    app.run()
    HELD.extend(app.close())
    del app
    gc.collect()
    found = diagnosis_of("recognizer_result", "ConversationTranscriptionResult")
    assert found.delivery is not None
    assert found.delivery.text == (
        "delivered by ConversationTranscriber.transcribing or "
        "ConversationTranscriber.transcribed or ConversationTranscriber.canceled "
        "(no live object has it connected any more)"
    )


def test_handle_made_by_the_application_has_no_delivery(installed: None) -> None:
    """Objects made by the application's own calls have a creation line, not a delivery."""
    HELD.append(sdk_objects.transcriber())
    assert diagnosis_of("recognizer", "ConversationTranscriber").delivery is None


def test_text_and_json_report_say_where_a_kept_event_came_from(
    installed: None, service: Any
) -> None:
    """A group with no application line reads "on an SDK callback thread, delivered to ..."
    in the text report (not "no creation stack captured"), and JSON carries it."""
    app = Transcription(service.host, "event")
    app.run()
    try:
        snapshot = handletrace.snapshot().filter(kinds=["recognizer_event"])
        out = io.StringIO()
        data = handletrace.report(out, snapshot=snapshot)
        (group,) = data.groups
        assert group.delivered == DELIVERED, group
        assert f"created on an SDK callback thread, {DELIVERED}" in out.getvalue(), out.getvalue()
        assert data.to_dict()["groups"][0]["delivered"] == DELIVERED
        assert handletrace.Report.from_dict(data.to_dict()).groups[0].delivered == DELIVERED
    finally:
        app.close()
        del app
        gc.collect()


class Holder:
    """An application object an attribute of which is set with setattr()."""


def test_an_attribute_name_that_looks_like_a_key_is_not_shown_in_a_path(
    installed: None,
) -> None:
    """setattr() takes any string: a name that looks like a key or token (16+ characters,
    4+ digits) is 'an attribute' in a reference path, a plain name is shown (#18.6)."""
    secret_name = "k3y7a9b2c4d6e8f0a1b2"
    for name in (secret_name, "recognizer"):
        holder = Holder()
        recognizer = sdk_objects.recognizer()
        setattr(holder, name, recognizer)
        HELD.append(holder)
        del recognizer, holder
    diagnosis = handletrace.diagnose()
    paths = [d.path.text for d in diagnosis.handles.values() if d.path is not None]
    print(paths)
    assert not [p for p in paths if secret_name in p], paths
    assert [p for p in paths if "Holder (an attribute) -> SpeechRecognizer" in p], paths
    assert [p for p in paths if "Holder (attribute 'recognizer') -> SpeechRecognizer" in p], paths
