"""The ``handletrace`` command line (also ``python -m handletrace``).

One module per subcommand (:mod:`.run`, :mod:`.report`, :mod:`.demo_command`), one class
per subcommand whose docstring is its ``--help``. ``main(argv=None) -> int`` never raises for
a user error: it prints one line and returns :data:`EXIT_USAGE`.

Exit codes: the program's own for ``run``; :data:`EXIT_USAGE` (2) for a usage error or an
unreadable file; :data:`EXIT_LEAKS` (3) with ``--fail-on-leak`` when live handles are found
and the program itself succeeded.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from typing import Any, Dict, Optional, Sequence, Tuple

from .common import EXIT_LEAKS, EXIT_USAGE, UsageError, exit_code
from .demo_command import DemoCommand, demo_available
from .report import ReportCommand
from .run import RunCommand

__all__ = ["EXIT_LEAKS", "EXIT_USAGE", "ReportCommand", "RunCommand", "main"]

COMMANDS: Dict[str, Any] = {
    "run": RunCommand,
    "report": ReportCommand,
}


def _build_parser() -> Tuple[argparse.ArgumentParser, Dict[str, Any]]:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="handletrace",
        description="Find and fix native-handle leaks in the Azure Speech SDK for Python.",
    )
    parser.add_argument("--version", action="version", version=f"handletrace {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: Dict[str, Any] = {}
    available = dict(COMMANDS)
    if demo_available():
        available["demo"] = DemoCommand
    for name, cls in available.items():
        command = cls()
        doc = inspect.cleandoc(cls.__doc__ or "")
        summary = doc.splitlines()[0] if doc else ""
        sub = subparsers.add_parser(
            name,
            help=summary,
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.prepare_parser(sub)
        commands[name] = command
    return parser, commands


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    arguments = list(argv) if argv is not None else sys.argv[1:]
    parser, commands = _build_parser()
    if arguments[:1] == ["demo"] and "demo" in commands:
        # Everything after "demo" is the demo's, --help included.
        return int(commands["demo"].run_argv(arguments[1:]))
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exit_code(exc.code)
    if args.command is None:
        parser.print_usage(sys.stderr)
        sys.stderr.write("handletrace: error: a command is required (run, report)\n")
        return EXIT_USAGE
    try:
        return int(commands[args.command].run(args))
    except UsageError as exc:
        sys.stderr.write(f"handletrace {args.command}: error: {exc}\n")
        return EXIT_USAGE
