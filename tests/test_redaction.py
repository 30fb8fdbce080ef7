"""Redaction of displayed source lines: each masking rule on its own (reports show source
lines of creation stacks; a key or token written in one must never reach a report)."""

from __future__ import annotations

import pytest

from handletrace._core.redaction import redact_source


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
            "recognizer.authorization_token = f'***'",
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
