"""Seeing, and holding back, the SDK's websocket close frame before ``websockets`` answers it.

``websockets`` answers a peer's close frame as soon as it parses it. To delay that answer
(``Teardown.close_delay``) or never give it (``Teardown(answer_close=False)``), the service's
connections look at the bytes the client sends before ``websockets`` does: client frames
are simple to walk (RFC 6455, section 5.2), and from the first close frame on, the bytes are
kept back until the hold ends. Only ``asyncio.Protocol.data_received``/``eof_received``
are overridden, which every ``websockets.asyncio`` connection implements.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Callable, List, Optional

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

__all__ = ["CloseFrameScanner", "holding_connection_class"]

_CLOSE_OPCODE = 0x8


class CloseFrameScanner:
    """Walks a websocket client's byte stream frame by frame and finds its first close frame.

    ``feed(data)`` returns where in ``data`` the close frame's first byte is (0 when its
    header began in earlier data), or ``None`` when ``data`` holds none. Once a close frame
    was found the scanner stops: everything after it belongs to the close.
    """

    def __init__(self) -> None:
        self._header = b""
        self._payload_left = 0
        self.found = False

    def feed(self, data: bytes) -> Optional[int]:
        if self.found:
            return 0
        position = 0
        size = len(data)
        while position < size:
            if self._payload_left:
                step = min(self._payload_left, size - position)
                self._payload_left -= step
                position += step
                continue
            header_start = position - len(self._header)
            needed = self._header_length()
            take = min(needed - len(self._header), size - position)
            self._header += data[position : position + take]
            position += take
            if len(self._header) < 2 or len(self._header) < self._header_length():
                continue
            if self._header[0] & 0x0F == _CLOSE_OPCODE:
                self.found = True
                return max(header_start, 0)
            self._payload_left = self._payload_length()
            self._header = b""
        return None

    def _header_length(self) -> int:
        if len(self._header) < 2:
            return 2
        second = self._header[1]
        length = second & 0x7F
        extended = 2 if length == 126 else 8 if length == 127 else 0
        return 2 + extended + (4 if second & 0x80 else 0)

    def _payload_length(self) -> int:
        length = self._header[1] & 0x7F
        if length == 126:
            return int.from_bytes(self._header[2:4], "big")
        if length == 127:
            return int.from_bytes(self._header[2:10], "big")
        return length


class _Hold:
    """Per-connection state: the scanner, the bytes held back, and what to tell the service."""

    def __init__(self) -> None:
        self.scanner = CloseFrameScanner()
        self.seconds: Optional[float] = None  # None: pass the close through; inf: never
        self.held: Optional[List[bytes]] = None
        self.eof = False
        self.passthrough = False  # the service closed first: its close is being answered
        self.on_close_received: Optional[Callable[[float, bool], None]] = None
        self.on_close_answered: Optional[Callable[[float], None]] = None
        self.on_peer_eof: Optional[Callable[[float], None]] = None
        self.timer: Optional[asyncio.TimerHandle] = None


def holding_connection_class() -> type[ServerConnection]:
    """A ``ServerConnection`` subclass that can hold back the client's close frame.

    Each connection gets a ``hold`` (``_Hold``) that the service configures in
    ``process_request``; ``release_hold()`` passes what was held to ``websockets``.
    """
    from websockets.asyncio.server import ServerConnection
    from websockets.protocol import State

    class HoldingConnection(ServerConnection):
        hold: _Hold

        def data_received(self, data: bytes) -> None:
            hold = self.__dict__.get("hold")
            if hold is None or self.protocol.state is State.CONNECTING:
                super().data_received(data)
                return
            if hold.held is not None:
                hold.held.append(data)
                return
            index = hold.scanner.feed(data)
            if index is None or hold.passthrough:
                super().data_received(data)
                if index is not None and hold.on_close_received is not None:
                    hold.on_close_received(time.monotonic(), False)
                return
            if index:
                super().data_received(data[:index])
            holding = hold.seconds is not None
            now = time.monotonic()
            if hold.on_close_received is not None:
                hold.on_close_received(now, holding)
            if not holding:
                super().data_received(data[index:])
                if hold.on_close_answered is not None:
                    hold.on_close_answered(time.monotonic())
                return
            hold.held = [data[index:]]
            if hold.seconds is not None and hold.seconds != float("inf"):
                hold.timer = self.loop.call_later(hold.seconds, self.release_hold)

        def eof_received(self) -> Optional[bool]:  # type: ignore[override]
            hold = self.__dict__.get("hold")
            if hold is not None and hold.on_peer_eof is not None:
                hold.on_peer_eof(time.monotonic())
            if hold is not None and hold.held is not None:
                if hold.seconds == float("inf"):
                    return None  # never answered, and the peer is gone: asyncio closes
                hold.eof = True
                return True  # keep the transport open until the hold ends
            super().eof_received()
            return None

        def release_hold(self) -> None:
            """Let ``websockets`` see the held close frame (and EOF), so it answers now."""
            hold = self.__dict__.get("hold")
            if hold is None or hold.held is None:
                return
            held, hold.held = hold.held, None
            if hold.timer is not None:
                hold.timer.cancel()
                hold.timer = None
            if self.transport.is_closing():
                return
            if hold.on_close_answered is not None:
                hold.on_close_answered(time.monotonic())
            super().data_received(b"".join(held))
            # after EOF, what asyncio does when eof_received() does not keep the transport
            if hold.eof and not super().eof_received():
                self.transport.close()

    return HoldingConnection
