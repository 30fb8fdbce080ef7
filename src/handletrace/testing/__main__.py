"""``python -m handletrace.testing``: serve a local Speech service until Ctrl-C or SIGTERM.

Prints the host to pass to ``speechsdk.SpeechConfig(host=...)`` on the first line of
standard output, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import List, Optional, Sequence

from ._script import DEFAULT_SCRIPT, Phrase, Script
from ._service import SpeechService


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m handletrace.testing",
        description=(
            "Serve a local Speech service on 127.0.0.1 for the Azure Speech SDK; print its "
            "host (for SpeechConfig(host=...)) and serve until Ctrl-C or SIGTERM."
        ),
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port to listen on (default: a free port)"
    )
    parser.add_argument(
        "--phrase",
        action="append",
        metavar="TEXT",
        help="a phrase to recognize in every turn; repeat for several "
        "(default: one phrase 'hello world')",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the service; returns the process exit status."""
    args = _parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        _parser().error(f"--port must be between 0 and 65535, got {args.port}")
    phrases: List[str] = args.phrase or []
    script = Script(phrases=tuple(Phrase(text) for text in phrases)) if phrases else DEFAULT_SCRIPT
    done = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        done.set()

    previous = {
        signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with SpeechService(script, port=args.port) as service:
            print(service.host, flush=True)
            while not done.wait(0.5):
                pass
    except OSError as error:
        print(f"python -m handletrace.testing: {error}", file=sys.stderr)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
