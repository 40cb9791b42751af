"""The raw WebSocket gateway: wsproto over trio streams, the fast path for WebSocket dialects.

It listens on its own port, routes each upgrade request by path to a
dialect's handler factory, and runs a `Connection` (gateway/session.py) per
client. Outgoing frames are built here, not by wsproto: server frames are
unmasked and we negotiate no extensions, so a frame is just a header and the
payload, and every frame queued for a client is written with one `send_all`.
That coalescing is what makes fan-out cheap.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ..config import Config
from ..core.bus import Bus
from .session import (
    CLOSE_GOING_AWAY,
    CLOSE_TOO_BIG,
    Connection,
    GatewayStats,
    Handler,
    TransportClosed,
)

log = logging.getLogger("chatd.gateway")

RECEIVE_CHUNK = 65536
HANDSHAKE_TIMEOUT = 10


@dataclass(frozen=True)
class UpgradeRequest:
    path: str
    headers: dict[str, str]
    remote: str


HandlerFactory = Callable[[Connection, UpgradeRequest], Handler]


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One final, unmasked server frame (text by default)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big") + payload


class WsprotoTransport:
    """A server-side WebSocket on a trio stream. `send` takes text frames: `str`, or `bytes`
    that are already UTF-8 (dialects encode JSON straight to bytes)."""

    def __init__(self, stream: trio.abc.Stream, ws: WSConnection, max_message: int, remote_port: int = 0):
        self.stream = stream
        self.remote_port = remote_port
        self.ws = ws
        self.max_message = max_message
        self._send_lock = trio.Lock()
        self._parts: list = []
        self._size = 0
        self._pong = trio.Event()
        self._closed = False
        self.close_code: int | None = None

    async def _write(self, data: bytes) -> None:
        if self._closed:
            raise TransportClosed()
        try:
            async with self._send_lock:
                await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._closed = True
            raise TransportClosed() from None

    async def send(self, frames) -> None:
        await self._write(b"".join(frame(f.encode() if isinstance(f, str) else f) for f in frames))

    async def ping(self) -> None:
        self._pong = trio.Event()
        await self._write(self.ws.send(Ping(b"hb")))
        await self._pong.wait()

    async def receive(self):
        while True:
            for event in self.ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    self._size += len(event.data)
                    if self._size > self.max_message:
                        self.close_code = CLOSE_TOO_BIG
                        await self.close(CLOSE_TOO_BIG, "message too big")
                        raise TransportClosed()
                    self._parts.append(event.data)
                    if event.message_finished:
                        parts, self._parts, self._size = self._parts, [], 0
                        return parts[0] if len(parts) == 1 else parts[0][:0].join(parts)
                elif isinstance(event, Ping):
                    await self._write(self.ws.send(event.response()))
                elif isinstance(event, Pong):
                    self._pong.set()
                elif isinstance(event, CloseConnection):
                    self.close_code = event.code
                    try:
                        await self._write(self.ws.send(event.response()))
                    except (TransportClosed, LocalProtocolError):
                        pass
                    await self._abort()
                    raise TransportClosed()
            try:
                data = await self.stream.receive_some(RECEIVE_CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                await self._abort()
                raise TransportClosed()
            try:
                self.ws.receive_data(data)
            except RemoteProtocolError:
                await self._abort()
                raise TransportClosed() from None

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        try:
            await self._write(self.ws.send(CloseConnection(code=code, reason=reason[:120])))
        except (TransportClosed, LocalProtocolError):
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
        await trio.serve_listeners(self._serve_one, listeners)

    async def _handshake(self, stream: trio.SocketStream) -> tuple[WSConnection, Request] | None:
        ws = WSConnection(ConnectionType.SERVER)
        with trio.move_on_after(HANDSHAKE_TIMEOUT):
            while True:
                data = await stream.receive_some(RECEIVE_CHUNK)
                if not data:
                    return None
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, Request):
                        return ws, event
        return None

    async def _serve_one(self, stream: trio.SocketStream) -> None:
        try:
            try:
                shaken = await self._handshake(stream)
            except RemoteProtocolError as e:
                await stream.send_all(
                    f"HTTP/1.1 {e.event_hint.status_code if e.event_hint else 400} Bad Request\r\n"
                    "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
                return
            if shaken is None:
                return
            ws, request = shaken
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
            transport = WsprotoTransport(stream, ws, self.config.limits.max_ws_frame, port)
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
