"""Reading the secrets the live SDK objects were given (``_sdk/secrets.py``), with the real
SDK: what a report masks by value."""

from __future__ import annotations

from typing import Any, List

import azure.cognitiveservices.speech as speechsdk
from azure.cognitiveservices.speech import dialog, translation

import handletrace
from handletrace._sdk.secrets import SECRET_PROPERTIES, sdk_secrets

from . import sdk_objects


def test_every_secret_property_is_a_property_id_of_this_sdk() -> None:
    """The secret settings are named as this SDK's PropertyId names them (also checked in
    the 1.41.1 wheel: all five are there)."""
    missing = [name for name in SECRET_PROPERTIES if not hasattr(speechsdk.PropertyId, name)]
    assert missing == [], missing


def test_keys_tokens_and_proxy_passwords_of_live_objects_are_read(installed: None) -> None:
    """Keys given positionally to the speech, translation, bot and custom-commands configs,
    a token set on a recognizer and a proxy password are all read from the live objects."""
    proxied = speechsdk.SpeechConfig("ProxiedConfigKey", "westus")
    proxied.set_proxy("proxy.invalid", 3128, "user", "ProxyPassphrase")
    recognizer = speechsdk.SpeechRecognizer(proxied, audio_config=sdk_objects.push_audio_config())
    recognizer.authorization_token = "RecognizerToken"
    kept: List[Any] = [
        recognizer,
        translation.SpeechTranslationConfig("TranslationKeyValue", "westus"),
        dialog.BotFrameworkConfig("BotFrameworkKeyValue", None, "westus"),
        dialog.CustomCommandsConfig("app", None, "CommandsTokenValue", "westus"),
    ]
    del proxied
    found = sdk_secrets(handletrace.snapshot().records)
    assert found == {
        "ProxiedConfigKey",
        "ProxyPassphrase",
        "RecognizerToken",
        "TranslationKeyValue",
        "BotFrameworkKeyValue",
        "CommandsTokenValue",
    }, found
    del kept, recognizer


def test_objects_released_in_flight_or_disposed_are_not_read(installed: None) -> None:
    """A record whose release is in flight is skipped, and a disposed object (its handles
    released under it) gives nothing and raises nothing."""
    config = speechsdk.SpeechConfig("SkippedKeyValue", "westus")
    records = handletrace.snapshot().records
    assert sdk_secrets(records) == {"SkippedKeyValue"}
    assert sdk_secrets(records, skip={r.seq for r in records}) == frozenset()
    recognizer = speechsdk.SpeechRecognizer(config, audio_config=sdk_objects.push_audio_config())
    records = handletrace.snapshot().records
    handletrace.dispose(recognizer)
    del config
    assert sdk_secrets(records) == frozenset()
    assert handletrace.stats().instrumentation_errors == 0
    del recognizer


def test_nothing_is_read_without_records() -> None:
    """No records give no secrets (nor does an SDK never imported: no object holds one)."""
    assert sdk_secrets([]) == frozenset()
