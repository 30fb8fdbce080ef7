"""What the subcommands share: the exit codes, the one-line usage error, where output goes,
and how a report is written."""

from __future__ import annotations

import json
import sys
from typing import IO, Any, Tuple

__all__ = [
    "EXIT_LEAKS",
    "EXIT_USAGE",
    "REPORT_FORMATS",
    "UsageError",
    "exit_code",
    "open_output",
    "write_report",
]

#: A usage error or an unreadable file.
EXIT_USAGE = 2
#: ``--fail-on-leak`` and live handles were found.
EXIT_LEAKS = 3

REPORT_FORMATS = ("text", "json", "html")


class UsageError(Exception):
    """A problem with what the user asked for: reported as one line, exit code 2."""


def open_output(destination: str) -> Tuple[IO[str], bool]:
    """(stream, close_it) for ``stdout``, ``stderr``, ``-`` (stdout) or a file path."""
    if destination in ("-", "stdout"):
        return sys.stdout, False
    if destination == "stderr":
        return sys.stderr, False
    try:
        return open(destination, "w", encoding="utf-8"), True
    except OSError as exc:
        raise UsageError(f"cannot write {destination}: {exc.strerror or exc}") from None


def write_report(report: Any, destination: str, fmt: str) -> None:
    """Render ``report`` (a :class:`~handletrace.Report`) to ``destination`` as ``fmt``: a
    file is written as ``HANDLETRACE_REPORT`` writes one (``{pid}`` replaced, whole or not
    at all, mode 0600, never through a symbolic link)."""
    if destination in ("-", "stdout", "stderr"):
        stream, _ = open_output(destination)
        _render(report, stream, fmt)
        return
    from .._env import ReportPathRefused, report_path, write_report_file

    try:
        write_report_file(report_path(destination), lambda out: _render(report, out, fmt))
    except ReportPathRefused:
        raise UsageError(
            f"{destination} is a symbolic link; handletrace does not follow it (remove the "
            "link or write the report to another path)"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot write {destination}: {exc.strerror or exc}") from None


def _render(report: Any, stream: IO[str], fmt: str) -> None:
    # Here, not at import: `handletrace --help` loads no report code.
    from .._report.terminal import Style
    from .._report.text import format_text

    if fmt == "json":
        json.dump(report.to_dict(), stream, indent=2)
        stream.write("\n")
    elif fmt == "html":
        from .._report.html import format_html  # the page's code, only for a page

        stream.write(format_html(report))
    else:
        text = format_text(report)
        style = Style.for_stream(stream)
        if style.enabled:
            first, _, rest = text.partition("\n")
            text = style(first, "bold", "green" if report.clean else "red") + "\n" + rest
        stream.write(text)
    stream.flush()


def exit_code(code: Any) -> int:
    """The process exit status ``sys.exit(code)`` gives (a non-integer is printed: 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return int(code)
    try:
        sys.stderr.write(f"{code}\n")
    except Exception:
        pass
    return 1
