"""Redaction: each masking rule on its own. Displayed source lines (reports show source lines
of creation stacks; a key or token written in one must never reach a report), and the exact
secrets masked over a whole report value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Tuple

import pytest

from handletrace._core.redaction import SecretMask, looks_random, redact_source, redact_values


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('client = make(api_key="k3y-v4lue")', "client = make(api_key='***')"),
        ("c = Client(subscription_key='abc123')", "c = Client(subscription_key='***')"),
        ('token = "eyJhbGciOi"', "token = '***'"),
        ('connect(password=r"hunter2", user="me")', "connect(password='***', user=\"me\")"),
        ("opts(credential = b'xyz')", "opts(credential = '***')"),
        ('f(SECRET="s")', "f(SECRET='***')"),
    ],
)
def test_values_passed_as_secret_keywords_are_masked(line: str, expected: str) -> None:
    """A literal given to a keyword or variable named like a key/token/secret is masked."""
    assert redact_source(line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'speechsdk.SpeechConfig("0123abcd", "westus")',
            "speechsdk.SpeechConfig('***', '***')",
        ),
        (
            "cfg = TranslationConfig(subscription='k', region='eu')",
            "cfg = TranslationConfig(subscription='***', region='***')",
        ),
        (
            'recognizer.authorization_token = f"Bearer {t}"',
            "recognizer.authorization_token = '***'",
        ),
        ('headers["Authorization"] = "Bearer x"', "headers['***'] = '***'"),
    ],
)
def test_every_literal_on_a_config_line_is_masked(line: str, expected: str) -> None:
    """On a line that builds a speech config or sets a token, every string literal is masked."""
    assert redact_source(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "",
        "transcriber.start_transcribing_async().get()",
        'print("hello", name)',
        'log.info("keys are %d", n)',
        "segments.append(evt.result.text)",
    ],
)
def test_lines_without_secrets_are_unchanged(line: str) -> None:
    """Ordinary source lines are shown as written."""
    assert redact_source(line) == line


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'recognizer = connect(subscription_key=f"{region}-c0ffee")',
            "recognizer = connect(subscription_key='***')",
        ),
        (
            'headers = {"Ocp-Apim-Subscription-Key": "k3y", "X-Id": "abc"}',
            'headers = {"Ocp-Apim-Subscription-Key": \'***\', "X-Id": "abc"}',
        ),
        ("open_session({'token': rb'abc'})", "open_session({'token': '***'})"),
    ],
)
def test_f_strings_and_dict_literals_under_secret_names_are_masked(
    line: str, expected: str
) -> None:
    """An f-string given to a secret keyword, and a literal under a dict key named like a
    secret, are masked."""
    assert redact_source(line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'bot = dialog.BotFrameworkConfig("k3y", None, "westus")',
            "bot = dialog.BotFrameworkConfig('***', None, '***')",
        ),
        (
            'commands = dialog.CustomCommandsConfig("app", "k3y", None, "westus")',
            "commands = dialog.CustomCommandsConfig('***', '***', None, '***')",
        ),
        (
            'config = speechsdk.translation.SpeechTranslationConfig("k3y", "westus")',
            "config = speechsdk.translation.SpeechTranslationConfig('***', '***')",
        ),
        (
            'config.set_proxy("proxy", 3128, "user", "hunter2")',
            "config.set_proxy('***', 3128, '***', '***')",
        ),
        (
            'config.set_property(PropertyId.SpeechServiceConnection_Key, "k3y")',
            "config.set_property(PropertyId.SpeechServiceConnection_Key, '***')",
        ),
    ],
)
def test_positional_secrets_of_every_credential_config_are_masked(line: str, expected: str) -> None:
    """Positional keys of the dialog and translation configs, proxy credentials and secret
    properties set by id are masked with the rest of their line."""
    assert redact_source(line) == expected


RANDOM_KEY = "0f3a9c0d41e24b7d8c5e6a1f2b3c4d5e"  # the shape of a Speech subscription key
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f'r = SC("{RANDOM_KEY}", "westus")', "r = SC('***', \"westus\")"),
        (f"r = recognizer_for('{RANDOM_KEY}')", "r = recognizer_for('***')"),
        (f'r = make({{"k": "{JWT}"}})', "r = make({\"k\": '***'})"),
        (f'r = make(f"{RANDOM_KEY}")', "r = make('***')"),
    ],
)
def test_literals_that_look_like_keys_or_tokens_are_masked(line: str, expected: str) -> None:
    """A string literal that looks like a key or a token is masked whatever the line is
    (an aliased config class, a helper, a dict literal, an f-string)."""
    assert redact_source(line) == expected


@pytest.mark.parametrize(
    "text",
    [
        "recordings/2024-01-01/session_0001.wav",
        "wss://127.0.0.1:5000/speech/recognition/conversation/cognitiveservices/v1",
        "aaaaaaaaaaaaaaaa11111111",
        "SpeechServiceConnection_InitialSilenceTimeoutMs",
        "en-US",
        "the key is not here 0123456789abcdef",
    ],
)
def test_ordinary_strings_do_not_look_random(text: str) -> None:
    """Paths, URLs, dates, identifiers, repetitive strings and prose are not keys."""
    assert not looks_random(text), text


@pytest.mark.parametrize("text", [RANDOM_KEY, JWT, "FAKEKEY-7f3a9c0d41e2-SECRET"])
def test_keys_and_tokens_look_random(text: str) -> None:
    """Hex keys, JWTs and keys with a long mixed run look random."""
    assert looks_random(text), text


def test_a_secret_mask_masks_exact_values_anywhere_in_any_case() -> None:
    """Secrets of 8 characters or more are masked wherever they appear, in any case, with
    or without the blanks around them that the SDK was given."""
    mask = SecretMask(["CorrectHorseBattery", "  padded-value-here\n"])
    assert mask("SESSIONS['CorrectHorseBattery'] -> x") == "SESSIONS['***'] -> x"
    assert mask("attribute 'correcthorsebattery'") == "attribute '***'"
    assert mask("prefixCORRECTHORSEBATTERYsuffix") == "prefix***suffix"
    assert mask("key 'padded-value-here'") == "key '***'"
    assert "CorrectHorseBattery" not in repr(mask)


def test_a_short_secret_is_masked_only_as_a_whole_word() -> None:
    """A short secret (a proxy password) is masked where it stands alone, not inside words;
    a secret under 3 characters is not masked at all."""
    mask = SecretMask(["pass", "ab"])
    assert mask("dict (key 'pass')") == "dict (key '***')"
    assert mask("passenger bypass password") == "passenger bypass password"
    assert mask("ab cab") == "ab cab"


def test_overlapping_secrets_are_masked_as_one_and_unusual_text_still_works() -> None:
    """Secrets that overlap in the text are masked together; text whose lower case changes
    length (non-ASCII) is still searched, in the secrets' own case."""
    mask = SecretMask(["abcdefghij", "ghijklmnop", "PlainSecretValue"])
    assert mask("xxabcdefghijklmnopyy") == "xx***yy"
    assert mask("İstanbul PlainSecretValue") == "İstanbul ***"


def test_many_secrets_are_all_masked() -> None:
    """With more secrets than are searched one by one (a token per session), each is still
    masked wherever it appears, the longest of those starting at one place first."""
    secrets = [f"{chr(65 + i % 26)}{i:03d}-session-token" for i in range(40)]
    mask = SecretMask([*secrets, "A000-session"])
    text = " ".join(f"[{secret.lower()}]" for secret in secrets)
    assert mask(text) == " ".join(["[***]"] * len(secrets))
    assert mask("A000-session!") == "***!"


def test_redact_values_masks_every_string_of_a_nested_value() -> None:
    """Strings in dataclass fields, named tuples, tuples, lists and mapping keys and values
    are masked; a value with nothing to mask comes back as the same object."""

    class Pair(NamedTuple):
        name: str
        count: int

    @dataclass(frozen=True)
    class Inner:
        label: str
        pairs: Tuple[Pair, ...]

    @dataclass(frozen=True)
    class Outer:
        inner: Inner
        notes: List[str]
        kinds: Dict[str, int]
        other: Inner

    untouched = Inner("plain", (Pair("plain", 1),))
    value = Outer(
        Inner("a SECRETVALUE", (Pair("SECRETVALUE", 2),)),
        ["SECRETVALUE"],
        {"SECRETVALUE": 3},
        untouched,
    )
    masked = redact_values(value, SecretMask(["SECRETVALUE"]))
    assert masked == Outer(Inner("a ***", (Pair("***", 2),)), ["***"], {"***": 3}, untouched)
    assert masked.other is untouched
    assert redact_values(untouched, SecretMask(["SECRETVALUE"])) is untouched
