"""The HTTP port's front door: chatd's own accept loop, in front of Hypercorn.

Every accepted connection runs inside `contained(...)` (gateway/session.py): whatever one
connection raises is logged and ends that connection only, never the process. (An exception
that escaped `hypercorn.trio.serve`'s per-connection task used to reach the root nursery: an
oversize WebSocket frame followed by another frame made Hypercorn 0.18.0 raise TypeError there.)

Per connection, the request head is read first (at most `MAX_HEAD` bytes, `HEAD_TIMEOUT`
seconds):

- a WebSocket upgrade on a path registered with `route_websocket` (the Engine.IO path of the
  sockchat dialect) is served here: wsproto does the handshake and `EngineIOWebSocket` runs the
  session over the gateway's `WebSocketTransport`/`FrameReader`, which refuses an oversize frame
  by its declared length (1009) and keeps room for close frames;
- any other WebSocket upgrade is answered 404, so Hypercorn does not see it;
- anything else goes to Hypercorn's `TCPServer`, on a stream that replays the bytes already
  read. A WebSocket upgrade sent later on a kept-alive connection still reaches Hypercorn (and
  the app's Quart route); a failure there stays contained to that connection.

Shutdown (`shutdown_trigger` returns): stop accepting, tell Hypercorn's keep-alive connections
to close (`WorkerContext.terminated`), give the connections `graceful_timeout` seconds, then
run the app's lifespan shutdown. Built on Hypercorn 0.18.0 internals (`TCPServer`, `Lifespan`,
`WorkerContext`, `wrap_app`): pin that version.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app
from werkzeug.datastructures import Headers, MultiDict
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request
from wsproto.utilities import RemoteProtocolError

from .gateway.engineio import WebSocketClosed
from .gateway.session import TransportClosed, contained
from .gateway.websocket import WebSocketTransport

log = logging.getLogger("chatd.front")

MAX_HEAD = 64 * 1024
HEAD_TIMEOUT = 30.0
RECEIVE_CHUNK = 65536

WebSocketHandler = Callable[["EngineIOWebSocket"], Awaitable[Any]]


class ReplayStream:
    """The accepted stream, with the bytes the front door already read given back first.

    Exactly what Hypercorn's TCPServer uses: `socket`, `receive_some`, `send_all`, `send_eof`,
    `aclose`. It has no `do_handshake`, which is how TCPServer tells a plain stream from TLS.
    """

    def __init__(self, stream: trio.SocketStream, early: bytes):
        self._stream = stream
        self._early = early
        self.socket = stream.socket

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._early:
            data, self._early = self._early, b""
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


class EngineIOWebSocket:
    """What `EngineIOServer.handle_websocket` needs of a WebSocket (`args`, `headers`,
    `remote_addr`, `accept`, `receive`, `send`, `send_many`, `close`), over our own transport."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection, request: Request, early: bytes,
                 max_message: int):
        self._stream = stream
        self._ws = ws
        self._early = early
        target = request.target
        query = target.split("?", 1)[1] if "?" in target else ""
        self.args = MultiDict(parse_qsl(query, keep_blank_values=True))
        headers = Headers([("Host", request.host)])
        for name, value in request.extra_headers:
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
        self.headers = headers
        try:
            host, port = stream.socket.getpeername()[:2]
        except OSError:
            host, port = None, 0
        self.remote_addr = host
        self.transport = WebSocketTransport(stream, max_message, port)
        self.accepted = False

    async def accept(self) -> None:
        await self._stream.send_all(self._ws.send(AcceptConnection()))
        self.accepted = True
        self.transport.reader.feed(self._early)

    async def receive(self) -> str | bytes:
        try:
            return await self.transport.receive()
        except TransportClosed:
            reason = "transport error" if self.transport.violation else "transport close"
            raise WebSocketClosed(reason) from None

    async def send(self, data: str | bytes) -> None:
        await self.send_many((data,))

    async def send_many(self, messages) -> None:
        try:
            await self.transport.send_messages(messages)
        except TransportClosed:
            raise WebSocketClosed("transport close") from None

    async def close(self, code: int, reason: str = "") -> None:
        await self.transport.close(code, reason)


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Method, target and lower-cased headers of a request head (lenient: Hypercorn or wsproto
    judge validity later)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return method, target, headers


def _plain_response(status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> bytes:
    phrase = HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {phrase}"]
    for name, value in headers or []:
        if name.lower() not in ("content-length", "connection", "transfer-encoding"):
            lines.append(f"{name}: {value}")
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


class FrontDoor:
    def __init__(self, app: Any, config: HypercornConfig, *, host: str | None, port: int,
                 max_ws_message: int):
        self.app = wrap_app(app, config.wsgi_max_body_size, None)
        self.config = config
        self.host = host
        self.port = port
        self.max_ws_message = max_ws_message
        self.websocket_routes: dict[str, WebSocketHandler] = {}
        self.context = WorkerContext(None)
        self.lifespan_state: dict = {}
        self._closing = False
        self._head_reads: set[trio.CancelScope] = set()

    def route_websocket(self, path: str, handler: WebSocketHandler) -> None:
        """Serve WebSocket upgrades on `path` (with or without its trailing slash) ourselves."""
        self.websocket_routes[path.rstrip("/") or "/"] = handler

    async def run(self, *, shutdown_trigger: Callable[[], Awaitable[Any]],
                  task_status=trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        config.set_statsd_logger_class(StatsdLogger)
        lifespan = Lifespan(self.app, config, self.lifespan_state)
        async with trio.open_nursery() as lifespan_nursery:
            await lifespan_nursery.start(lifespan.handle_lifespan)
            await lifespan.wait_for_startup()
            async with trio.open_nursery() as handlers:
                listeners = await trio.open_tcp_listeners(self.port, host=self.host, backlog=config.backlog)
                port = listeners[0].socket.getsockname()[1]
                try:
                    async with trio.open_nursery() as accepting:
                        accepting.start_soon(partial(trio.serve_listeners, contained(self._serve_one, "http"),
                                                     listeners, handler_nursery=handlers))
                        task_status.started(port)
                        await shutdown_trigger()
                        accepting.cancel_scope.cancel()
                finally:
                    self._closing = True
                    for scope in list(self._head_reads):
                        scope.cancel()
                    await self.context.terminated.set()
                    handlers.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
            await lifespan.wait_for_shutdown()
            lifespan_nursery.cancel_scope.cancel()

    async def _read_head(self, stream: trio.SocketStream) -> tuple[bytes, bool]:
        """(bytes read, whether they hold a complete request head)."""
        data = bytearray()
        with trio.move_on_after(HEAD_TIMEOUT) as scope:
            self._head_reads.add(scope)
            try:
                while b"\r\n\r\n" not in data and len(data) <= MAX_HEAD:
                    chunk = await stream.receive_some(RECEIVE_CHUNK)
                    if not chunk:
                        break
                    data += chunk
            finally:
                self._head_reads.discard(scope)
        return bytes(data), b"\r\n\r\n" in data[:MAX_HEAD + 4]

    async def _serve_one(self, stream: trio.SocketStream) -> None:
        try:
            data, complete = await self._read_head(stream)
            if self._closing or not data:
                return
            if complete:
                end = data.index(b"\r\n\r\n") + 4
                method, target, headers = _parse_head(data[:end])
                if "websocket" in headers.get("upgrade", "").lower():
                    await self._websocket(stream, data[:end], data[end:], target)
                    return
            server = TCPServer(self.app, self.config, self.context, ConnectionState(self.lifespan_state.copy()),
                               ReplayStream(stream, data))
            await server.run()
        except (trio.BrokenResourceError, trio.ClosedResourceError, TransportClosed, WebSocketClosed):
            pass
        finally:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await stream.aclose()

    async def _websocket(self, stream: trio.SocketStream, head: bytes, early: bytes, target: str) -> None:
        path = target.split("?", 1)[0].rstrip("/") or "/"
        handler = self.websocket_routes.get(path)
        if handler is None:
            await stream.send_all(_plain_response(404))
            return
        if self._closing:
            await stream.send_all(_plain_response(503))
            return
        ws = WSConnection(ConnectionType.SERVER)
        try:
            ws.receive_data(head)
            request = next((e for e in ws.events() if isinstance(e, Request)), None)
        except RemoteProtocolError as e:
            status = e.event_hint.status_code if e.event_hint is not None else 400
            await stream.send_all(_plain_response(status))
            return
        if request is None:
            await stream.send_all(_plain_response(400))
            return
        websocket = EngineIOWebSocket(stream, ws, request, early, self.max_ws_message)
        response = await handler(websocket)
        if response is not None and not websocket.accepted:
            body = await response.get_data()
            await stream.send_all(_plain_response(response.status_code, body, list(response.headers.items())))
