"""Small wording helpers shared by the text and HTML renderings."""

from __future__ import annotations

from typing import List, Tuple

from .._sdk.native import NativeRow

__all__ = ["age_text", "native_notes", "not_installed", "plural"]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def age_text(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def native_notes(row: NativeRow) -> List[str]:
    """What explains a native row's counts: untracked handles that are a problem (made
    before install(), or by the SDK in a way handletrace does not know) and those the SDK
    made for itself, which are expected."""
    notes = []
    if row.unexplained > 0:
        notes.append(f"{row.unexplained} not tracked: made before install() or inside the SDK")
    elif row.unexplained < 0:
        notes.append(f"{-row.unexplained} tracked but not in the native table")
    if row.sdk_internal:
        what = "; ".join(row.sdk_internal)
        notes.append(f"{len(row.sdk_internal)} made by the SDK at import ({what})")
    return notes


def not_installed(created: int) -> Tuple[str, str]:
    """What a report made while handletrace is not installed says before anything else, and
    what to do about it (``created``: handles tracked while it was installed, if ever)."""
    if created:
        what = "; this report shows only those tracked while it was installed"
    else:
        what = ", so there is nothing to report"
    return (
        f"handletrace is not installed: SDK handles are not being tracked{what}",
        "to track them, call handletrace.install() before the program makes SDK objects, "
        "or run it with HANDLETRACE=1",
    )
