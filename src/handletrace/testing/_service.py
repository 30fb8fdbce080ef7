"""``SpeechService``: a local websocket speech service that the real Speech SDK talks to."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http
import json
import logging
import threading
import uuid
import weakref
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set, Tuple, Type
from urllib.parse import parse_qsl, urlsplit

from ._protocol import (
    DEFAULT_BYTE_RATE,
    Reply,
    audio_ticks,
    format_message,
    parse_audio_message,
    parse_text_message,
    plan_continuation,
    plan_turn,
    recognition_mode,
    wav_header_info,
)
from ._records import ConnectionRecord, TurnRecord, redact
from ._script import DEFAULT_SCRIPT, HandshakeError, Script

if TYPE_CHECKING:
    from websockets.asyncio.server import Server, ServerConnection
    from websockets.http11 import Request, Response

__all__ = ["SpeechService"]

logger = logging.getLogger("handletrace.testing")

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


@dataclass
class _Turn:
    """Mutable state of one turn; touched on the service's loop thread only."""

    request_id: str
    mode: str
    continuation: bool
    audio_ended: asyncio.Event
    audio_bytes: int = 0
    byte_rate: int = DEFAULT_BYTE_RATE
    seen_audio: bool = False
    detailed: bool = False

    def record(self) -> TurnRecord:
        return TurnRecord(
            request_id=self.request_id,
            mode=self.mode,
            continuation=self.continuation,
            audio_bytes=self.audio_bytes,
            audio_ended=self.audio_ended.is_set(),
        )


@dataclass
class _Connection:
    """Mutable state of one connection; written on the loop thread under the service lock."""

    path: str
    query: Tuple[Tuple[str, str], ...]
    headers: Tuple[Tuple[str, str], ...]
    status: int
    open: bool = False
    close_code: Optional[int] = None
    turns: Dict[str, _Turn] = field(default_factory=dict)
    tasks: Set[asyncio.Task[None]] = field(default_factory=set)

    def record(self) -> ConnectionRecord:
        return ConnectionRecord(
            path=self.path,
            query=self.query,
            headers=self.headers,
            status=self.status,
            turns=tuple(turn.record() for turn in self.turns.values()),
            open=self.open,
            close_code=self.close_code,
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
    background thread, answers every recognition turn as its ``script`` says, and records
    what it saw (``connections``, ``active_connections``) without ever storing secrets::

        with SpeechService(Script.of("hello world")) as service:
            config = speechsdk.SpeechConfig(host=service.host)
            ...

    ``start()`` and ``stop()`` are idempotent; ``stop()`` closes every open websocket (code
    1001). All methods and properties are thread-safe. A recognizer keeps its websocket open
    until it is released, so release recognizers before stopping the service.
    """

    def __init__(self, script: Script = DEFAULT_SCRIPT, *, port: int = 0) -> None:
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
        """The script for turns that start from now on (settable, thread-safe)."""
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
            server.close()
            await server.wait_closed()

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
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        with self._lock:
            state = self._pending.pop(connection, None)
            if state is None:  # not seen by _process_request: serve it unrecorded
                state = _Connection("", (), (), 101)
            state.open = True
            self._active += 1
            self._changed.notify_all()
        try:
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
            for task in list(state.tasks):
                task.cancel()
            with self._lock:
                state.open = False
                state.close_code = _close_code(connection)
                self._active -= 1
                self._changed.notify_all()

    def _on_text(self, connection: ServerConnection, state: _Connection, message: str) -> None:
        parsed = parse_text_message(message)
        if parsed.path.lower() != "speech.context" or not parsed.request_id:
            return  # speech.config, telemetry, ...: nothing to answer
        try:
            context = json.loads(parsed.body or b"{}")
        except ValueError:
            context = {}
        if not isinstance(context, dict):
            context = {}
        self._begin_turn(connection, state, parsed.request_id, context)

    def _on_audio(self, connection: ServerConnection, state: _Connection, message: bytes) -> None:
        parsed = parse_audio_message(message)
        turn = state.turns.get(parsed.request_id) or self._begin_turn(
            connection, state, parsed.request_id, {}
        )
        body = parsed.body
        if not body:
            turn.audio_ended.set()
            return
        if not turn.seen_audio:
            turn.seen_audio = True
            header = wav_header_info(body)
            if header is not None:
                length, turn.byte_rate = header
                body = body[length:]
        with self._lock:
            turn.audio_bytes += len(body)

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
        )
        with self._lock:
            state.turns[request_id] = turn
            script = self._script
        task = asyncio.get_running_loop().create_task(self._answer(connection, turn, script))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
        return turn

    async def _answer(self, connection: ServerConnection, turn: _Turn, script: Script) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            if script.start_delay:
                await asyncio.sleep(script.start_delay)
            tag = uuid.uuid4().hex
            await connection.send(
                format_message("turn.start", turn.request_id, {"context": {"serviceTag": tag}})
            )
            await turn.audio_ended.wait()
            ticks = audio_ticks(turn.audio_bytes, turn.byte_rate)
            replies: List[Reply]
            if turn.continuation:
                replies = plan_continuation(ticks)
            else:
                replies = plan_turn(script, turn.mode, ticks, detailed=turn.detailed)
            for reply in replies:
                if script.message_delay:
                    await asyncio.sleep(script.message_delay)
                if reply.close_code is not None:
                    await connection.close(reply.close_code, reply.close_reason)
                    return
                await connection.send(format_message(reply.path, turn.request_id, reply.body))
        except ConnectionClosed:
            pass
        except Exception:  # never lose an error in a background task
            logger.exception("SpeechService failed to answer turn %s", turn.request_id)
