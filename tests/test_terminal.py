"""Terminal conventions: colour only on a TTY, never with NO_COLOR or TERM=dumb."""

from __future__ import annotations

import io

from handletrace._report.terminal import Style, use_color


class TtyStream(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_colour_on_a_tty() -> None:
    """A terminal with no NO_COLOR gets colour."""
    assert use_color(TtyStream(), {})


def test_no_colour_when_not_a_tty() -> None:
    """A pipe or file gets none."""
    assert not use_color(io.StringIO(), {})


def test_no_colour_with_no_color_set() -> None:
    """NO_COLOR set to anything non-empty turns colour off, even on a terminal."""
    assert not use_color(TtyStream(), {"NO_COLOR": "1"})


def test_empty_no_color_does_not_count() -> None:
    """NO_COLOR= (empty) is as if unset, per no-color.org."""
    assert use_color(TtyStream(), {"NO_COLOR": ""})


def test_no_colour_for_a_dumb_terminal() -> None:
    """TERM=dumb gets no escape codes."""
    assert not use_color(TtyStream(), {"TERM": "dumb"})


def test_no_colour_for_a_closed_stream() -> None:
    """A closed stream, whose isatty() raises ValueError, is not a terminal."""
    stream = io.StringIO()
    stream.close()
    assert not use_color(stream, {})


def test_no_colour_without_a_stream() -> None:
    """No stream at all (sys.stderr is None under pythonw) is not a terminal."""
    assert not use_color(None, {})


def test_style_wraps_only_when_enabled() -> None:
    """Style adds ANSI codes when enabled and returns the text unchanged otherwise."""
    assert Style(True)("leak", "bold", "red") == "\x1b[1;31mleak\x1b[0m"
    assert Style(False)("leak", "bold", "red") == "leak"
