"""How handles are tracked (:class:`Config`), and the parsing rules every front end shares:
on/off words, and the output format a file name asks for."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, FrozenSet, Optional, Sequence

__all__ = [
    "Config",
    "DEFAULT_SLOW_RELEASE",
    "DEFAULT_STACK_DEPTH",
    "MAX_SLOW_RELEASE",
    "MAX_STACK_DEPTH",
    "MAX_STACK_SAMPLE",
    "SWITCH_WORDS",
    "format_for_path",
    "parse_switch",
]

DEFAULT_STACK_DEPTH = 16
MAX_STACK_DEPTH = 256
#: Seconds a release or a call on an event loop must take to be recorded as blocking
#: (asyncio's slow-callback default), and the largest threshold accepted.
DEFAULT_SLOW_RELEASE = 0.1
MAX_SLOW_RELEASE = 3600.0
#: The largest sampling interval: the C hooks hold it in a C ``long`` (32 bits on Windows);
#: a larger one would make every handle an instrumentation error instead of a record.
MAX_STACK_SAMPLE = 2**31 - 1

_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"0", "false", "no", "off"})
#: What :func:`parse_switch` accepts, for messages.
SWITCH_WORDS = "1, true, yes or on to enable; 0, false, no or off to disable"

_EXTENSIONS = ((".json", "json"), (".html", "html"), (".htm", "html"), (".svg", "svg"))


def parse_switch(value: str, *, empty: Optional[bool] = None) -> Optional[bool]:
    """``True``/``False`` for the usual on/off words (any case, surrounding blanks ignored);
    ``empty`` for an empty value; ``None`` for anything else (the caller reports it)."""
    text = value.strip().lower()
    if not text:
        return empty
    if text in _ON:
        return True
    if text in _OFF:
        return False
    return None


def format_for_path(
    path: Optional[str], formats: Sequence[str] = ("text", "json", "html"), default: str = "text"
) -> str:
    """The output format a file name's extension asks for, among ``formats``, else ``default``."""
    lower = (path or "").lower()
    for extension, fmt in _EXTENSIONS:
        if lower.endswith(extension) and fmt in formats:
            return fmt
    return default


@dataclass(frozen=True)
class Config:
    """How handles are tracked.

    ``stack_depth``: frames kept per creation stack (0 keeps none).
    ``stack_sample``: capture a stack for every handle (1), one in N (N), or none (0).
    ``kinds``: only track these handle kinds (``None``: all).
    ``slow_release``: seconds a native release (or a synchronous SDK call on an event-loop
    thread) must take to be recorded as blocking (``0``: every one; default 0.1 s).
    """

    stack_depth: int = DEFAULT_STACK_DEPTH
    stack_sample: int = 1
    kinds: Optional[FrozenSet[str]] = None
    slow_release: float = DEFAULT_SLOW_RELEASE

    def __post_init__(self) -> None:
        if not isinstance(self.stack_depth, int) or not 0 <= self.stack_depth <= MAX_STACK_DEPTH:
            raise ValueError(
                f"stack_depth must be an integer from 0 to {MAX_STACK_DEPTH}, "
                f"got {self.stack_depth!r}"
            )
        if not isinstance(self.stack_sample, int) or not 0 <= self.stack_sample <= MAX_STACK_SAMPLE:
            raise ValueError(
                f"stack_sample must be 1 (every handle), N > 1 (one handle in N, at most "
                f"{MAX_STACK_SAMPLE}) or 0 (none), got {self.stack_sample!r}"
            )
        slow = self.slow_release
        if (
            isinstance(slow, bool)
            or not isinstance(slow, (int, float))
            or not 0 <= slow <= MAX_SLOW_RELEASE
        ):
            raise ValueError(
                f"slow_release must be a number of seconds from 0 to {MAX_SLOW_RELEASE:g}, "
                f"got {slow!r}"
            )
        object.__setattr__(self, "slow_release", float(slow))
        if self.kinds is not None:
            kinds = frozenset(self.kinds)
            if not kinds or not all(isinstance(k, str) and k for k in kinds):
                raise ValueError(f"kinds must be a non-empty set of kind names, got {self.kinds!r}")
            object.__setattr__(self, "kinds", kinds)

    def with_changes(self, **changes: Any) -> Config:
        return replace(self, **changes)
