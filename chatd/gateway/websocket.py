"""The raw WebSocket gateway (trio-websocket): the fast path for WebSocket dialects.

It listens on its own port, routes each upgrade request by path to a dialect's
handler factory, and runs a `Connection` per client. Per the trio-websocket
contract, an exception escaping a handler would take the whole listener down,
so every connection contains its errors here.
"""

import logging
from collections.abc import Callable

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from ..config import Config
from ..core.bus import Bus
from .session import CLOSE_GOING_AWAY, Connection, GatewayStats, Handler, TransportClosed

log = logging.getLogger("chatd.gateway")

HandlerFactory = Callable[[Connection, WebSocketRequest], Handler]


class TrioWebSocketTransport:
    __slots__ = ("ws",)

    def __init__(self, ws: WebSocketConnection):
        self.ws = ws

    async def receive(self):
        try:
            return await self.ws.get_message()
        except ConnectionClosed:
            raise TransportClosed() from None

    async def send(self, frames):
        try:
            for frame in frames:
                await self.ws.send_message(frame)
        except ConnectionClosed:
            raise TransportClosed() from None

    async def ping(self):
        try:
            await self.ws.ping()
        except ConnectionClosed:
            raise TransportClosed() from None

    async def close(self, code, reason):
        await self.ws.aclose(code, reason[:120])


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
        self.routes[path or "/"] = factory

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as handlers:
            server = await handlers.start(
                lambda task_status: serve_websocket(
                    self._serve_one,
                    self.config.server.listen,
                    self.config.server.gateway_port,
                    None,
                    handler_nursery=handlers,
                    max_message_size=self.config.limits.max_ws_frame,
                    message_queue_size=4,
                    connect_timeout=10,
                    disconnect_timeout=5,
                    task_status=task_status,
                )
            )
            self.port = server.port
            task_status.started(self.port)

    async def _serve_one(self, request: WebSocketRequest) -> None:
        try:
            path = request.path.split("?", 1)[0].rstrip("/") or "/"
            factory = self.routes.get(path)
            if factory is None or self._closing:
                await request.reject(404 if factory is None else 503)
                return
            ws = await request.accept()
            self.stats.accepted += 1
            conn = Connection(TrioWebSocketTransport(ws), self.bus, self.config.limits, self.stats)
            self.connections.add(conn)
            try:
                await conn.run(factory(conn, request))
            finally:
                self.connections.discard(conn)
        except (ConnectionClosed, trio.BrokenResourceError):
            pass
        except Exception:
            log.exception("websocket connection failed")

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down") -> None:
        self._closing = True
        for conn in list(self.connections):
            conn.close_soon(code, reason)
