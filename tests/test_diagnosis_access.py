"""Access records: who connected which signal, started or stopped what, at which line."""

from __future__ import annotations

import gc
import sys
import weakref
from typing import Any, Dict

import azure.cognitiveservices.speech as speechsdk
import pytest

import handletrace
from handletrace._sdk.access import MAX_RECORDS
from handletrace._sdk.kinds import ACCESS_METHODS
from handletrace.analysis import access_records

from . import sdk_objects


def line_of(text: str) -> int:
    with open(__file__, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if text in line and "line_of(" not in line:
                return number
    raise AssertionError(text)


def on_transcribed(evt: Any) -> None:
    """A module-level callback (its qualname is just its name)."""


def access_attributes() -> Dict[str, Any]:
    found = {}
    for module_name, path in ACCESS_METHODS:
        cls_name, attr = path.split(".")
        found[path] = vars(getattr(sys.modules[module_name], cls_name))[attr]
    return found


def test_access_table_names_real_sdk_methods() -> None:
    """Every entry of ACCESS_METHODS exists in the installed SDK."""
    assert len(access_attributes()) == len(ACCESS_METHODS)


def test_uninstall_restores_the_access_methods_by_identity() -> None:
    """The access wrappers come off exactly like the others."""
    before = access_attributes()
    handletrace.install()
    during = access_attributes()
    assert all(during[path] is not before[path] for path in before)
    handletrace.uninstall()
    after = access_attributes()
    assert all(after[path] is before[path] for path in before)


def test_connect_is_recorded_with_its_line_signal_and_callback(installed: None) -> None:
    """connect(): the calling line, the signal's name and the callable connected."""
    transcriber = sdk_objects.transcriber()
    transcriber.transcribed.connect(on_transcribed)  # connect here
    (record,) = access_records(transcriber)
    assert (record.action, record.target, record.by_sdk) == ("connect", "transcribed", False)
    assert record.site is not None
    assert (record.site.filename, record.site.lineno) == (__file__, line_of("# connect here"))
    assert record.callback is not None and record.callback.qualname == "on_transcribed"
    assert record.thread_name == "MainThread"


def test_disconnect_all_is_recorded_and_marks_the_connect_disconnected(installed: None) -> None:
    """The report says which connects were followed by a disconnect_all."""
    transcriber = sdk_objects.transcriber()
    transcriber.transcribed.connect(on_transcribed)
    transcriber.canceled.connect(on_transcribed)
    transcriber.transcribed.disconnect_all()
    assert [(r.action, r.target) for r in access_records(transcriber)] == [
        ("connect", "transcribed"),
        ("connect", "canceled"),
        ("disconnect_all", "transcribed"),
    ]
    (group,) = handletrace.build_report().groups
    assert [(a.action, a.target, a.disconnected) for a in group.access] == [
        ("connect", "transcribed", True),
        ("connect", "canceled", False),
        ("disconnect_all", "transcribed", None),
    ]
    del transcriber


def test_start_and_stop_are_recorded_once_per_user_call(installed: None) -> None:
    """A synchronous start_*() calling its *_async twin is one record, at the user's line."""
    recognizer = sdk_objects.recognizer()
    recognizer.start_continuous_recognition()  # start here
    recognizer.stop_continuous_recognition_async().get()  # stop here
    assert [
        (r.action, r.target, r.site.lineno if r.site else 0) for r in access_records(recognizer)
    ] == [
        ("start", "start_continuous_recognition", line_of("# start here")),
        ("stop", "stop_continuous_recognition_async", line_of("# stop here")),
    ]
    del recognizer


def test_the_sdks_own_connect_is_recorded_at_the_users_line(installed: None) -> None:
    """With a token credential the SDK connects a lambda itself: by_sdk, at the user's line."""

    class Credential:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise AssertionError("never called offline")

    config = speechsdk.SpeechConfig(token_credential=Credential(), endpoint="ws://127.0.0.1:9")
    recognizer = speechsdk.SpeechRecognizer(  # token recognizer here
        speech_config=config, audio_config=sdk_objects.push_audio_config()
    )
    (record,) = access_records(recognizer)
    assert (record.action, record.target, record.by_sdk) == ("connect", "token_requested", True)
    assert record.site is not None and record.site.lineno == line_of("# token recognizer here")
    assert record.callback is not None
    assert record.callback.qualname == "Recognizer._set_up_token_refresh_callback.<locals>.<lambda>"
    recognizer._Recognizer__token_requested_signal.disconnect_all()  # type: ignore[attr-defined]


def test_access_records_never_keep_the_callback_alive(installed: None) -> None:
    """Only the callable's name and line are kept."""
    transcriber = sdk_objects.transcriber()

    def callback(evt: Any) -> None:
        pass

    ref = weakref.ref(callback)
    transcriber.transcribed.connect(callback)
    transcriber.transcribed.disconnect_all()
    del callback
    gc.collect()
    assert ref() is None
    assert len(access_records(transcriber)) == 2


def test_access_records_are_capped_keeping_the_newest(installed: None) -> None:
    """At most MAX_RECORDS per object: a program that reconnects forever stays bounded."""
    transcriber = sdk_objects.transcriber()
    for _ in range(MAX_RECORDS):
        transcriber.transcribed.connect(on_transcribed)
    transcriber.transcribed.disconnect_all()
    records = access_records(transcriber)
    assert len(records) == MAX_RECORDS
    assert records[-1].action == "disconnect_all"


def test_access_records_are_not_kept_when_not_installed() -> None:
    """Without install() nothing is wrapped and nothing is recorded."""
    transcriber = sdk_objects.transcriber()
    transcriber.transcribed.connect(on_transcribed)
    assert access_records(transcriber) == ()


def test_failing_access_record_is_counted_not_raised(
    installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection (storing a record cannot fail on the real SDK): connect still works."""

    def broken(owner: Any, record: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("handletrace._instrument.access._store", broken)
    transcriber = sdk_objects.transcriber()
    transcriber.transcribed.connect(on_transcribed)
    assert transcriber.transcribed.is_connected()
    assert handletrace.stats().instrumentation_errors == 1
    transcriber.transcribed.disconnect_all()
