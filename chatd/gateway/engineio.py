"""Engine.IO protocol v4 server on trio, for Quart-Trio apps (chat-agnostic).

Transports: HTTP long-polling (GET waits for packets, POST delivers them;
payloads joined with the record separator ``\\x1e``; binary messages as
``b<base64>``), WebSocket directly (``?EIO=4&transport=websocket``) and the
upgrade from polling to WebSocket (``2probe``/``3probe``, ``5``; a pending poll
is answered with a noop ``6``). JSONP polling and EIO v3 are not supported.

Public API::

    async def app(session: EngineIOSession) -> None:
        async for message in session:        # str or bytes; ends when closed
            session.send(message)            # never blocks

    server = EngineIOServer(app, ping_interval=25.0, ping_timeout=20.0,
                            max_payload=1_000_000, cors_allowed_origins=None,
                            outbound_queue_size=256)
    mount(quart_app, server, "/socket.io/")  # or call handle_http/handle_websocket
    await nursery.start(server.run)          # owns every session's tasks

- ``app(session)`` runs once per session inside the server's nursery; when it
  returns the session is closed. An exception escaping it is logged and closes
  only that session.
- ``session.send(data)`` / ``session.send_encoded(frame)`` queue without
  blocking. Each session has a bounded outbound queue; when it is full the
  session is closed with reason ``"slow consumer"`` (the client reconnects).
  ``encode_message(data)`` encodes once for ``send_encoded`` to many sessions.
- ``session.defer_nowait(expand, item)`` queues an item that is turned into
  frames only when its turn comes to be written: ``expand(item, out)``
  appends encoded frames to ``out`` (or none), on the task that writes to the
  client (the WebSocket pump, or the long-poll GET that drains the session),
  never on the task that queued it. Full: the session closes as ``"slow
  consumer"`` and ``trio.WouldBlock`` is raised; closed:
  ``trio.ClosedResourceError`` (the shape of trio's ``send_nowait``, so an
  event bus can feed a session directly). ``expand`` must not raise.
- ``session.sid``, ``session.info`` (``HandshakeInfo``: headers, query,
  remote address of the opening request), ``session.transport``;
  ``server.sessions`` maps sid → open session.
- ``session.close(reason)`` closes the session; the queued packets are still
  flushed (polling: followed by a close packet ``1``; WebSocket: close frame).
- Close reasons passed to ``session.close_reason``: ``"transport close"``
  (client went away or sent ``1``), ``"transport error"``, ``"parse error"``,
  ``"ping timeout"``, ``"slow consumer"``, ``"server shutting down"``,
  ``"server error"`` (the app raised), ``"server close"`` (the app returned),
  or what the app passed to ``close``.
- Cancelling ``run`` closes every session (WebSocket close code 1001), gives
  them ``shutdown_timeout`` seconds to flush, then cancels what is left.

WebSocket frames over ``max_payload`` close the session with code 1009. Set
hypercorn's ``websocket_max_message_size`` to at least ``max_payload``, since
hypercorn drops larger frames before they reach this server.

Inbound messages go through a bounded queue of ``inbound_queue_size``: an app
that does not read applies back-pressure on the client (POST waits, the
WebSocket reader stops reading) rather than buffering without limit.

CORS: ``cors_allowed_origins=None`` adds no CORS headers and checks no Origin;
``"*"`` or a list of origins answers OPTIONS preflights and echoes an allowed
``Origin`` with ``Access-Control-Allow-Credentials: true``; a request with an
Origin not in the list is refused with 403 (HTTP and WebSocket alike).
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

import msgspec
import trio
from quart import Response

__all__ = [
    "EngineIOServer",
    "EngineIOSession",
    "HandshakeInfo",
    "Packet",
    "PacketType",
    "ProtocolError",
    "SessionClosed",
    "WebSocketClosed",
    "decode_packet",
    "decode_payload",
    "encode_message",
    "encode_packet",
    "encode_payload",
    "mount",
]

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = "4"
RECORD_SEPARATOR = "\x1e"

# While an upgrade is under way the client waits for its pending poll to end before it
# sends ``5``, so polls are answered with a noop after at most this long.
_UPGRADE_POLL_WAIT = 0.1

WS_NORMAL = 1000
WS_GOING_AWAY = 1001
WS_TOO_BIG = 1009
WS_TRY_AGAIN_LATER = 1013


class PacketType(IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class ProtocolError(ValueError):
    """A packet or payload that does not follow the Engine.IO v4 framing."""


class SessionClosed(Exception):
    """Raised by ``EngineIOSession.receive`` once the session is closed."""


class WebSocketClosed(Exception):
    """A WebSocket adapter's ``receive``/``send`` once the connection is gone; ``args[0]`` is the
    session close reason (``"transport close"``: the client went away or closed;
    ``"transport error"``: it broke the protocol)."""


@dataclass(frozen=True, slots=True)
class Packet:
    type: PacketType
    data: str | bytes = ""


def encode_packet(packet: Packet) -> str | bytes:
    """The WebSocket frame of ``packet``: ``"<type><data>"``; a binary message is its raw bytes."""
    if isinstance(packet.data, bytes):
        if packet.type is not PacketType.MESSAGE:
            raise ProtocolError("only message packets can carry binary data")
        return packet.data
    return f"{int(packet.type)}{packet.data}"


def encode_message(data: str | bytes) -> str | bytes:
    """Encode a message once, for ``EngineIOSession.send_encoded`` to any number of sessions."""
    return data if isinstance(data, bytes) else "4" + data


def decode_packet(frame: str | bytes) -> Packet:
    """Decode one WebSocket frame (or one polling payload segment after ``b`` handling)."""
    if isinstance(frame, bytes | bytearray | memoryview):
        return Packet(PacketType.MESSAGE, bytes(frame))
    if not frame:
        raise ProtocolError("empty packet")
    try:
        ptype = PacketType(int(frame[0]))
    except ValueError:
        raise ProtocolError(f"unknown packet type {frame[0]!r}") from None
    return Packet(ptype, frame[1:])


def encode_payload(frames: Sequence[str | bytes]) -> str:
    """Join encoded frames into a polling payload; binary frames become ``b<base64>``."""
    return RECORD_SEPARATOR.join(
        "b" + base64.b64encode(f).decode("ascii") if isinstance(f, bytes) else f for f in frames
    )


def decode_payload(body: str) -> list[Packet]:
    """Split a polling payload at ``\\x1e`` and decode each packet."""
    packets = []
    for segment in body.split(RECORD_SEPARATOR):
        if segment.startswith("b"):
            try:
                packets.append(Packet(PacketType.MESSAGE, base64.b64decode(segment[1:], validate=True)))
            except binascii.Error:
                raise ProtocolError("invalid base64 in binary packet") from None
        else:
            packets.append(decode_packet(segment))
    return packets


@dataclass(frozen=True, slots=True)
class HandshakeInfo:
    """What the opening request carried. Header names are lower-case."""

    transport: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    remote_addr: str | None


@dataclass(slots=True)
class _Error:
    status: int
    code: int
    message: str


UNKNOWN_TRANSPORT = _Error(400, 0, "Transport unknown")
UNKNOWN_SID = _Error(400, 1, "Session ID unknown")
BAD_HANDSHAKE_METHOD = _Error(400, 2, "Bad handshake method")
BAD_REQUEST = _Error(400, 3, "Bad request")
FORBIDDEN = _Error(403, 4, "Forbidden")
UNSUPPORTED_PROTOCOL_VERSION = _Error(400, 5, "Unsupported protocol version")
SHUTTING_DOWN = _Error(503, 3, "Server shutting down")

_CLOSE_CODES = {
    "server shutting down": WS_GOING_AWAY,
    "slow consumer": WS_TRY_AGAIN_LATER,
}


class EngineIOSession:
    """One Engine.IO session, whatever its current transport."""

    def __init__(
        self,
        server: EngineIOServer,
        sid: str,
        info: HandshakeInfo,
        *,
        outbound_queue_size: int,
        inbound_queue_size: int,
    ) -> None:
        self._server = server
        self.sid = sid
        self.info = info
        self.close_reason: str | None = None
        self._transport = info.transport
        self._closed = False
        # Encoded frames, and (expand, item) pairs rendered when taken (`defer_nowait`).
        self._outbox: deque[str | bytes | tuple[Callable[[Any, list], None], Any]] = deque()
        self._outbox_limit = outbound_queue_size
        self._outbox_event = trio.Event()
        self._inbound_send, self._inbound_recv = trio.open_memory_channel[str | bytes](
            inbound_queue_size
        )
        self._pong: trio.Event | None = None
        self._poll_scope: trio.CancelScope | None = None
        self._posting = False
        self._upgrading = False
        self._ws_close_code = WS_NORMAL
        self._transport_done = trio.Event()
        self._scope: trio.CancelScope | None = None
        self._send_scope: trio.CancelScope | None = None  # a WebSocket write under way

    def __repr__(self) -> str:
        return f"<EngineIOSession {self.sid} {self._transport}{' closed' if self._closed else ''}>"

    @property
    def transport(self) -> str:
        """``"polling"`` or ``"websocket"``."""
        return self._transport

    @property
    def closed(self) -> bool:
        return self._closed

    async def receive(self) -> str | bytes:
        """Next message from the client (str or bytes); raises ``SessionClosed`` once closed."""
        try:
            return await self._inbound_recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise SessionClosed(self.close_reason) from None

    def __aiter__(self) -> EngineIOSession:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except SessionClosed:
            raise StopAsyncIteration from None

    def send(self, data: str | bytes) -> bool:
        """Queue a message without blocking; False if closed (or now closed as a slow consumer)."""
        return self._enqueue(encode_message(data))

    def send_encoded(self, frame: str | bytes) -> bool:
        """Queue a frame from ``encode_message`` without blocking; see ``send``."""
        return self._enqueue(frame)

    def defer_nowait(self, expand: Callable[[Any, list], None], item: Any) -> None:
        """Queue ``item``, rendered by ``expand(item, out)`` on the writing side (module docstring).
        Never blocks; raises ``trio.WouldBlock`` (now closed as a slow consumer) or
        ``trio.ClosedResourceError``."""
        if self._closed:
            raise trio.ClosedResourceError
        if len(self._outbox) >= self._outbox_limit:
            self._close("slow consumer", WS_TRY_AGAIN_LATER)
            raise trio.WouldBlock
        self._outbox.append((expand, item))
        self._outbox_event.set()

    def close(self, reason: str = "server close") -> None:
        """Close the session; queued packets are still flushed to the client."""
        self._close(reason, _CLOSE_CODES.get(reason, WS_NORMAL))

    def _close(self, reason: str, ws_code: int) -> None:
        if self._closed:
            return
        self._closed = True
        self.close_reason = reason
        self._ws_close_code = ws_code
        self._inbound_send.close()
        if reason == "slow consumer":
            self._outbox.clear()
            if self._send_scope is not None:
                # The client is not reading: stop waiting to write to it, send the close frame.
                self._send_scope.cancel()
        if self._transport == "polling":
            self._outbox.append(encode_packet(Packet(PacketType.CLOSE)))
        self._outbox_event.set()
        if self._pong is not None:
            self._pong.set()
        logger.debug("engine.io session %s closed: %s", self.sid, reason)

    def _enqueue(self, entry) -> bool:
        """Queue an outbox entry (a frame or an (expand, item) pair); False if not queued."""
        if self._closed:
            return False
        if len(self._outbox) >= self._outbox_limit:
            self._close("slow consumer", WS_TRY_AGAIN_LATER)
            return False
        self._outbox.append(entry)
        self._outbox_event.set()
        return True

    async def _take_batch(self) -> list[str | bytes]:
        """Wait for queued entries and take them all, deferred items rendered here, on the writing
        task; [] once closed and drained."""
        while True:
            if self._outbox:
                entries, self._outbox = self._outbox, deque()
                batch: list[str | bytes] = []
                for entry in entries:
                    if entry.__class__ is tuple:
                        entry[0](entry[1], batch)
                    else:
                        batch.append(entry)
                if batch:
                    return batch
                continue
            if self._closed:
                return []
            self._outbox_event = trio.Event()
            await self._outbox_event.wait()

    async def _deliver(self, packet: Packet) -> None:
        """Handle one packet from the client, on whichever transport it came."""
        match packet.type:
            case PacketType.MESSAGE:
                try:
                    await self._inbound_send.send(packet.data)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    pass
            case PacketType.PONG:
                if self._pong is not None:
                    self._pong.set()
            case PacketType.PING:
                self._enqueue(encode_packet(Packet(PacketType.PONG, packet.data)))
            case PacketType.CLOSE:
                self.close("transport close")
            case PacketType.NOOP:
                pass
            case _:
                raise ProtocolError(f"unexpected {packet.type.name} packet")


class _Request(Protocol):
    method: str
    args: Any
    headers: Any
    remote_addr: str | None
    content_length: int | None
    body: Any


class _WebSocket(Protocol):
    args: Any
    headers: Any
    remote_addr: str | None

    async def accept(self) -> None: ...
    async def receive(self) -> str | bytes: ...
    async def send(self, data: str | bytes) -> None: ...
    async def close(self, code: int, reason: str = "") -> None: ...
    # Optional: ``async def send_many(self, frames) -> None`` writes a batch in one go.


SessionApp = Callable[[EngineIOSession], Awaitable[None]]


@dataclass
class EngineIOServer:
    """Engine.IO v4 server; see the module docstring. Times are in seconds."""

    app: SessionApp
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    max_payload: int = 1_000_000
    cors_allowed_origins: str | Sequence[str] | None = None
    outbound_queue_size: int = 256
    inbound_queue_size: int = 16
    upgrade_timeout: float = 10.0
    close_timeout: float = 5.0
    shutdown_timeout: float = 2.0
    _sessions: dict[str, EngineIOSession] = field(default_factory=dict, init=False, repr=False)
    _nursery: trio.Nursery | None = field(default=None, init=False, repr=False)
    _idle: trio.Event = field(default_factory=trio.Event, init=False, repr=False)

    @property
    def sessions(self) -> Mapping[str, EngineIOSession]:
        """Open sessions by sid (read-only view)."""
        return self._sessions

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the sessions until cancelled; then close them all (WebSocket 1001)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None
                sessions = list(self._sessions.values())
                for session in sessions:
                    session.close("server shutting down")
                with trio.CancelScope(shield=True), trio.move_on_after(self.shutdown_timeout):
                    if self._sessions:
                        self._idle = trio.Event()
                        await self._idle.wait()
                for session in sessions:
                    if session._scope is not None:
                        session._scope.cancel()

    # -- HTTP -----------------------------------------------------------------

    async def handle_http(self, request: _Request) -> Response:
        """GET/POST/OPTIONS on the Engine.IO path: handshake, long-polling, CORS preflight."""
        origin = request.headers.get("Origin")
        if not self._origin_allowed(origin):
            return self._error(FORBIDDEN, None)
        cors = self._cors_headers(origin)
        if request.method == "OPTIONS":
            headers = {
                **cors,
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Max-Age": "86400",
            }
            if requested := request.headers.get("Access-Control-Request-Headers"):
                headers["Access-Control-Allow-Headers"] = requested
            return Response("", 204, headers)
        if error := self._check_query(request.args):
            return self._error(error, cors)
        if request.args.get("transport") != "polling":
            return self._error(BAD_REQUEST, cors)
        sid = request.args.get("sid")
        if sid is None:
            if request.method != "GET":
                return self._error(BAD_HANDSHAKE_METHOD, cors)
            return await self._open_polling(request, cors)
        session = self._sessions.get(sid)
        if session is None:
            return self._error(UNKNOWN_SID, cors)
        if request.method == "GET":
            return await self._poll(session, cors)
        if request.method == "POST":
            return await self._post(session, request, cors)
        return self._error(BAD_REQUEST, cors)

    async def _open_polling(self, request: _Request, cors: dict[str, str]) -> Response:
        session = await self._open_session(request, "polling")
        if session is None:
            return self._error(SHUTTING_DOWN, cors)
        return self._payload_response([self._open_frame(session)], cors)

    async def _poll(self, session: EngineIOSession, cors: dict[str, str]) -> Response:
        """GET ?sid=…: wait for queued packets (one GET at a time per session)."""
        if session._poll_scope is not None:
            session.close("transport error")
            return self._error(BAD_REQUEST, cors)
        if session._closed and not session._outbox:
            return self._error(UNKNOWN_SID, cors)
        if session._transport != "polling":
            return self._error(BAD_REQUEST, cors)
        deadline = trio.current_time() + _UPGRADE_POLL_WAIT if session._upgrading else math.inf
        with trio.CancelScope(deadline=deadline) as scope:
            session._poll_scope = scope
            try:
                batch = await session._take_batch()
            finally:
                session._poll_scope = None
        if scope.cancelled_caught or not batch:
            batch = [encode_packet(Packet(PacketType.NOOP))]
        if session._closed and not session._outbox:
            session._transport_done.set()
        return self._payload_response(batch, cors)

    async def _post(self, session: EngineIOSession, request: _Request, cors: dict[str, str]) -> Response:
        """POST ?sid=…: packets from the client."""
        if session._closed:
            return self._error(UNKNOWN_SID, cors)
        if session._transport != "polling":
            return self._error(BAD_REQUEST, cors)
        if session._posting:
            session.close("transport error")
            return self._error(BAD_REQUEST, cors)
        session._posting = True
        try:
            body = await self._read_body(request)
            if body is None:
                session.close("transport error")
                return Response("", 413, cors)
            try:
                packets = decode_payload(body.decode("utf-8"))
                for packet in packets:
                    await session._deliver(packet)
            except (UnicodeDecodeError, ProtocolError) as exc:
                logger.debug("engine.io session %s: bad payload: %s", session.sid, exc)
                session.close("parse error")
                return self._error(BAD_REQUEST, cors)
        finally:
            session._posting = False
        return Response("ok", 200, cors, content_type="text/html")

    async def _read_body(self, request: _Request) -> bytes | None:
        """The request body, or None if it is larger than max_payload."""
        if request.content_length is not None and request.content_length > self.max_payload:
            return None
        chunks = bytearray()
        async for chunk in request.body:
            chunks += chunk
            if len(chunks) > self.max_payload:
                return None
        return bytes(chunks)

    # -- WebSocket --------------------------------------------------------------

    async def handle_websocket(self, websocket: _WebSocket) -> Response | None:
        """WebSocket on the Engine.IO path: a new session, or the upgrade of a polling one.

        Returns an error response to send instead of accepting, else None.
        """
        if not self._origin_allowed(websocket.headers.get("Origin")):
            return self._error(FORBIDDEN, None)
        if error := self._check_query(websocket.args):
            return self._error(error, None)
        if websocket.args.get("transport") != "websocket":
            return self._error(BAD_REQUEST, None)
        sid = websocket.args.get("sid")
        if sid is not None:
            return await self._upgrade(websocket, sid)
        session = await self._open_session(websocket, "websocket")
        if session is None:
            return self._error(SHUTTING_DOWN, None)
        try:
            await websocket.accept()
            await websocket.send(self._open_frame(session))
            await self._pump_websocket(session, websocket)
        finally:
            session.close("transport close")
            session._transport_done.set()
        return None

    async def _upgrade(self, websocket: _WebSocket, sid: str) -> Response | None:
        """Probe (``2probe`` → ``3probe``), then ``5`` moves the session to this WebSocket."""
        session = self._sessions.get(sid)
        if session is None or session._closed:
            return self._error(UNKNOWN_SID, None)
        if session._transport != "polling" or session._upgrading:
            return self._error(BAD_REQUEST, None)
        session._upgrading = True
        upgraded = False
        try:
            await websocket.accept()
            with trio.move_on_after(self.upgrade_timeout):
                probe = decode_packet(await websocket.receive())
                if probe != Packet(PacketType.PING, "probe"):
                    raise ProtocolError("expected 2probe")
                await websocket.send(encode_packet(Packet(PacketType.PONG, "probe")))
                if session._poll_scope is not None:
                    session._poll_scope.cancel()
                while not upgraded:
                    packet = decode_packet(await websocket.receive())
                    if packet.type is PacketType.UPGRADE:
                        upgraded = True
                    elif packet.type is not PacketType.NOOP:
                        raise ProtocolError(f"unexpected {packet.type.name} during upgrade")
        except ProtocolError as exc:
            logger.debug("engine.io session %s: upgrade failed: %s", sid, exc)
        finally:
            session._upgrading = False
        if not upgraded or session._closed:
            await websocket.close(WS_NORMAL)
            return None
        session._transport = "websocket"
        if session._poll_scope is not None:
            session._poll_scope.cancel()
        try:
            await self._pump_websocket(session, websocket)
        finally:
            session.close("transport close")
            session._transport_done.set()
        return None

    async def _pump_websocket(self, session: EngineIOSession, websocket: _WebSocket) -> None:
        """Read and write frames until the session closes, then send the close frame."""
        send_many = getattr(websocket, "send_many", None)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ws_reader, session, websocket)
                # One scope for the whole loop (not one per write): a slow-consumer close cancels
                # it, so a write stuck on a client that does not read gives way to the close frame.
                with trio.CancelScope() as session._send_scope:
                    while batch := await session._take_batch():
                        if send_many is not None:
                            await send_many(batch)
                        else:
                            for frame in batch:
                                await websocket.send(frame)
                session._send_scope = None
                nursery.cancel_scope.cancel()
        except* WebSocketClosed as group:
            session.close(group.exceptions[0].args[0] if group.exceptions[0].args else "transport close")
        except* Exception:
            logger.debug("engine.io session %s: websocket failed", session.sid, exc_info=True)
            session.close("transport error")
        else:
            with trio.move_on_after(1):
                await websocket.close(session._ws_close_code)

    async def _ws_reader(self, session: EngineIOSession, websocket: _WebSocket) -> None:
        while True:
            try:
                frame = await websocket.receive()
            except WebSocketClosed as exc:
                session.close(exc.args[0] if exc.args else "transport close")
                return
            if _frame_size(frame, self.max_payload) > self.max_payload:
                session._close("transport error", WS_TOO_BIG)
                return
            try:
                await session._deliver(decode_packet(frame))
            except ProtocolError as exc:
                logger.debug("engine.io session %s: bad frame: %s", session.sid, exc)
                session.close("parse error")
                return

    # -- sessions ---------------------------------------------------------------

    async def _open_session(self, request: _Request | _WebSocket, transport: str) -> EngineIOSession | None:
        if self._nursery is None:
            return None
        info = HandshakeInfo(
            transport=transport,
            headers=_lower_headers(request.headers),
            query={k: request.args.get(k) for k in request.args},
            remote_addr=request.remote_addr,
        )
        sid = secrets.token_urlsafe(15)
        session = EngineIOSession(
            self,
            sid,
            info,
            outbound_queue_size=self.outbound_queue_size,
            inbound_queue_size=self.inbound_queue_size,
        )
        self._sessions[sid] = session
        await self._nursery.start(self._run_session, session)
        return session

    def _open_frame(self, session: EngineIOSession) -> str:
        handshake = {
            "sid": session.sid,
            "upgrades": ["websocket"] if session.transport == "polling" else [],
            "pingInterval": round(self.ping_interval * 1000),
            "pingTimeout": round(self.ping_timeout * 1000),
            "maxPayload": self.max_payload,
        }
        return encode_packet(Packet(PacketType.OPEN, msgspec.json.encode(handshake).decode()))

    async def _run_session(
        self, session: EngineIOSession, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """The session's tasks: heartbeat and app. Shielded so that shutdown can let them finish."""
        with trio.CancelScope(shield=True) as scope:
            session._scope = scope
            task_status.started()
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._heartbeat, session)
                    try:
                        await self.app(session)
                    except* Exception:
                        logger.exception("engine.io session %s: app failed", session.sid)
                        session.close("server error")
                    session.close("server close")
                    nursery.cancel_scope.cancel()
                with trio.move_on_after(self.close_timeout):
                    await session._transport_done.wait()
            finally:
                session._scope = None
                self._sessions.pop(session.sid, None)
                if not self._sessions:
                    self._idle.set()

    async def _heartbeat(self, session: EngineIOSession) -> None:
        """Ping every ping_interval; no pong within ping_timeout closes the session."""
        while not session._closed:
            await trio.sleep(self.ping_interval)
            session._pong = pong = trio.Event()
            if not session._enqueue(encode_packet(Packet(PacketType.PING))):
                return
            with trio.move_on_after(self.ping_timeout):
                await pong.wait()
            if not pong.is_set():
                session.close("ping timeout")

    # -- helpers ----------------------------------------------------------------

    def _check_query(self, args: Any) -> _Error | None:
        if args.get("EIO") != PROTOCOL_VERSION:
            return UNSUPPORTED_PROTOCOL_VERSION
        if args.get("transport") not in ("polling", "websocket"):
            return UNKNOWN_TRANSPORT
        return None

    def _origin_allowed(self, origin: str | None) -> bool:
        allowed = self.cors_allowed_origins
        if origin is None or allowed is None or allowed == "*":
            return True
        return origin in allowed

    def _cors_headers(self, origin: str | None) -> dict[str, str]:
        if origin is None or self.cors_allowed_origins is None:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    def _payload_response(self, frames: Sequence[str | bytes], cors: dict[str, str]) -> Response:
        return Response(
            encode_payload(frames),
            200,
            {**cors, "Cache-Control": "no-store"},
            content_type="text/plain; charset=UTF-8",
        )

    @staticmethod
    def _error(error: _Error, cors: dict[str, str] | None) -> Response:
        body = msgspec.json.encode({"code": error.code, "message": error.message})
        return Response(body, error.status, cors or {}, content_type="application/json")


def _lower_headers(headers: Any) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


def _frame_size(frame: str | bytes, limit: int) -> int:
    """Byte size of a frame, without encoding a str that is obviously small enough."""
    if isinstance(frame, str) and len(frame) * 4 > limit:
        return len(frame.encode("utf-8"))
    return len(frame)


class _Mountable(Protocol):
    async def handle_http(self, request: Any) -> Response: ...
    async def handle_websocket(self, websocket: Any) -> Response | None: ...


def mount(app: Any, server: _Mountable, path: str = "/socket.io/") -> None:
    """Route GET/POST/OPTIONS and WebSocket requests on ``path`` of a QuartTrio app to ``server``."""
    from quart import request, websocket

    async def http_view() -> Response:
        return await server.handle_http(request._get_current_object())

    async def websocket_view() -> Response | None:
        return await server.handle_websocket(websocket._get_current_object())

    app.add_url_rule(
        path,
        f"engineio_http:{path}",
        http_view,
        methods=["GET", "POST", "OPTIONS"],
        provide_automatic_options=False,
    )
    app.add_websocket(path, f"engineio_ws:{path}", websocket_view)

