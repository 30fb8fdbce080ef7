"""``python -m handletrace.testing``: serve a local Speech service until Ctrl-C or SIGTERM.

Prints the host to pass to ``speechsdk.SpeechConfig(host=...)`` on the first line of
standard output, then serves until interrupted. The options build the ``Script`` the
service answers with; see ``docs/speech-service.md``.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from types import FrameType
from typing import List, Optional, Sequence, Tuple

from ._script import (
    CLOSE_MOMENTS,
    DEFAULT_SCRIPT,
    Phrase,
    Script,
    ServerClose,
    Synthesis,
    Teardown,
)
from ._service import SpeechService


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"seconds must be finite and >= 0, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m handletrace.testing",
        description=(
            "Serve a local Speech service on 127.0.0.1 for the Azure Speech SDK; print its "
            "host (for SpeechConfig(host=...)) and serve until Ctrl-C or SIGTERM. It answers "
            "recognition (phrases while the audio streams in) and synthesis (a tone)."
        ),
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port to listen on (default: a free port)"
    )
    recognition = parser.add_argument_group("recognition")
    recognition.add_argument(
        "--phrase",
        action="append",
        metavar="TEXT",
        help="a phrase to recognize in every turn; repeat for several "
        "(default: one phrase 'hello world' after the hypothesis 'hello')",
    )
    recognition.add_argument(
        "--repeat",
        action="store_true",
        help="repeat the phrases for as long as audio keeps coming (a call of any length)",
    )
    recognition.add_argument(
        "--phrase-duration",
        type=_seconds,
        default=1.0,
        metavar="SECONDS",
        help="audio time of each phrase (default: 1.0)",
    )
    recognition.add_argument(
        "--end-silence",
        type=_seconds,
        metavar="SECONDS",
        help="audio after a phrase's end before its final result and between phrases "
        "(default: the SDK's segmentation silence timeout, else 0.5)",
    )
    recognition.add_argument(
        "--at-end-of-audio",
        action="store_true",
        help="answer nothing until a turn's audio ends, then every phrase (no streaming)",
    )
    delays = parser.add_argument_group("delays (recognition and synthesis)")
    delays.add_argument(
        "--start-delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait before each turn.start",
    )
    delays.add_argument(
        "--message-delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait before each later message",
    )
    synthesis = parser.add_argument_group("synthesis")
    synthesis.add_argument(
        "--synthesis-audio",
        choices=("tone", "silence"),
        default="tone",
        help="what synthesized audio sounds like (default: a 440 Hz tone)",
    )
    synthesis.add_argument(
        "--word-seconds",
        type=_seconds,
        default=0.3,
        metavar="SECONDS",
        help="synthesized audio per word of text (default: 0.3)",
    )
    teardown = parser.add_argument_group("teardown")
    teardown.add_argument(
        "--end-delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait this long before answering the end of a recognition turn's audio",
    )
    teardown.add_argument(
        "--never-answer-end",
        action="store_true",
        help="never answer the end of a recognition turn's audio (stops time out)",
    )
    teardown.add_argument(
        "--close-delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="answer the SDK's websocket close this much later",
    )
    teardown.add_argument(
        "--never-answer-close",
        action="store_true",
        help="never answer the SDK's websocket close (the TCP connection stays open)",
    )
    teardown.add_argument(
        "--server-close",
        choices=CLOSE_MOMENTS,
        metavar="MOMENT",
        help=f"close each connection from the service's side at MOMENT: {', '.join(CLOSE_MOMENTS)}",
    )
    teardown.add_argument(
        "--server-close-code",
        type=int,
        default=1000,
        metavar="CODE",
        help="websocket close code of --server-close (default: 1000)",
    )
    teardown.add_argument(
        "--server-close-delay",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait this long after the --server-close moment",
    )
    teardown.add_argument(
        "--server-close-abort",
        action="store_true",
        help="--server-close drops the TCP connection without a close frame",
    )
    return parser


def script_from_args(args: argparse.Namespace) -> Script:
    """The ``Script`` that the parsed command line asks for (``ValueError`` if invalid)."""
    phrases: List[str] = args.phrase or []
    server_close = None
    if args.server_close is not None:
        server_close = ServerClose(
            at=args.server_close,
            code=args.server_close_code,
            delay=args.server_close_delay,
            abort=args.server_close_abort,
        )
    return Script(
        phrases=tuple(Phrase(text) for text in phrases) if phrases else DEFAULT_SCRIPT.phrases,
        start_delay=args.start_delay,
        message_delay=args.message_delay,
        streaming=not args.at_end_of_audio,
        phrase_duration=args.phrase_duration,
        end_silence=args.end_silence,
        repeat=args.repeat,
        synthesis=Synthesis(audio=args.synthesis_audio, word_seconds=args.word_seconds),
        teardown=Teardown(
            end_delay=args.end_delay,
            answer_end=not args.never_answer_end,
            close_delay=args.close_delay,
            answer_close=not args.never_answer_close,
            server_close=server_close,
        ),
    )


def parse_script(argv: Optional[Sequence[str]] = None) -> Script:
    """The ``Script`` a command line asks for; exits with status 2 on a bad option, as
    ``main()`` does."""
    return _parse(argv)[1]


def _parse(argv: Optional[Sequence[str]]) -> Tuple[argparse.Namespace, Script]:
    parser = _parser()
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    try:
        return args, script_from_args(args)
    except ValueError as error:
        parser.error(str(error))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the service; returns the process exit status."""
    args, script = _parse(argv)
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
