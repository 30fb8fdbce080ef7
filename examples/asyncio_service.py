"""An asyncio voice service, with the three teardown mistakes that freeze real services.

    python examples/asyncio_service.py drop_on_loop | drop_in_callback | sync_stop_on_loop | correct
        [--calls 2] [--stop-timeout 1] [--host ws://...]

Each call opens a ``SpeechRecognizer`` on a push stream, feeds it audio from an async
producer, and gets its results through SDK callbacks handed to the event loop with
``loop.call_soon_threadsafe``. The caller says one phrase and hangs up; then the call ends,
and how it ends is the only difference between the four services:

``drop_on_loop``
    forgets the session on the loop while its recognizer is still running: the last
    reference dies on the loop, and the native release (``recognizer_handle_release``)
    stops the recognition there, holding the loop until the service answers the end of the
    audio or the SDK's stop timeout passes (10 s by default).
``drop_in_callback``
    closes the audio and lets the ``session_stopped`` handler remove the session from
    ``self.sessions``, which held the only reference: the recognizer is released on the
    SDK's own callback thread, as that callback returns, and its release waits for that
    very thread for the whole stop timeout, however fast the service answers. The loop is
    not blocked; a native thread and the websocket are, for each call.
``sync_stop_on_loop``
    calls the synchronous ``stop_continuous_recognition()`` on the loop: the loop waits
    for the end of the turn (up to the stop timeout).
``correct``
    stops with ``stop_continuous_recognition_async()``, waiting for it in a worker thread,
    then ``await handletrace.adispose(recognizer)`` (the release in a worker thread), and
    never lets an SDK callback hold or drop the last reference (handlers refer to the call's
    ``CallLog`` and the loop only).

Run as a script, it starts the local speech service (``handletrace.testing``) made slow on
purpose where the mistake needs it (``Teardown(answer_end=False)``: the end of the audio is
never answered, so the SDK waits its stop timeout, ``--stop-timeout`` seconds), installs
handletrace, makes ``--calls`` concurrent calls and prints what handletrace saw, next to
how late the loop's heartbeat was. The tests import it (``tests/test_asyncio_blocking.py``);
``docs/asyncio.md`` explains the fixes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Sequence, Type

import azure.cognitiveservices.speech as speechsdk

import handletrace
from handletrace.testing import Script, SpeechService, Teardown

__all__ = [
    "CallLog",
    "CorrectService",
    "DropsInCallback",
    "DropsOnLoop",
    "Heartbeat",
    "SERVICES",
    "Session",
    "StopsOnLoop",
    "VoiceService",
    "audio_chunks",
    "script_for",
]

CHUNK = bytes(3200)  # 100 ms of 16 kHz 16-bit mono silence
PHRASE = "hello"


class CallLog:
    """What a call's SDK callbacks told the loop. Refers to nothing but its own results, so
    a handler holding it never holds the recognizer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.texts: List[str] = []
        self.canceled: List[str] = []
        self.recognized = loop.create_future()  # the first final result
        self.stopped = loop.create_future()  # session_stopped

    # These run on the loop (handed over by the SDK thread's callbacks).
    def on_recognized(self, text: str) -> None:
        self.texts.append(text)
        if not self.recognized.done():
            self.recognized.set_result(text)

    def on_canceled(self, reason: str) -> None:
        self.canceled.append(reason)

    def on_stopped(self) -> None:
        if not self.stopped.done():
            self.stopped.set_result(None)

    def hand_over(self, method: Any, *args: Any) -> None:
        """Call ``method(*args)`` on the loop; from an SDK thread (never raises into it)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the call is over
            self.loop.call_soon_threadsafe(method, *args)


class Session:
    """One call's SDK objects. ``VoiceService.sessions`` holds the only reference."""

    def __init__(self, recognizer: speechsdk.SpeechRecognizer, stream: Any, log: CallLog):
        self.recognizer = recognizer
        self.stream = stream
        self.log = log


async def audio_chunks(seconds: float, interval: float = 0.02) -> AsyncIterator[bytes]:
    """The caller's audio: ``seconds`` of silence, 100 ms per chunk, one chunk every
    ``interval`` seconds (five times real time)."""
    for _ in range(round(seconds * 10)):
        yield CHUNK
        await asyncio.sleep(interval)


class VoiceService:
    """Answers calls on one event loop; subclasses differ only in ``end_call()``."""

    timeout = 30.0  #: seconds to wait for a call's first result

    def __init__(self, host: str, *, stop_timeout: Optional[float] = None) -> None:
        self.host = host
        self.stop_timeout = stop_timeout  # None: the SDK's default (10 s)
        self.sessions: Dict[str, Session] = {}

    async def handle_call(self, call_id: str, audio: AsyncIterator[bytes]) -> List[str]:
        """Recognize one call: stream its audio until the caller hangs up (the audio ends),
        make sure the caller's first phrase came back, then end the call; returns the
        phrases recognized."""
        await self.open_call(call_id)
        log = self.sessions[call_id].log
        async for chunk in audio:
            self.sessions[call_id].stream.write(chunk)
        await asyncio.wait_for(asyncio.shield(log.recognized), self.timeout)
        await self.end_call(call_id)
        return log.texts

    async def open_call(self, call_id: str) -> None:
        config = speechsdk.SpeechConfig(host=self.host)
        if self.stop_timeout is not None:
            config.set_property_by_name(
                "SPEECH-StopRecognitionTimeoutInSeconds", str(round(self.stop_timeout))
            )
        stream = speechsdk.audio.PushAudioInputStream()
        audio_config = speechsdk.audio.AudioConfig(stream=stream)
        recognizer = speechsdk.SpeechRecognizer(config, audio_config=audio_config)  # CREATED
        log = CallLog(asyncio.get_running_loop())
        self.connect(call_id, recognizer, log)
        self.sessions[call_id] = Session(recognizer, stream, log)
        # Starting is a blocking wait too: made in a worker thread, the loop runs on.
        await asyncio.to_thread(recognizer.start_continuous_recognition_async().get)

    def connect(self, call_id: str, recognizer: Any, log: CallLog) -> None:
        """Connect the handlers. They run on the SDK's threads and hand everything to the
        loop; they capture ``log`` only, never the recognizer or the session."""

        def recognized(evt: Any) -> None:
            if evt.result.reason == speechsdk.ResultReason.RecognizedSpeech:
                log.hand_over(log.on_recognized, evt.result.text)

        def canceled(evt: Any) -> None:
            log.hand_over(log.on_canceled, str(evt.cancellation_details.reason))

        def session_stopped(evt: Any) -> None:
            log.hand_over(log.on_stopped)

        recognizer.recognized.connect(recognized)
        recognizer.canceled.connect(canceled)
        recognizer.session_stopped.connect(session_stopped)

    async def end_call(self, call_id: str) -> None:
        raise NotImplementedError


class DropsOnLoop(VoiceService):
    """(a) Forgets a running recognizer on the loop."""

    async def end_call(self, call_id: str) -> None:
        del self.sessions[call_id]  # (a) LAST REFERENCE DROPPED ON THE LOOP


class DropsInCallback(VoiceService):
    """(b) Lets the session_stopped handler, on the SDK's thread, drop the last reference."""

    def connect(self, call_id: str, recognizer: Any, log: CallLog) -> None:
        super().connect(call_id, recognizer, log)

        def forget_session(evt: Any) -> None:  # (b) RUNS ON THE SDK'S CALLBACK THREAD
            self.sessions.pop(call_id, None)  # the SDK's own reference is now the last

        recognizer.session_stopped.connect(forget_session)

    async def end_call(self, call_id: str) -> None:
        self.sessions[call_id].stream.close()  # the end of the audio: the session stops
        log = self.sessions[call_id].log
        await asyncio.wait_for(asyncio.shield(log.stopped), self.timeout)


class StopsOnLoop(VoiceService):
    """(c) Stops recognition synchronously on the loop, then disposes correctly."""

    async def end_call(self, call_id: str) -> None:
        self.sessions[call_id].recognizer.stop_continuous_recognition()  # (c) SYNC STOP
        await handletrace.adispose(self.sessions[call_id].recognizer)
        self.sessions.pop(call_id).stream.close()


class CorrectService(VoiceService):
    """Stops and releases in worker threads; the loop only ever drops a disposed object."""

    async def end_call(self, call_id: str) -> None:
        stopping = self.sessions[call_id].recognizer.stop_continuous_recognition_async()
        await asyncio.to_thread(stopping.get)  # the wait for the end of the turn
        del stopping
        await handletrace.adispose(self.sessions[call_id].recognizer)  # the release
        self.sessions.pop(call_id).stream.close()  # disposed: dropping it frees nothing


SERVICES: Dict[str, Type[VoiceService]] = {
    "drop_on_loop": DropsOnLoop,
    "drop_in_callback": DropsInCallback,
    "sync_stop_on_loop": StopsOnLoop,
    "correct": CorrectService,
}


def script_for(variant: str) -> Script:
    """The local service's script for ``variant``: the end of the audio is never answered
    (the SDK waits its stop timeout) where that is what makes the mistake slow; the
    callback's release needs nothing from the service, it waits for itself."""
    if variant == "drop_in_callback":
        return Script.of(PHRASE)
    return Script.of(PHRASE, teardown=Teardown(answer_end=False))


class Heartbeat:
    """A task that wakes every ``period`` seconds and adds up how late it woke: what the
    other calls on the loop felt."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.late = 0.0  # seconds, in all
        self.worst = 0.0
        self._beating = False
        self._task: Optional[asyncio.Task[None]] = None

    def start(self) -> None:
        self._beating = True
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def stop(self) -> None:
        """Stop after one more beat (it measures a block that has just ended)."""
        self._beating = False
        if self._task is not None:
            await self._task

    async def _beat(self) -> None:
        while self._beating:
            started = time.monotonic()
            await asyncio.sleep(self.period)
            late = time.monotonic() - started - self.period
            if late > 0.05:  # ordinary jitter is not what we are after
                self.late += late
                self.worst = max(self.worst, late)


async def run_calls(service: VoiceService, calls: int) -> List[List[str]]:
    """``calls`` concurrent calls of 3 s of audio each."""
    heartbeat = Heartbeat()
    heartbeat.start()
    try:
        return await asyncio.gather(
            *(service.handle_call(f"call-{n}", audio_chunks(3.0)) for n in range(calls))
        )
    finally:
        await heartbeat.stop()
        print(f"heartbeat: late {heartbeat.late:.2f} s in all, worst {heartbeat.worst:.2f} s")


def describe(blocking: handletrace.Blocking) -> Iterator[str]:
    """handletrace's view of what blocked, one line per site (the text report has more)."""
    for site in blocking.sites:
        where = f"{site.site.filename}:{site.site.lineno}" if site.site else "no Python line"
        yield (
            f"{site.what} {site.name} ({site.owner}) x{site.count}: {site.total:.2f} s "
            f"on {site.last.thread} at {where}"
        )
    for flight in blocking.in_flight:
        yield f"releasing now: #{flight.seq} for {flight.elapsed:.2f} s on {flight.thread}"
    yield f"event loops held {blocking.on_event_loop():.2f} s"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=sorted(SERVICES))
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--stop-timeout", type=float, default=1.0, help="SDK default: 10")
    parser.add_argument("--host", help="a speech endpoint (default: a local SpeechService)")
    args = parser.parse_args(argv)
    handletrace.install()
    with contextlib.ExitStack() as stack:
        host = args.host or stack.enter_context(SpeechService(script_for(args.variant))).host
        service = SERVICES[args.variant](host, stop_timeout=args.stop_timeout)
        started = time.monotonic()
        texts = asyncio.run(run_calls(service, args.calls))
        print(f"{args.variant}: {args.calls} calls in {time.monotonic() - started:.2f} s: {texts}")
        # A release still blocking an SDK thread ends within the stop timeout.
        deadline = time.monotonic() + args.stop_timeout + 10
        while handletrace.blocking().in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        for line in describe(handletrace.blocking()):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
