"""Send N requests of generated audio to the example transcription service.

    python examples/request_driver.py [--requests 100] [--fixed] [--host ws://...]

Without --host it starts the local speech service (handletrace.testing.SpeechService).
Run it under handletrace to see the leak:

    handletrace run examples/request_driver.py --requests 50
    handletrace run --timeline leak.svg examples/request_driver.py --requests 50 --fixed
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from pathlib import Path
from typing import Iterator, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

from transcription_service import service_for  # noqa: E402

import handletrace  # noqa: E402
from handletrace.testing import Phrase, Script, SpeechService, silence_wav  # noqa: E402


@contextlib.contextmanager
def speech_host(host: Optional[str]) -> Iterator[str]:
    """The given host, or a local speech service for the duration of the run."""
    if host:
        yield host
        return
    script = Script(
        phrases=(Phrase("hello", speaker_id="Guest-1"), Phrase("bye", speaker_id="Guest-2"))
    )
    with SpeechService(script) as service:
        try:
            yield service.host
        finally:
            if handletrace.is_installed():
                handletrace.report()  # what leaked, before the cleanup below hides it
            gc.collect()  # release leaked transcribers while the service still answers


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--fixed", action="store_true", help="use the fixed service")
    parser.add_argument("--host", help="a speech endpoint (default: a local SpeechService)")
    parser.add_argument("--audio-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    gc.disable()  # as in production: native memory never triggers a collection
    audio = silence_wav(args.audio_seconds)
    segments = 0
    with speech_host(args.host) as host:
        service = service_for(host, fixed=args.fixed)
        for _ in range(args.requests):
            segments += len(service.process_audio(audio))
    print(f"{args.requests} requests, {segments} segments ({'fixed' if args.fixed else 'leaky'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
