"""``SpeechService``: a local websocket speech service that the real Speech SDK talks to."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http
import json
import logging
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterable,
    List,
    NoReturn,
    Optional,
    Set,
    Tuple,
    Type,
)
from urllib.parse import parse_qsl, urlsplit

from ._protocol import (
    DEFAULT_BYTE_RATE,
    DEFAULT_INITIAL_SILENCE,
    Reply,
    audio_ticks,
    continuation_origin,
    end_of_turn,
    format_message,
    parse_audio_message,
    parse_text_message,
    phrase_cues,
    place_phrases,
    plan_continuation,
    plan_turn,
    recognition_mode,
    resolve_end_silence,
    seconds_to_ticks,
    turn_settings,
    wav_header_info,
)
from ._records import ConnectionRecord, TurnRecord, redact
from ._script import (
    DEFAULT_SCRIPT,
    TICKS_PER_SECOND,
    HandshakeError,
    Script,
    ServerClose,
    Teardown,
)
from ._synthesis import (
    SynthesisRequest,
    chunk_size,
    format_audio_message,
    format_metadata,
    metadata_options,
    output_format,
    session_end,
    ssml_text,
    synthesis_audio,
    synthesis_close,
    synthesis_seconds,
    word_boundaries,
)
from ._teardown import _Hold, holding_connection_class

if TYPE_CHECKING:
    from websockets.asyncio.server import Server, ServerConnection
    from websockets.http11 import Request, Response

__all__ = ["SpeechService"]

logger = logging.getLogger("handletrace.testing")

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class _Stop(Exception):
    """Raised inside an answering task when the service closed the connection on purpose."""


@dataclass
class _Turn:
    """Mutable state of one turn; touched on the service's loop thread only."""

    request_id: str
    mode: str
    continuation: bool
    audio_ended: asyncio.Event
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    audio_bytes: int = 0
    byte_rate: int = DEFAULT_BYTE_RATE
    seen_audio: bool = False
    detailed: bool = False
    context: Dict[str, Any] = field(default_factory=dict)
    end_noticed: bool = False
    text: Optional[str] = None
    output_format: Optional[str] = None

    @property
    def ticks(self) -> int:
        """The audio received so far, in ticks."""
        return audio_ticks(self.audio_bytes, self.byte_rate)

    def record(self) -> TurnRecord:
        return TurnRecord(
            request_id=self.request_id,
            mode=self.mode,
            continuation=self.continuation,
            audio_bytes=self.audio_bytes,
            audio_ended=self.audio_ended.is_set(),
            text=self.text,
            output_format=self.output_format,
        )


@dataclass
class _Connection:
    """Mutable state of one connection; written on the loop thread under the service lock."""

    path: str
    query: Tuple[Tuple[str, str], ...]
    headers: Tuple[Tuple[str, str], ...]
    status: int
    teardown: Teardown = field(default_factory=Teardown)
    open: bool = False
    close_code: Optional[int] = None
    turns: Dict[str, _Turn] = field(default_factory=dict)
    tasks: Set[asyncio.Task[None]] = field(default_factory=set)
    timeline: List[Tuple[str, float]] = field(default_factory=list)
    synthesis_requests: Dict[str, SynthesisRequest] = field(default_factory=dict)
    server_close_begun: bool = False

    def record(self) -> ConnectionRecord:
        return ConnectionRecord(
            path=self.path,
            query=self.query,
            headers=self.headers,
            status=self.status,
            turns=tuple(turn.record() for turn in self.turns.values()),
            open=self.open,
            close_code=self.close_code,
            timeline=tuple(self.timeline),
        )


def _close_code(connection: ServerConnection) -> int:
    """The code that closed ``connection``: the closer's code, 1006 without a close frame."""
    protocol = connection.protocol
    sent, received = protocol.close_sent, protocol.close_rcvd
    if sent is not None and (received is None or not protocol.close_rcvd_then_sent):
        return int(sent.code)
    if received is not None:
        return int(received.code)
    return 1006


class SpeechService:
    """A local Speech service on ``127.0.0.1`` for the real ``azure-cognitiveservices-speech``.

    It runs a websocket server (the ``websockets`` library) on its own asyncio loop in a
    background thread, answers every recognition turn and every synthesis request as its
    ``script`` says, and records what it saw (``connections``, ``active_connections``)
    without ever storing secrets::

        with SpeechService(Script.of("hello world")) as service:
            config = speechsdk.SpeechConfig(host=service.host)
            ...

    ``start()`` and ``stop()`` are idempotent; ``stop()`` closes every open websocket (code
    1001), answering any close frame a ``Teardown`` still holds. All methods and properties
    are thread-safe. A recognizer or synthesizer keeps its websocket open until it is
    released, so release them before stopping the service.
    """

    def __init__(self, script: Script = DEFAULT_SCRIPT, *, port: int = 0) -> None:
        if not isinstance(script, Script):
            raise TypeError(f"script must be a Script, got {script!r}")
        self._default_script = script
        self._script = script
        self._requested_port = port
        self._port: Optional[int] = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._connections: List[_Connection] = []
        self._active = 0
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopping: Optional[asyncio.Event] = None
        self._ready: Optional[concurrent.futures.Future[int]] = None
        # connections between _process_request and _handle
        self._pending: weakref.WeakKeyDictionary[ServerConnection, _Connection] = (
            weakref.WeakKeyDictionary()
        )
        # open connections; touched on the loop thread only
        self._live: Dict[ServerConnection, _Connection] = {}

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> SpeechService:
        """Start serving (a no-op if already started); returns the service itself."""
        try:
            import websockets.asyncio.server  # noqa: F401  (the API this module uses)
        except ImportError as error:
            raise RuntimeError(
                "SpeechService needs websockets>=13 (pip install 'handletrace[testing]')"
            ) from error
        with self._lock:
            ready = self._ready
            if ready is not None:  # started, or starting in another thread
                ready.result(timeout=_START_TIMEOUT)
                return self
            ready = concurrent.futures.Future()
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=self._run,
                args=(loop, ready),
                name="handletrace-speech-service",
                daemon=True,
            )
            self._thread, self._loop, self._ready = thread, loop, ready
        thread.start()
        try:
            port = ready.result(timeout=_START_TIMEOUT)
        except BaseException:
            thread.join(_STOP_TIMEOUT)
            with self._lock:
                self._thread = self._loop = self._ready = None
            raise
        with self._lock:
            self._port = port
        return self

    def stop(self) -> None:
        """Close every connection and stop serving (a no-op if not running)."""
        with self._lock:
            thread, loop, ready = self._thread, self._loop, self._ready
            if thread is None or loop is None or ready is None:
                return
        try:
            ready.result(timeout=_START_TIMEOUT)  # a concurrent start() has finished
        except BaseException:
            return  # that start() failed and cleans up after itself
        with self._lock:
            stopping = self._stopping
        if stopping is not None:
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop already closed
                pass
        if thread is not threading.current_thread():
            thread.join(_STOP_TIMEOUT)
        with self._lock:
            self._thread = self._loop = self._stopping = self._ready = None
            self._port = None
            self._changed.notify_all()

    def __enter__(self) -> SpeechService:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        with self._lock:
            port, active = self._port, self._active
        state = f"ws://127.0.0.1:{port}" if port is not None else "stopped"
        return f"<SpeechService {state} active_connections={active}>"

    # -- configuration -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the service is serving."""
        with self._lock:
            return self._port is not None

    @property
    def port(self) -> int:
        """The TCP port (raises ``RuntimeError`` unless running)."""
        with self._lock:
            if self._port is None:
                raise RuntimeError("SpeechService is not running; call start() first")
            return self._port

    @property
    def host(self) -> str:
        """``"ws://127.0.0.1:PORT"``, for ``speechsdk.SpeechConfig(host=...)``."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def script(self) -> Script:
        """The script for turns (and connections) that start from now on (settable,
        thread-safe)."""
        with self._lock:
            return self._script

    @script.setter
    def script(self, script: Script) -> None:
        if not isinstance(script, Script):
            raise TypeError(f"script must be a Script, got {script!r}")
        with self._lock:
            self._script = script

    def reset(self) -> None:
        """Forget recorded connections and restore the script given to the constructor.

        Connections still open keep counting in ``active_connections`` but are no longer
        listed in ``connections``.
        """
        with self._lock:
            self._script = self._default_script
            self._connections = []

    # -- actions -----------------------------------------------------------------------

    def close_connections(self, code: int = 1000, reason: str = "", *, abort: bool = False) -> int:
        """Close every open websocket from the service's side, now; returns how many.

        With ``abort=True`` the TCP connections are dropped without a close frame. Returns
        once the closes have begun; ``wait_active_connections(0)`` waits for their end.
        """
        if not 1000 <= code <= 4999:
            raise ValueError(f"code must be a websocket close code (1000-4999), got {code}")
        with self._lock:
            loop = self._loop
        if loop is None or not self.running:
            return 0
        close = ServerClose(code=code, reason=reason, abort=abort)

        async def close_all() -> int:
            live = list(self._live.items())
            for connection, state in live:
                self._spawn(state, self._server_close(connection, state, close))
            return len(live)

        return asyncio.run_coroutine_threadsafe(close_all(), loop).result(_STOP_TIMEOUT)

    # -- observations ------------------------------------------------------------------

    @property
    def connections(self) -> Tuple[ConnectionRecord, ...]:
        """Every connection attempt since start (or ``reset()``), oldest first."""
        with self._lock:
            return tuple(connection.record() for connection in self._connections)

    @property
    def active_connections(self) -> int:
        """How many websockets are open right now."""
        with self._lock:
            return self._active

    def wait_active_connections(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until exactly ``count`` websockets are open; False if ``timeout`` passed."""
        with self._changed:
            return self._changed.wait_for(lambda: self._active == count, timeout)

    # -- the loop thread ---------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop, ready: concurrent.futures.Future[int]) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as error:  # report start failures to start()
            if not ready.done():
                ready.set_exception(error)
            else:
                logger.exception("SpeechService loop failed")
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                with self._lock:
                    self._active = 0
                    self._pending.clear()
                    for connection in self._connections:
                        connection.open = False
                    self._changed.notify_all()

    async def _serve(self, ready: concurrent.futures.Future[int]) -> None:
        from websockets.asyncio.server import serve
        from websockets.typing import Subprotocol

        stopping = asyncio.Event()
        with self._lock:
            self._stopping = stopping
        server: Server = await serve(
            self._handle,
            "127.0.0.1",
            self._requested_port,
            process_request=self._process_request,
            create_connection=holding_connection_class(),
            subprotocols=[Subprotocol("USP")],
            ping_interval=None,
            close_timeout=1.0,
            max_size=2**24,
            logger=logger,
        )
        ready.set_result(server.sockets[0].getsockname()[1])
        try:
            await stopping.wait()
        finally:
            for connection, state in list(self._live.items()):
                self._event(state, "server.close")
                connection.release_hold()  # type: ignore[attr-defined]
            server.close()
            await server.wait_closed()

    def _event(self, state: _Connection, name: str, when: Optional[float] = None) -> None:
        with self._lock:
            state.timeline.append((name, time.monotonic() if when is None else when))

    def _spawn(self, state: _Connection, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)

    def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Optional[Response]:
        url = urlsplit(request.path)
        with self._lock:
            script = self._script
            state = _Connection(
                path=url.path,
                query=redact(parse_qsl(url.query, keep_blank_values=True)),
                headers=redact(
                    (name.lower(), value) for name, value in request.headers.raw_items()
                ),
                status=101,
                teardown=script.teardown,
            )
            self._connections.append(state)
            fault = script.fault
            if isinstance(fault, HandshakeError):
                state.status = fault.status
            else:
                self._pending[connection] = state
        if isinstance(fault, HandshakeError):
            try:
                reason = http.HTTPStatus(fault.status).phrase
            except ValueError:
                reason = "Error"
            return connection.respond(fault.status, f"{reason}\n")
        self._configure_hold(connection, state)
        return None

    def _configure_hold(self, connection: ServerConnection, state: _Connection) -> None:
        hold = _Hold()
        teardown = state.teardown
        if not teardown.answer_close:
            hold.seconds = float("inf")
        elif teardown.close_delay > 0:
            hold.seconds = teardown.close_delay

        def received(when: float, held: bool) -> None:
            self._event(state, "close.received", when)

        def answered(when: float) -> None:
            self._event(state, "close.answered", when)

        def peer_eof(when: float) -> None:
            self._event(state, "peer.eof", when)

        hold.on_close_received = received
        hold.on_close_answered = answered
        hold.on_peer_eof = peer_eof
        connection.hold = hold  # type: ignore[attr-defined]

    async def _handle(self, connection: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        with self._lock:
            state = self._pending.pop(connection, None)
            if state is None:  # not seen by _process_request: serve it unrecorded
                state = _Connection("", (), (), 101)
            state.open = True
            state.timeline.append(("opened", time.monotonic()))
            self._active += 1
            self._changed.notify_all()
        self._live[connection] = state
        try:
            self._at_moment(connection, state, "connected")
            async for message in connection:
                if isinstance(message, str):
                    self._on_text(connection, state, message)
                else:
                    self._on_audio(connection, state, message)
        except ConnectionClosed:
            pass
        except Exception:  # a broken client must not break the service
            logger.exception("SpeechService connection failed")
        finally:
            self._live.pop(connection, None)
            for task in list(state.tasks):
                task.cancel()
            with self._lock:
                state.open = False
                state.close_code = _close_code(connection)
                state.timeline.append(("closed", time.monotonic()))
                self._active -= 1
                self._changed.notify_all()

    # -- closing on purpose ------------------------------------------------------------

    def _at_moment(self, connection: ServerConnection, state: _Connection, moment: str) -> bool:
        """Begin the teardown's ``ServerClose`` if it is due at ``moment``; True if so."""
        close = state.teardown.server_close
        if close is None or close.at != moment or state.server_close_begun:
            return False
        state.server_close_begun = True
        self._spawn(state, self._server_close(connection, state, close))
        return True

    async def _server_close(
        self, connection: ServerConnection, state: _Connection, close: ServerClose
    ) -> None:
        if close.delay:
            await asyncio.sleep(close.delay)
        await self._close(connection, state, close.code, close.reason, abort=close.abort)

    async def _close(
        self,
        connection: ServerConnection,
        state: _Connection,
        code: int,
        reason: str,
        *,
        abort: bool = False,
    ) -> None:
        """Close from the service's side (the SDK's answer to it is never held back)."""
        state.server_close_begun = True
        self._event(state, "server.close")
        hold = getattr(connection, "hold", None)
        if hold is not None:
            hold.passthrough = True
        if abort:
            connection.transport.abort()
        else:
            await connection.close(code, reason)

    # -- messages from the SDK ---------------------------------------------------------

    def _on_text(self, connection: ServerConnection, state: _Connection, message: str) -> None:
        parsed = parse_text_message(message)
        path = parsed.path.lower()
        if not parsed.request_id or path not in ("speech.context", "synthesis.context", "ssml"):
            return  # speech.config, telemetry, ...: nothing to answer
        if path == "ssml":
            self._begin_synthesis(connection, state, parsed.request_id, parsed.body)
            return
        try:
            context = json.loads(parsed.body or b"{}")
        except ValueError:
            context = {}
        if not isinstance(context, dict):
            context = {}
        if path == "synthesis.context":
            state.synthesis_requests[parsed.request_id] = metadata_options(context)
        else:
            self._begin_turn(connection, state, parsed.request_id, context)

    def _on_audio(self, connection: ServerConnection, state: _Connection, message: bytes) -> None:
        parsed = parse_audio_message(message)
        turn = state.turns.get(parsed.request_id) or self._begin_turn(
            connection, state, parsed.request_id, {}
        )
        body = parsed.body
        if not body:
            if not turn.audio_ended.is_set():
                self._event(state, "audio.end")
            turn.audio_ended.set()
            turn.progress.set()
            return
        if not turn.seen_audio:
            turn.seen_audio = True
            header = wav_header_info(body)
            if header is not None:
                length, turn.byte_rate = header
                body = body[length:]
        with self._lock:
            turn.audio_bytes += len(body)
        turn.progress.set()

    def _begin_turn(
        self,
        connection: ServerConnection,
        state: _Connection,
        request_id: str,
        context: Dict[str, Any],
    ) -> _Turn:
        existing = state.turns.get(request_id)
        if existing is not None:
            return existing
        turn = _Turn(
            request_id=request_id,
            mode=recognition_mode(state.path, context),
            continuation="continuation" in context,
            audio_ended=asyncio.Event(),
            detailed=any(k == "format" and v.lower() == "detailed" for k, v in state.query),
            context=context,
        )
        with self._lock:
            state.turns[request_id] = turn
            script = self._script
        self._spawn(state, self._answer(connection, state, turn, script))
        return turn

    # -- recognition -------------------------------------------------------------------

    async def _answer(
        self, connection: ServerConnection, state: _Connection, turn: _Turn, script: Script
    ) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self._turn_start(connection, state, turn, script)
            if script.streaming:
                await self._stream(connection, state, turn, script)
            elif turn.continuation:
                await self._reach(connection, state, turn, None)
                await self._send_all(connection, state, turn, script, plan_continuation(turn.ticks))
            else:
                await self._reach(connection, state, turn, None)
                replies = plan_turn(script, turn.mode, turn.ticks, detailed=turn.detailed)
                await self._send_all(connection, state, turn, script, replies)
        except (ConnectionClosed, _Stop):
            pass
        except Exception:  # never lose an error in a background task
            logger.exception("SpeechService failed to answer turn %s", turn.request_id)

    async def _turn_start(
        self, connection: ServerConnection, state: _Connection, turn: _Turn, script: Script
    ) -> None:
        if script.start_delay:
            await asyncio.sleep(script.start_delay)
        tag = uuid.uuid4().hex
        await connection.send(
            format_message("turn.start", turn.request_id, {"context": {"serviceTag": tag}})
        )
        if self._at_moment(connection, state, "turn.start"):
            raise _Stop

    async def _stream(
        self, connection: ServerConnection, state: _Connection, turn: _Turn, script: Script
    ) -> None:
        """Answer a turn while its audio streams in (see ``Script``).

        In continuous modes ``speech.startDetected`` goes once, before the first phrase, and
        ``speech.endDetected`` once, after the audio ended: on ``speech.endDetected`` the SDK
        stops sending audio and, after ``turn.end``, replays it in a continuation turn, so it
        must not come while audio is still streaming in (SDK 1.53: "OnSpeechEndDetected:
        Flush"). An interactive turn gets both around its phrase, as from the real service.
        """
        settings = turn_settings(turn.context, state.query)
        silence = resolve_end_silence(script, settings)
        interactive = turn.mode == "interactive"
        cursor, answered, started, ended = 0, False, False, False
        origin = continuation_origin(turn.context)
        for placed in place_phrases(script, silence, origin):
            if interactive and answered:
                break
            cues = phrase_cues(placed, silence, detailed=turn.detailed)
            if not await self._reach(connection, state, turn, cues[0].at) and not placed.owed:
                break  # the audio ended before this repetition began
            for cue in cues:
                path = cue.reply.path
                reached = await self._reach(connection, state, turn, cue.at)
                if not interactive:
                    if path == "speech.endDetected" or (path == "speech.startDetected" and started):
                        continue
                    if path == "speech.phrase" and started and not ended and not reached:
                        ended = True  # the audio is over: the speech ends with this phrase
                        end = {"Offset": placed.offset + placed.duration}
                        await self._send(
                            connection, state, turn, script, Reply("speech.endDetected", end)
                        )
                await self._send(connection, state, turn, script, cue.reply)
                started = started or path == "speech.startDetected"
            cursor = max(cursor, placed.offset + placed.duration)
            answered = True
        turn_ticks: Optional[int] = None
        if interactive and not answered:
            initial = settings.initial_silence
            if initial is None:
                initial = seconds_to_ticks(DEFAULT_INITIAL_SILENCE)
            await self._reach(connection, state, turn, initial)
            turn_ticks = min(turn.ticks, initial)
        elif not interactive:
            await self._reach(connection, state, turn, None)
            if started and not ended:
                end_reply = Reply("speech.endDetected", {"Offset": cursor})
                await self._send(connection, state, turn, script, end_reply)
        if turn_ticks is None:
            turn_ticks = turn.ticks
        replies = end_of_turn(script, turn.mode, cursor, turn_ticks, answered=answered)
        await self._send_all(connection, state, turn, script, replies)

    async def _reach(
        self, connection: ServerConnection, state: _Connection, turn: _Turn, ticks: Optional[int]
    ) -> bool:
        """Wait until ``ticks`` of the turn's audio arrived (True) or the audio ended first
        (False); ``None`` waits for the end. Raises ``_Stop`` if the end of the audio is
        the teardown's moment to close."""
        while ticks is None or turn.ticks < ticks:
            if turn.audio_ended.is_set():
                if not turn.end_noticed:
                    turn.end_noticed = True
                    if self._at_moment(connection, state, "audio.end"):
                        raise _Stop
                    teardown = state.teardown
                    if not teardown.answer_end:
                        await asyncio.Event().wait()  # until the connection ends
                    if teardown.end_delay:
                        await asyncio.sleep(teardown.end_delay)
                return False
            turn.progress.clear()
            await turn.progress.wait()
        return True

    async def _send_all(
        self,
        connection: ServerConnection,
        state: _Connection,
        turn: _Turn,
        script: Script,
        replies: Iterable[Reply],
    ) -> None:
        for reply in replies:
            await self._send(connection, state, turn, script, reply)

    async def _send(
        self,
        connection: ServerConnection,
        state: _Connection,
        turn: _Turn,
        script: Script,
        reply: Reply,
    ) -> None:
        if script.message_delay:
            await asyncio.sleep(script.message_delay)
        if reply.close_code is not None:
            await self._close(connection, state, reply.close_code, reply.close_reason)
            raise _Stop
        await connection.send(format_message(reply.path, turn.request_id, reply.body))
        if reply.path == "turn.end":
            self._event(state, "turn.end")
        moment = {"speech.phrase": "result", "turn.end": "turn.end"}.get(reply.path)
        if moment is not None and self._at_moment(connection, state, moment):
            raise _Stop

    # -- synthesis ---------------------------------------------------------------------

    def _begin_synthesis(
        self, connection: ServerConnection, state: _Connection, request_id: str, ssml: bytes
    ) -> None:
        if request_id in state.turns:
            return
        turn = _Turn(
            request_id=request_id, mode="synthesis", continuation=False, audio_ended=asyncio.Event()
        )
        request = state.synthesis_requests.pop(request_id, SynthesisRequest())
        with self._lock:
            state.turns[request_id] = turn
            script = self._script
        self._spawn(
            state,
            self._synthesize(
                connection, state, turn, script, request, ssml.decode("utf-8", "replace")
            ),
        )

    async def _synthesize(
        self,
        connection: ServerConnection,
        state: _Connection,
        turn: _Turn,
        script: Script,
        request: SynthesisRequest,
        ssml: str,
    ) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self._turn_start(connection, state, turn, script)
            fmt = output_format(request.output_format)
            try:
                text = ssml_text(ssml)
            except ValueError as error:
                await self._refuse(connection, state, script, 1007, str(error))
            with self._lock:
                turn.text, turn.output_format = text, request.output_format
            if fmt is None:
                await self._refuse(
                    connection,
                    state,
                    script,
                    1007,
                    f"output format {request.output_format} is not made by the local service",
                )
            fault = synthesis_close(script.fault)
            if fault is not None:
                await self._refuse(connection, state, script, *fault)
            synthesis = script.synthesis
            audio = synthesis_audio(fmt, synthesis_seconds(text, synthesis), synthesis)
            boundaries = word_boundaries(text, synthesis) if request.word_boundaries else []
            size = chunk_size(fmt, synthesis)
            for start in range(0, len(audio), size):
                chunk_end = (start + size) * TICKS_PER_SECOND // fmt.byte_rate
                while boundaries and boundaries[0].offset < chunk_end:
                    await self._send(
                        connection,
                        state,
                        turn,
                        script,
                        Reply("audio.metadata", format_metadata(boundaries.pop(0))),
                    )
                if script.message_delay:
                    await asyncio.sleep(script.message_delay)
                chunk = audio[start : start + size]
                await connection.send(format_audio_message(turn.request_id, chunk))
                with self._lock:
                    turn.audio_bytes += len(chunk)
                if self._at_moment(connection, state, "result"):
                    raise _Stop
            for boundary in boundaries:
                metadata = Reply("audio.metadata", format_metadata(boundary))
                await self._send(connection, state, turn, script, metadata)
            turn.audio_ended.set()
            if request.session_end:
                ticks = len(audio) * TICKS_PER_SECOND // fmt.byte_rate
                await self._send(
                    connection, state, turn, script, Reply("audio.metadata", session_end(ticks))
                )
            await self._send(connection, state, turn, script, Reply("turn.end", {}))
        except (ConnectionClosed, _Stop):
            pass
        except Exception:  # never lose an error in a background task
            logger.exception("SpeechService failed to answer synthesis %s", turn.request_id)

    async def _refuse(
        self,
        connection: ServerConnection,
        state: _Connection,
        script: Script,
        code: int,
        reason: str,
    ) -> NoReturn:
        """End a synthesis turn with a websocket close, as the real service reports errors."""
        if script.message_delay:
            await asyncio.sleep(script.message_delay)
        await self._close(connection, state, code, reason[:120])
        raise _Stop
