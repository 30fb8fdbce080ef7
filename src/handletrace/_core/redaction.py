"""Masking what may be a secret in text handletrace shows (source lines of stacks)."""

from __future__ import annotations

import re

__all__ = ["redact_source"]

# Values passed as these keywords, and string literals on a line that builds a config, are
# masked in displayed source lines: a report must never show a subscription key or token.
_SECRET_KEYWORD = re.compile(
    r"""(\b\w*(?:key|token|secret|password|subscription|credential)\w*\s*=\s*)"""
    r"""([rbuRBU]{0,2})("[^"]*"|'[^']*')""",
    re.IGNORECASE,
)
_CONFIG_CALL = re.compile(r"(SpeechConfig|TranslationConfig|authorization_token|Authorization)")
_STRING_LITERAL = re.compile(r"""([rbuRBU]{0,2})("[^"]*"|'[^']*')""")


def redact_source(line: str) -> str:
    """Mask string literals that may hold a secret in a displayed source line."""
    if not line:
        return line
    line = _SECRET_KEYWORD.sub(lambda m: f"{m.group(1)}'***'", line)
    if _CONFIG_CALL.search(line):
        line = _STRING_LITERAL.sub("'***'", line)
    return line
