"""``handletrace report``: render a saved report or timeline."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .._core.config import format_for_path
from .common import EXIT_LEAKS, REPORT_FORMATS, UsageError, open_output, write_report

__all__ = ["DEFAULT_MAX_MB", "ReportCommand"]

#: The largest file read by default, in MB. handletrace's own files are far smaller (a group
#: lists a bounded sample of its handles: 10,000 live handles made at one line, 15 kB);
#: rendering a report of 100 MB took 9-14 s and 0.5-0.7 GB.
DEFAULT_MAX_MB = 50.0


class ReportCommand:
    """Render a saved report (or timeline) JSON file.

    handletrace report FILE.json [--format text|json|html] [-o OUT] [--max-size MB]

    FILE is a report written by `handletrace run --report x.json`, HANDLETRACE_REPORT or
    handletrace.report(format="json"), or a timeline written by `--timeline x.json`; "-"
    reads standard input. Reports render as text, JSON or a self-contained HTML page with the
    creation stacks (and the drawn reference cycles when the report has a diagnosis);
    timelines as a terminal chart (text), JSON, SVG or HTML. A file that cannot be read or
    is not a handletrace file, or is larger than --max-size (default 50 MB), gives one error
    line and exit code 2.
    """

    name = "report"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", metavar="FILE", help="the JSON file (- for standard input)")
        parser.add_argument(
            "--format",
            choices=("text", "json", "html", "svg"),
            default=None,
            help="output format (default: from -o's extension, else text; svg is for timelines)",
        )
        parser.add_argument(
            "-o", "--output", metavar="OUT", default="-", help="output file (default: stdout)"
        )
        parser.add_argument(
            "--max-size",
            metavar="MB",
            type=_megabytes,
            default=DEFAULT_MAX_MB,
            help=f"refuse a FILE larger than this (default {DEFAULT_MAX_MB:g} MB; "
            f"0: no limit; rendering takes about 0.1 s and 5-7 MB of memory per MB read)",
        )
        parser.add_argument(
            "--fail-on-leak",
            action="store_true",
            help=f"exit {EXIT_LEAKS} if the report has live handles",
        )

    def run(self, args: argparse.Namespace) -> int:
        from .._report.model import Report
        from .._report.timeline import Timeline, render_timeline
        from ..errors import ReportError, TimelineError

        source = "<stdin>" if args.file == "-" else args.file
        data = self._load(args.file, source, args.max_size)
        schema = data.get("schema") if isinstance(data, dict) else None
        fmt = args.format or format_for_path(
            args.output if args.output != "-" else None, (*REPORT_FORMATS, "svg")
        )
        if schema == "handletrace.timeline":
            try:
                timeline = Timeline.from_dict(data, source=source)
            except TimelineError as exc:
                raise UsageError(str(exc)) from None
            from .._report.terminal import Style

            stream, close = open_output(args.output)
            try:
                style = Style.for_stream(stream) if fmt == "text" else None
                render_timeline(timeline, stream, fmt, style=style)
            finally:
                if close:
                    stream.close()
            return 0
        try:
            report = Report.from_dict(data, source=source)
        except ReportError as exc:
            raise UsageError(str(exc)) from None
        if fmt == "svg":
            raise UsageError("svg is a timeline format; a report renders as text, json or html")
        write_report(report, args.output, fmt)
        return EXIT_LEAKS if args.fail_on_leak and report.live else 0

    @staticmethod
    def _load(path: str, source: str, max_mb: float = DEFAULT_MAX_MB) -> Any:
        # Here, not at import: start-up loads no report code.
        from .._report.codec import JSONValueError, loads

        limit = int(max_mb * 1_000_000) if max_mb > 0 else None
        try:
            if path == "-":
                text = sys.stdin.read(-1 if limit is None else limit + 1)
                size = len(text)
            else:
                with open(path, encoding="utf-8") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    text = "" if limit is not None and size > limit else handle.read()
        except FileNotFoundError:
            raise UsageError(f"{source}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"{source}: is a directory") from None
        except UnicodeDecodeError:
            raise UsageError(f"{source}: not a text file (not UTF-8)") from None
        except OSError as exc:
            raise UsageError(f"{source}: cannot read ({exc.strerror or exc})") from None
        if limit is not None and size > limit:
            raise UsageError(
                f"{source}: larger than {max_mb:g} MB, the limit for a report or timeline "
                f"(pass --max-size with a larger size in MB, or 0 for no limit)"
            )
        try:
            return loads(text)
        except JSONValueError as exc:
            raise UsageError(f"{source}: not a handletrace file ({exc})") from None
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
        except RecursionError:
            raise UsageError(f"{source}: JSON nested too deeply") from None


def _megabytes(text: str) -> float:
    """A --max-size value: a number of MB, at least 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):  # NaN too
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in MB (a number, 0: no limit)")
    return value
