"""Masking what may be a secret in text handletrace shows.

Two kinds of masking, because masking by the shape of a source line cannot be complete (an
aliased import, a helper given the key, a dict literal, an attribute named after a key):

- by shape, in displayed source lines (:func:`redact_source`): values passed as keywords
  named like secrets, every literal on a line that builds a credential-bearing config, and
  any string literal that looks like a key or a token (:func:`looks_random`);
- by value, over a whole report (:class:`SecretMask`, :func:`redact_values`): the exact
  secrets the SDK was given, read from the live SDK objects when the report is built (by
  ``_sdk/secrets.py``, the layer that knows which settings are secrets), wherever they
  appear: a source line, a dict key or attribute name on a reference path, a message.

Secret values are never kept: a :class:`SecretMask` lives while one report is built.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from dataclasses import fields, is_dataclass, replace
from typing import Any, Callable, Dict, Iterable, List, Mapping, Tuple, TypeVar

__all__ = [
    "MASK",
    "SecretMask",
    "looks_random",
    "mask_random_literals",
    "redact_source",
    "redact_values",
]

#: What a masked literal or value is shown as.
MASK = "***"

_SECRET_NAME = r"(?:key|token|secret|password|passwd|subscription|credential)"
#: A string literal (with its prefix: r, b, u, f and their pairs).
_LITERAL = r"""[rbufRBUF]{0,2}("[^"\n]*"|'[^'\n]*')"""

# Values passed as these keywords or dict keys (``api_key="..."``, ``key=f"..."``,
# ``{"subscription": "..."}``, ``{"Ocp-Apim-Subscription-Key": "..."}``) are masked.
_SECRET_KEYWORD = (
    rf"""(\b\w*{_SECRET_NAME}\w*\s*=\s*|["'][\w-]*{_SECRET_NAME}[\w-]*["']\s*:\s*){_LITERAL}"""
)
# A line that builds a config taking a key or a token (SpeechConfig, SpeechTranslationConfig,
# EmbeddedSpeechConfig, BotFrameworkConfig, CustomCommandsConfig, DialogServiceConfig: their
# secrets may be positional), sets a token, a proxy or a secret property: every literal on it
# is masked. A pattern on source text (what the line says), so it lives here with the other
# source patterns; which SDK settings are secrets is stated in ``_sdk/secrets.py``.
_CONFIG_CALL = (
    r"(\w*Speech\w*Config\b|TranslationConfig|\w*Dialog\w*Config\b|BotFrameworkConfig"
    r"|CustomCommandsConfig|authorization_token|Authorization|set_proxy\b"
    r"|_Key\b|_Token\b|ProxyPassword|ModelKey)"
)
_QUOTED = r"""("[^"\n]*"|'[^'\n]*')"""
#: A run of letters and digits this long, mixing both, as in every key and token (a path, a
#: URL or a date has shorter runs, or runs of one kind).
_RANDOM_RUN = r"[A-Za-z0-9]{12,}"


class _Patterns:
    """The patterns above, compiled when first used: importing handletrace compiles none."""

    def __init__(self) -> None:
        self.secret_keyword = re.compile(_SECRET_KEYWORD, re.IGNORECASE)
        self.config_call = re.compile(_CONFIG_CALL)
        self.string_literal = re.compile(_LITERAL)
        self.quoted = re.compile(_QUOTED)
        self.random_run = re.compile(_RANDOM_RUN)


@functools.cache
def _patterns() -> _Patterns:
    return _Patterns()


# -- what looks like a key or a token ------------------------------------------------------

#: Keys and tokens are long: Speech keys are 32 hex digits (84 characters for newer ones),
#: tokens are JWTs; shorter strings are too often ordinary text.
_RANDOM_MIN_LENGTH = 16
#: Bits per character below which a string is too repetitive to be a key.
_RANDOM_ENTROPY = 3.0


def looks_random(text: str) -> bool:
    """Whether ``text`` looks like a key or a token: at least 16 characters without blanks,
    a run of 12 or more letters and digits with at least two of each, and varied (3 bits or
    more of entropy per character)."""
    if len(text) < _RANDOM_MIN_LENGTH or any(c.isspace() for c in text):
        return False
    if not any(_mixed(run) for run in _patterns().random_run.findall(text)):
        return False
    counts = Counter(text)
    entropy = -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())
    return entropy >= _RANDOM_ENTROPY


def _mixed(run: str) -> bool:
    digits = sum(c.isdigit() for c in run)
    return digits >= 2 and len(run) - digits >= 2


def _mask_if_random(match: re.Match[str]) -> str:
    literal = match.group(0)
    return f"'{MASK}'" if looks_random(match.group(1)[1:-1]) else literal


def mask_random_literals(text: str) -> str:
    """``text`` with every quoted string that looks like a key or a token masked (a literal
    in a source line, a name in ``attribute '...'`` or ``key '...'`` of a reference path)."""
    if "'" not in text and '"' not in text:
        return text
    masked = _patterns().quoted.sub(_mask_if_random, text)
    return text if masked == text else masked


def redact_source(line: str) -> str:
    """Mask string literals that may hold a secret in a displayed source line."""
    if not line:
        return line
    patterns = _patterns()
    line = patterns.secret_keyword.sub(lambda m: f"{m.group(1)}'{MASK}'", line)
    if patterns.config_call.search(line):
        return patterns.string_literal.sub(f"'{MASK}'", line)
    return patterns.string_literal.sub(_mask_if_random, line)


# -- exact values --------------------------------------------------------------------------

#: Secrets shorter than this are masked only as a whole word (a short proxy password must not
#: blank out every word containing it); at least this long, wherever they appear.
_ANYWHERE_LENGTH = 8
#: Shorter values are not masked at all: they cannot be told from ordinary words and
#: numbers (no Speech key or token is this short).
_MIN_LENGTH = 3


class SecretMask:
    """Masks the exact ``secrets`` (any case) in text, and quoted strings that look like a
    key or a token. Made for one report and dropped with it: it holds the secrets.

    Plain string search, not a regular expression: ``re`` keeps the patterns it compiles in
    a module cache, which would keep the secrets after the report. Secrets are indexed by
    their first characters, so a text is searched once whatever their number (a service
    may hold a token per session)."""

    __slots__ = ("_exact", "_lowered")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {v for secret in secrets for v in (secret, secret.strip())}
        kept = [v for v in values if len(v) >= _MIN_LENGTH]
        self._exact = _index(kept)
        self._lowered = _index({v.lower() for v in kept})

    def __repr__(self) -> str:
        return "<SecretMask>"  # never the secrets themselves

    def __call__(self, text: str) -> str:
        if self._exact:
            text = self._mask_secrets(text)
        return mask_random_literals(text)

    def _mask_secrets(self, text: str) -> str:
        searched, index = text.lower(), self._lowered
        if len(searched) != len(text):  # lower() changed a character's length: exact case
            searched, index = text, self._exact
        spans: List[Tuple[int, int]] = []
        for start in _starts(searched, index):
            for secret in index[searched[start : start + _MIN_LENGTH]]:
                end = start + len(secret)
                if searched.startswith(secret, start) and (
                    len(secret) >= _ANYWHERE_LENGTH or _whole_word(searched, start, end)
                ):
                    spans.append((start, end))
                    break  # the longest secret found here
        if not spans:
            return text
        parts = []
        shown = 0  # text before this index is done
        for start, end in sorted(spans):
            if end <= shown:
                continue  # inside a secret already masked
            if start >= shown:
                parts.append(text[shown:start])
                parts.append(MASK)
            shown = end
        parts.append(text[shown:])
        return "".join(parts)


#: Up to this many distinct secret beginnings, a text is searched for each (``str.find``);
#: beyond, it is walked once, character by character.
_FIND_EACH = 16


def _starts(text: str, index: Mapping[str, Tuple[str, ...]]) -> Iterable[int]:
    """Where in ``text`` some secret of ``index`` may begin (its first characters are there)."""
    if len(index) <= _FIND_EACH:
        starts = set()
        for head in index:
            start = text.find(head)
            while start != -1:
                starts.add(start)
                start = text.find(head, start + 1)
        return starts
    return [
        start
        for start in range(len(text) - _MIN_LENGTH + 1)
        if text[start : start + _MIN_LENGTH] in index
    ]


def _index(secrets: Iterable[str]) -> Dict[str, Tuple[str, ...]]:
    """Secrets by their first ``_MIN_LENGTH`` characters, the longest first."""
    index: Dict[str, List[str]] = {}
    for secret in sorted(secrets, key=len, reverse=True):
        index.setdefault(secret[:_MIN_LENGTH], []).append(secret)
    return {head: tuple(found) for head, found in index.items()}


def _whole_word(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (_word_char(before) or _word_char(after))


def _word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


_T = TypeVar("_T")


def redact_values(value: _T, mask: Callable[[str], str]) -> _T:
    """A copy of ``value`` with ``mask`` applied to every string in it: the fields of
    dataclasses, the items of tuples (named ones too) and lists, the keys and values of
    mappings. Other values are kept; a part with nothing masked is the same object."""
    if isinstance(value, str):
        masked = mask(value)
        return value if masked == value else masked  # type: ignore[return-value]
    cls: Any = type(value)
    names = _init_fields.get(cls)
    if names is None:
        names = _init_fields[cls] = _fields_of(cls)
    if names:
        changed: Dict[str, Any] = {}
        for name in names:
            old = getattr(value, name)
            new = redact_values(old, mask)
            if new is not old:
                changed[name] = new
        return replace(value, **changed) if changed else value  # type: ignore[type-var]
    if isinstance(value, (tuple, list)):
        items: List[Any] = [redact_values(item, mask) for item in value]
        if all(new is old for new, old in zip(items, value)):
            return value
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple
            return cls(*items)  # type: ignore[no-any-return]
        return cls(items)  # type: ignore[no-any-return]
    if isinstance(value, Mapping):
        pairs = [(redact_values(k, mask), redact_values(v, mask)) for k, v in value.items()]
        if all(k is old_k and v is old_v for (k, v), (old_k, old_v) in zip(pairs, value.items())):
            return value
        return dict(pairs)  # type: ignore[return-value]
    return value


#: The ``__init__`` fields of each dataclass type seen (empty: not a dataclass).
_init_fields: Dict[type, Tuple[str, ...]] = {}


def _fields_of(cls: type) -> Tuple[str, ...]:
    if not is_dataclass(cls):
        return ()
    return tuple(spec.name for spec in fields(cls) if spec.init)
