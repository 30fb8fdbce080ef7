"""Terminal conventions: colour only on a TTY with ``NO_COLOR`` unset (https://no-color.org)."""

from __future__ import annotations

import os
from typing import IO, Any, Mapping, Optional

__all__ = ["Style", "use_color"]

_CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}


def use_color(stream: Optional[IO[Any]], environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether to colour output written to ``stream``.

    Never when ``NO_COLOR`` is set to a non-empty value, never when the stream is not a
    terminal (a pipe, a file, a captured stream), and never for ``TERM=dumb``.
    """
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR", ""):
        return False
    if env.get("TERM", "") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (ValueError, OSError):  # closed or detached stream
        return False


class Style:
    """Wraps text in ANSI colour codes when enabled, returns it unchanged otherwise."""

    __slots__ = ("enabled",)

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @classmethod
    def for_stream(
        cls, stream: Optional[IO[Any]], environ: Optional[Mapping[str, str]] = None
    ) -> Style:
        return cls(use_color(stream, environ))

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles or not text:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"
