"""The raw WebSocket gateway on trio streams, the fast path for WebSocket dialects.

It listens on its own port, routes each upgrade request by path to a
dialect's handler factory, and runs a `Connection` (gateway/session.py) per
client. wsproto does the opening handshake; after it, frames are read and
built by gateway/frames.py, and every frame queued for a client is written
with one `send_all`. That coalescing is what makes fan-out cheap.

Writes never corrupt the frame stream and always leave room for a close frame: a data write
first waits (cancellably, having written nothing) until the socket's unsent bytes (Linux
SIOCOUTQ) plus the new frames fit in half of SO_SNDBUF — the half the kernel is sure to accept
whatever its per-packet overhead — so a client that stops reading lets frames pile up in the
connection's bounded queue rather than in the kernel. A write cancelled part-way (possible only
if the kernel buffer filled anyway) is finished, shielded, within `WRITE_TIMEOUT`; if it cannot
be, nothing else is written after the frame it cut short. So when a slow consumer's queue overflows, its close frame (1013) still
fits into the kernel buffer behind the backlog, and the client reads it after that backlog.
"""

import fcntl
import logging
import os
import socket
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.utilities import RemoteProtocolError

from ..config import Config
from ..core.bus import Bus
from .frames import BINARY, CLOSE, PING, PONG, FrameReader, ProtocolViolation, close_frame, frame
from .session import (
    CLOSE_GOING_AWAY,
    Connection,
    GatewayStats,
    Handler,
    TransportClosed,
    contained,
)

log = logging.getLogger("chatd.gateway")

RECEIVE_CHUNK = 65536
MAX_REQUEST_HEAD = 16384
HANDSHAKE_TIMEOUT = 10
WRITE_TIMEOUT = 5.0  # seconds a write cut short by a cancel may take to finish before the connection drops
ROOM_POLL = 0.01  # seconds between checks of the kernel send buffer while a client is not reading ...
ROOM_POLL_MAX = 0.5  # ... doubling up to this
# Bytes written on the strength of one look at the kernel's send buffer before looking again. What
# was unsent then can only have shrunk since, but for our own writes, so the room seen then, less
# what we wrote since, is still there; this bound re-reads it now and then (SO_SNDBUF moves).
ROOM_TRUST = 64 * 1024
_SIOCOUTQ = getattr(termios, "TIOCOUTQ", None)  # Linux: SIOCOUTQ == TIOCOUTQ


def _unsent_and_budget(stream) -> tuple[int, int] | None:
    """(bytes not yet acknowledged by the peer, bytes of data we allow in the kernel), or None
    where the platform or stream cannot tell."""
    sock = getattr(stream, "socket", None)
    if sock is None or _SIOCOUTQ is None:
        return None
    try:
        unsent = struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0]
        sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    except (OSError, ValueError):
        return None
    return unsent, sndbuf // 2


@dataclass(frozen=True)
class UpgradeRequest:
    path: str
    headers: dict[str, str]
    remote: str


HandlerFactory = Callable[[Connection, UpgradeRequest], Handler]


class WebSocketTransport:
    """A server-side WebSocket on a trio stream, after the handshake. `send` takes text frames:
    `str`, or `bytes` that are already UTF-8 (dialects encode JSON straight to bytes)."""

    def __init__(self, stream: trio.abc.Stream, max_message: int, remote_port: int = 0):
        self.stream = stream
        self.remote_port = remote_port
        self.reader = FrameReader(max_message)
        self._send_lock = trio.Lock()
        self._room = 0  # bytes of data frames known to fit below the budget without asking the kernel
        self._pong = trio.Event()
        self._closed = False
        self.close_code: int | None = None  # the client's, when it closed first
        self.violation: int | None = None  # our close code, when the client broke the protocol

    async def _wait_for_room(self, size: int) -> None:
        """Wait until `size` more bytes of data frames fit below the budget (always when nothing
        is unsent, so that one frame larger than the budget still goes). No system call while the
        room last seen still covers the write (see ROOM_TRUST)."""
        if size <= self._room:
            self._room -= size
            return
        delay = ROOM_POLL
        while not self._closed:
            state = _unsent_and_budget(self.stream)
            if state is None:
                return
            unsent, budget = state
            if unsent == 0 or unsent + size <= budget:
                self._room = max(0, min(budget - unsent - size, ROOM_TRUST))
                return
            # Backing off keeps many stalled clients from costing a wake-up each every few ms.
            await trio.sleep(delay)
            delay = min(delay * 2, ROOM_POLL_MAX)

    async def _write(self, data: bytes, *, control: bool = False) -> None:
        """Write whole frames. Data frames wait for room first (cancellable: nothing written yet).
        No cancel scope per write (each costs more than the write on a fan-out path): `_send`
        itself tells a cancel before the first byte (harmless) from one that cut a frame short.
        Nor a scheduler round trip when the lock is free and the kernel takes the bytes at once:
        the writers that call this wait (and so yield) for their next batch anyway."""
        if self._closed:
            raise TransportClosed()
        if not control:
            await self._wait_for_room(len(data))
        lock = self._send_lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            if self._closed:
                raise TransportClosed()
            await self._send(data)
        finally:
            lock.release()

    async def _send(self, data: bytes) -> None:
        """All of `data`: written straight to the (non-blocking) socket, waiting for it to become
        writable only when the kernel buffer is full — cancellable there; a cancel that arrives
        part-way is handled by `_finish`."""
        sock = getattr(self.stream, "socket", None)
        try:
            if sock is None:
                await self.stream.send_all(data)
                return
            fd = sock.fileno()
            with memoryview(data) as view:
                sent, total = 0, len(view)
                while sent < total:
                    try:
                        sent += os.write(fd, view[sent:])
                        continue
                    except BlockingIOError:
                        pass
                    try:
                        await trio.lowlevel.wait_writable(sock)
                    except trio.Cancelled:
                        if sent:
                            await self._finish(view[sent:])
                        raise
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            self._closed = True
            raise TransportClosed() from None

    async def _finish(self, rest) -> None:
        """A cancel came after part of a write went out (the kernel buffer filled despite the
        reserve): finish it, shielded but within WRITE_TIMEOUT, so the stream stays whole and a
        close frame can still follow. If it cannot finish, a frame is cut short and nothing may
        follow it, not even a close frame: the client sees the connection drop (1006)."""
        with trio.CancelScope(shield=True), trio.move_on_after(WRITE_TIMEOUT):
            try:
                await self.stream.send_all(rest)
                return
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        self._closed = True

    async def send(self, frames) -> None:
        await self._write(b"".join(frame(f.encode() if isinstance(f, str) else f) for f in frames))

    async def send_messages(self, messages) -> None:
        """Write messages in one go: `str` as text frames, `bytes` as binary frames."""
        await self._write(b"".join(frame(m.encode()) if isinstance(m, str) else frame(m, BINARY)
                                   for m in messages))

    async def ping(self) -> None:
        self._pong = trio.Event()
        await self._write(frame(b"hb", PING), control=True)
        await self._pong.wait()

    async def receive(self):
        reader = self.reader
        while True:
            try:
                item = reader.next()
            except ProtocolViolation as e:
                self.violation = e.code
                await self.close(e.code, e.reason)
                raise TransportClosed() from None
            if item is None:
                try:
                    data = await self.stream.receive_some(RECEIVE_CHUNK)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    await self._abort()
                    raise TransportClosed()
                reader.feed(data)
                continue
            opcode, payload = item
            if opcode < CLOSE:
                return payload
            if opcode == PING:
                await self._write(frame(payload, PONG), control=True)
            elif opcode == PONG:
                self._pong.set()
            else:
                self.close_code = payload[0]
                try:
                    await self._write(close_frame(1000 if self.close_code == 1005 else self.close_code),
                                      control=True)
                except TransportClosed:
                    pass
                await self._abort()
                raise TransportClosed()

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        try:
            await self._write(close_frame(code, reason), control=True)
        except TransportClosed:
            pass
        await self._abort()

    async def _abort(self) -> None:
        self._closed = True
        with trio.move_on_after(1) as scope:
            scope.shield = True
            await self.stream.aclose()


class WebSocketGateway:
    def __init__(self, config: Config, bus: Bus):
        self.config = config
        self.bus = bus
        self.stats = GatewayStats()
        self.routes: dict[str, HandlerFactory] = {}
        self.connections: set[Connection] = set()
        self.port: int | None = None
        self._closing = False

    def route(self, path: str, factory: HandlerFactory) -> None:
        self.routes[path.rstrip("/") or "/"] = factory

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(
            self.config.server.gateway_port, host=self.config.server.listen, backlog=4096)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(contained(self._serve_one, "websocket gateway"), listeners)

    async def _handshake(self, stream: trio.SocketStream) -> tuple[WSConnection, Request, bytes] | None:
        """The upgrade request, and whatever the client sent after it (its first frames)."""
        ws = WSConnection(ConnectionType.SERVER)
        head = bytearray()
        with trio.move_on_after(HANDSHAKE_TIMEOUT):
            while (end := head.find(b"\r\n\r\n")) < 0:
                if len(head) > MAX_REQUEST_HEAD:
                    raise RemoteProtocolError("request head too large", RejectConnection(status_code=431))
                data = await stream.receive_some(RECEIVE_CHUNK)
                if not data:
                    return None
                head += data
            ws.receive_data(bytes(head[:end + 4]))
            for event in ws.events():
                if isinstance(event, Request):
                    return ws, event, bytes(head[end + 4:])
        return None

    async def _serve_one(self, stream: trio.SocketStream) -> None:
        try:
            try:
                shaken = await self._handshake(stream)
            except RemoteProtocolError as e:
                status = HTTPStatus(e.event_hint.status_code if e.event_hint else 400)
                await stream.send_all(f"HTTP/1.1 {status.value} {status.phrase}\r\n"
                                      "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
                return
            if shaken is None:
                return
            ws, request, early = shaken
            path = request.target.split("?", 1)[0].rstrip("/") or "/"
            factory = self.routes.get(path)
            if factory is None or self._closing:
                await stream.send_all(ws.send(RejectConnection(status_code=404 if factory is None else 503)))
                return
            await stream.send_all(ws.send(AcceptConnection()))
            self.stats.accepted += 1
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.extra_headers}
            try:
                host, port = stream.socket.getpeername()[:2]
            except OSError:
                host, port = "", 0
            upgrade = UpgradeRequest(path=path, headers=headers, remote=f"{host}:{port}")
            transport = WebSocketTransport(stream, self.config.limits.max_ws_frame, port)
            transport.reader.feed(early)
            conn = Connection(transport, self.bus, self.config.limits, self.stats)
            self.connections.add(conn)
            try:
                await conn.run(factory(conn, upgrade))
            finally:
                self.connections.discard(conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError, TransportClosed):
            pass
        except Exception:
            log.exception("websocket connection failed")
        finally:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await stream.aclose()

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down") -> None:
        self._closing = True
        for conn in list(self.connections):
            conn.close_soon(code, reason)
