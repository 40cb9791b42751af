"""Socket.IO protocol v5 server over ``chatd.gateway.engineio`` (chat-agnostic).

Public API::

    class Handler:                            # one per namespace, duck-typed
        async def connect(self, socket: Socket, info: ConnectInfo) -> None:
            ...                               # raise ConnectRefused(message, data) to refuse
        async def event(self, socket: Socket, name: str, args: list) -> Any:
            ...                               # return value = ack arguments (see below)
        async def disconnect(self, socket: Socket, reason: str) -> None: ...
        def packets_for(self, socket: Socket, item) -> Iterable[EncodedPacket]: ...
                                              # optional: what socket.outbound items become

    server = SocketIOServer({"/": Handler()}, connect_timeout=45.0,
                            ping_interval=25.0, ping_timeout=20.0, max_payload=1_000_000,
                            cors_allowed_origins=None, outbound_queue_size=256)
    mount(quart_app, server, "/socket.io/")     # re-exported from engineio
    await nursery.start(server.run)             # owns every connection's tasks

    socket.sid, socket.namespace, socket.state (dict for the app), socket.info
    socket.emit("event", *args) -> bool         # queues, never blocks
    packet = encode_event("event", *args, namespace="/")   # encode once ...
    socket.send_packet(packet) -> bool                     # ... send to many
    socket.outbound.send_nowait(item)           # queue an item the handler renders when written
    await socket.close()                        # server-side namespace disconnect

Semantics:

- ``connect`` runs on the client's CONNECT packet; ``info`` carries the
  handshake headers (lower-case names), query parameters, remote address and
  the CONNECT ``auth`` payload (a dict or None). Raising ``ConnectRefused``
  answers CONNECT_ERROR ``{"message": ..., "data": ...}``. Packets emitted
  during ``connect`` are held and sent right after the CONNECT answer
  (dropped if refused). An unknown namespace gets CONNECT_ERROR
  ``{"message": "Invalid namespace"}``.
- Events of one connection are handled one at a time, in order. If the client
  asked for an ack, ``event``'s return value is sent back: None → no
  arguments, a list or tuple → those arguments, anything else → one argument.
  ``event`` may instead return ``Later(wait)``: the connection goes on with its
  next events at once, and the ack's value is ``await wait()``, awaited on a
  task of the connection's own (a client can pipeline, e.g. writes that are
  group-committed together). Acks still go out in the order of their events;
  with ``PIPELINE`` acks outstanding the connection reads no further until one
  is sent. An exception from ``wait`` is logged and that ack not sent.
- ``disconnect`` runs exactly once for each socket whose ``connect``
  succeeded. Reasons: ``"client namespace disconnect"``, ``"server namespace
  disconnect"`` (``socket.close()``), or the Engine.IO close reason:
  ``"transport close"``, ``"transport error"``, ``"ping timeout"``,
  ``"parse error"``, ``"slow consumer"``, ``"server shutting down"``,
  ``"server error"`` (a handler raised; the connection is closed),
  ``"connect timeout"``.
- Slow consumer: a full outbound queue closes the whole Engine.IO session
  without a Socket.IO DISCONNECT, so stock clients reconnect by themselves.
  ``socket.close()`` sends DISCONNECT, which stock clients do not retry.
- An exception from a handler is logged and closes that connection only.
- A connection that has not connected any namespace within
  ``connect_timeout`` seconds is closed.
- Arguments are encoded with msgspec (dicts, lists, str, numbers, bool, None,
  msgspec Structs, dataclasses...). Binary attachments are NOT supported:
  a BINARY_EVENT/BINARY_ACK packet or a binary Engine.IO message from the
  client closes the connection with reason ``"parse error"``, and ``bytes``
  arguments are sent as base64 strings, not as attachments.
- Server-to-client acks are not implemented: ``emit`` is fire-and-forget.
- ``socket.outbound`` is the send side of the connection's bounded outbound
  queue for items that are rendered on the writing side: when an item's turn
  comes, the task that writes to the client (the WebSocket pump, or the
  long-poll GET) calls ``handler.packets_for(socket, item)`` and writes the
  packets it returns (encoded for this socket's namespace), in order with
  everything else queued for the connection. ``send_nowait`` never blocks
  and has trio's shape, so a bus subscription can feed it (``into=``): full →
  the session closes as ``"slow consumer"`` and ``trio.WouldBlock``; socket
  gone → ``trio.ClosedResourceError``. Items queued during ``connect`` are
  held like packets. An exception from ``packets_for`` is logged and that
  item skipped; items still queued for a socket that is gone are skipped.
- Packet payloads are decoded by ``chatd.wirejson``: invalid JSON, or JSON nested deeper than
  ``wirejson.MAX_DEPTH`` (32) levels, closes the connection with reason ``"parse error"``.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

import msgspec
import trio

from chatd import wirejson
from chatd.gateway.engineio import (
    EngineIOServer,
    EngineIOSession,
    ProtocolError,
    encode_message,
    mount,
)

__all__ = [
    "ConnectInfo",
    "ConnectRefused",
    "EncodedPacket",
    "Handler",
    "Later",
    "Outbound",
    "PacketType",
    "ProtocolError",
    "SioPacket",
    "Socket",
    "SocketIOServer",
    "decode_packet",
    "encode_event",
    "encode_packet",
    "mount",
]

logger = logging.getLogger(__name__)

RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)

_encoder = msgspec.json.Encoder()
_ABSENT: Any = msgspec.UNSET
_MAX_ACK_ID_DIGITS = 15
# Acks a connection may have outstanding (``Later``); past this many its reader waits.
PIPELINE = 64


class PacketType(IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


@dataclass(frozen=True, slots=True)
class SioPacket:
    """A decoded Socket.IO packet; ``data`` is ``msgspec.UNSET`` when the packet has none."""

    type: PacketType
    namespace: str = "/"
    data: Any = _ABSENT
    id: int | None = None


def encode_packet(packet: SioPacket) -> str:
    """``<type>[<namespace>,][<ack id>][<JSON data>]``; the namespace is omitted for ``/``."""
    if packet.type in (PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
        raise ProtocolError("binary packets are not supported")
    parts = [str(int(packet.type))]
    if packet.namespace != "/":
        parts.append(packet.namespace + ",")
    if packet.id is not None:
        parts.append(str(packet.id))
    if packet.data is not _ABSENT:
        parts.append(_encoder.encode(packet.data).decode("utf-8"))
    return "".join(parts)


def decode_packet(text: str) -> SioPacket:
    """Parse one Socket.IO packet; raises ``ProtocolError`` (binary packets included)."""
    if not text or not "0" <= text[0] <= "6":
        raise ProtocolError("invalid Socket.IO packet type")
    ptype = PacketType(int(text[0]))
    if ptype in (PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
        raise ProtocolError("binary Socket.IO packets are not supported")
    i, n = 1, len(text)
    namespace = "/"
    if i < n and text[i] == "/":
        comma = text.find(",", i)
        end = n if comma == -1 else comma
        namespace = text[i:end]
        i = end + 1
    start = i
    while i < n and text[i].isdigit() and text[i].isascii():
        i += 1
    if i - start > _MAX_ACK_ID_DIGITS:
        raise ProtocolError("ack id too long")
    ack_id = int(text[start:i]) if i > start else None
    data = _ABSENT
    if i < n:
        try:
            data = wirejson.decode(text[i:])
        except wirejson.JSONInputError as exc:
            raise ProtocolError(f"invalid JSON: {exc}") from None
    packet = SioPacket(ptype, namespace, data, ack_id)
    _validate(packet)
    return packet


def _validate(packet: SioPacket) -> None:
    match packet.type:
        case PacketType.CONNECT:
            if packet.data is not _ABSENT and not isinstance(packet.data, dict):
                raise ProtocolError("CONNECT payload must be an object")
        case PacketType.EVENT:
            if not (isinstance(packet.data, list) and packet.data and isinstance(packet.data[0], str)):
                raise ProtocolError("EVENT payload must be a list starting with the event name")
        case PacketType.ACK:
            if packet.id is None or not isinstance(packet.data, list):
                raise ProtocolError("ACK needs an id and a list payload")
        case PacketType.CONNECT_ERROR:
            if not isinstance(packet.data, dict):
                raise ProtocolError("CONNECT_ERROR payload must be an object")


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """An encoded Engine.IO frame for one namespace, from ``encode_event``."""

    namespace: str
    frame: str


def encode_event(event: str, *args: Any, namespace: str = "/") -> EncodedPacket:
    """Encode an EVENT once, to hand to ``Socket.send_packet`` of any number of sockets."""
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")
    text = encode_packet(SioPacket(PacketType.EVENT, namespace, [event, *args]))
    return EncodedPacket(namespace, encode_message(text))


class Later:
    """Returned by ``Handler.event``: answer the ack with ``await wait()``, without holding up the
    connection's next events (see the module docstring)."""

    __slots__ = ("wait",)

    def __init__(self, wait: Callable[[], Awaitable[Any]]) -> None:
        self.wait = wait


_NO_ACK: Any = object()


class ConnectRefused(Exception):
    """Raised by ``Handler.connect`` to answer CONNECT_ERROR to the client."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """What a CONNECT came with. Header names are lower-case; ``auth`` is the CONNECT payload."""

    namespace: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    remote_addr: str | None
    auth: dict[str, Any] | None


class Handler(Protocol):
    async def connect(self, socket: Socket, info: ConnectInfo) -> None: ...
    async def event(self, socket: Socket, name: str, args: list[Any]) -> Any: ...
    async def disconnect(self, socket: Socket, reason: str) -> None: ...


class Socket:
    """One client connected to one namespace."""

    def __init__(self, connection: _Connection, namespace: str, info: ConnectInfo,
                 handler: Handler | None = None) -> None:
        self.sid = secrets.token_urlsafe(15)
        self.namespace = namespace
        self.info = info
        self.state: dict[str, Any] = {}
        self._connection = connection
        self._handler = handler
        # Session outbox entries queued during connect: frames and (expand, item) pairs.
        self._held: list[Any] | None = []
        self._connected = False
        self._gone = False
        self.outbound = Outbound(self)

    def __repr__(self) -> str:
        return f"<Socket {self.sid} {self.namespace}>"

    @property
    def connected(self) -> bool:
        return self._connected and not self._connection.session.closed

    def emit(self, event: str, *args: Any) -> bool:
        """Queue an event without blocking; False if it cannot be delivered."""
        return self.send_packet(encode_event(event, *args, namespace=self.namespace))

    def send_packet(self, packet: EncodedPacket) -> bool:
        """Queue a packet from ``encode_event`` without blocking; False if not delivered."""
        if packet.namespace != self.namespace:
            raise ValueError(f"packet for {packet.namespace!r} sent to a socket of {self.namespace!r}")
        if self._gone:
            return False
        if self._held is not None:
            if len(self._held) >= self._connection.session._outbox_limit:
                return False
            self._held.append(packet.frame)
            return True
        return self._connection.session.send_encoded(packet.frame)

    def _expand(self, item: Any, out: list) -> None:
        """Render one ``outbound`` item into ``out``; runs on the task writing to the client."""
        if self._gone:
            return
        try:
            packets = self._handler.packets_for(self, item)
        except Exception:
            logger.exception("socket.io %s: rendering an item failed", self.sid)
            return
        for packet in packets:
            out.append(packet.frame)

    def close_soon(self, reason: str = "server namespace disconnect") -> None:
        """Disconnect from any task, without waiting: DISCONNECT to the client, then the whole
        Engine.IO session closes (its queued packets still go out) and the connection's own task
        runs ``handler.disconnect`` with ``reason``."""
        if self._gone:
            return
        if self._connected:
            self._connection.send(SioPacket(PacketType.DISCONNECT, self.namespace))
        self._connection.session.close(reason)

    async def close(self) -> None:
        """Disconnect this namespace (DISCONNECT to the client), then ``handler.disconnect``."""
        if self._gone:
            return
        if self._connected:
            self._connection.send(SioPacket(PacketType.DISCONNECT, self.namespace))
        await self._connection.drop(self, "server namespace disconnect")


class Outbound:
    """``socket.outbound``: queues items that ``handler.packets_for`` renders on the writing side
    (see the module docstring). ``send_nowait`` runs on the caller's task and only queues."""

    __slots__ = ("_socket",)

    def __init__(self, socket: Socket) -> None:
        self._socket = socket

    def send_nowait(self, item: Any) -> None:
        socket = self._socket
        if socket._gone:
            raise trio.ClosedResourceError
        held = socket._held
        if held is None:
            socket._connection.session.defer_nowait(socket._expand, item)
            return
        session = socket._connection.session
        if len(held) >= session._outbox_limit:
            session.close("slow consumer")
            raise trio.WouldBlock
        held.append((socket._expand, item))


class _Connection:
    """The Socket.IO side of one Engine.IO session: its namespaces' sockets."""

    def __init__(self, server: SocketIOServer, session: EngineIOSession) -> None:
        self.server = server
        self.session = session
        self.sockets: dict[str, Socket] = {}
        self._connect_scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        # Acks not sent yet, in the order of their events: (socket, ack id, Later or value).
        # Created (with the task that sends them) on the first Later; idle connections stay small.
        self._acks: deque[tuple[Socket, int, Any]] | None = None
        self._ack_wake = trio.Event()
        self._ack_room: trio.Event | None = None

    def send(self, packet: SioPacket) -> bool:
        return self.session.send(encode_packet(packet))

    async def serve(self) -> None:
        deadline = trio.current_time() + self.server.connect_timeout
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                with trio.CancelScope(deadline=deadline) as connect_scope:
                    self._connect_scope = connect_scope
                    async for message in self.session:
                        if isinstance(message, bytes):
                            raise ProtocolError("binary messages are not supported")
                        await self.dispatch(decode_packet(message))
                if connect_scope.cancelled_caught:
                    self.session.close("connect timeout")
                nursery.cancel_scope.cancel()  # the session has ended: acks still due are moot
        except* ProtocolError as group:
            logger.info("socket.io %s: protocol error: %s", self.session.sid, group.exceptions[0])
            self.session.close("parse error")
        except* Exception:
            logger.exception("socket.io %s: handler failed", self.session.sid)
            self.session.close("server error")
        finally:
            reason = self.session.close_reason or "server close"
            self.session.close(reason)
            for socket in list(self.sockets.values()):
                await self.drop(socket, reason)

    async def dispatch(self, packet: SioPacket) -> None:
        match packet.type:
            case PacketType.CONNECT:
                await self.on_connect(packet)
            case PacketType.DISCONNECT:
                if socket := self.sockets.get(packet.namespace):
                    await self.drop(socket, "client namespace disconnect")
            case PacketType.EVENT:
                await self.on_event(packet)
            case PacketType.ACK:
                pass
            case _:
                raise ProtocolError(f"unexpected {packet.type.name} from client")

    async def on_connect(self, packet: SioPacket) -> None:
        namespace = packet.namespace
        handler = self.server.handlers.get(namespace)
        if handler is None:
            self.send(SioPacket(PacketType.CONNECT_ERROR, namespace, {"message": "Invalid namespace"}))
            return
        if existing := self.sockets.get(namespace):
            self.send(SioPacket(PacketType.CONNECT, namespace, {"sid": existing.sid}))
            return
        handshake = self.session.info
        info = ConnectInfo(
            namespace=namespace,
            headers=handshake.headers,
            query=handshake.query,
            remote_addr=handshake.remote_addr,
            auth=None if packet.data is _ABSENT else packet.data,
        )
        socket = Socket(self, namespace, info, handler)
        try:
            await handler.connect(socket, info)
        except ConnectRefused as refused:
            socket._gone = True
            error: dict[str, Any] = {"message": refused.message}
            if refused.data is not None:
                error["data"] = refused.data
            self.send(SioPacket(PacketType.CONNECT_ERROR, namespace, error))
            return
        if socket._gone:
            self.send(SioPacket(PacketType.CONNECT_ERROR, namespace, {"message": "Closed"}))
            return
        self.sockets[namespace] = socket
        socket._connected = True
        self._connect_scope.deadline = math.inf
        self.send(SioPacket(PacketType.CONNECT, namespace, {"sid": socket.sid}))
        held, socket._held = socket._held or [], None
        for entry in held:
            self.session._enqueue(entry)

    async def on_event(self, packet: SioPacket) -> None:
        socket = self.sockets.get(packet.namespace)
        if socket is None:
            return
        name, *args = packet.data
        result = await self.server.handlers[socket.namespace].event(socket, name, args)
        if packet.id is None:
            return
        acks = self._acks
        if acks or result.__class__ is Later:
            if acks is None:
                acks = self._acks = deque()
                self._nursery.start_soon(self._send_acks, acks)
            acks.append((socket, packet.id, result))
            self._ack_wake.set()
            while len(acks) >= PIPELINE:
                self._ack_room = trio.Event()
                await self._ack_room.wait()
            return
        self._ack(socket, packet.id, result)

    def _ack(self, socket: Socket, ack_id: int, result: Any) -> None:
        if socket._gone:
            return
        if result is None:
            ack_args = []
        elif isinstance(result, list | tuple):
            ack_args = list(result)
        else:
            ack_args = [result]
        self.send(SioPacket(PacketType.ACK, socket.namespace, ack_args, ack_id))

    async def _send_acks(self, acks: deque[tuple[Socket, int, Any]]) -> None:
        """The connection's acks, in order, each once its value is there (``Later``)."""
        while True:
            while not acks:
                self._ack_wake = trio.Event()
                await self._ack_wake.wait()
            socket, ack_id, result = acks[0]
            if result.__class__ is Later:
                try:
                    result = await result.wait()
                except Exception:
                    logger.exception("socket.io %s: a deferred ack failed", self.session.sid)
                    result = _NO_ACK
            acks.popleft()
            if self._ack_room is not None and len(acks) < PIPELINE:
                self._ack_room.set()
            if result is not _NO_ACK:
                self._ack(socket, ack_id, result)

    async def drop(self, socket: Socket, reason: str) -> None:
        """Forget a socket and run ``handler.disconnect`` once; its errors are only logged."""
        if socket._gone:
            return
        socket._gone = True
        if self.sockets.get(socket.namespace) is socket:
            del self.sockets[socket.namespace]
        if not socket._connected:
            return
        try:
            await self.server.handlers[socket.namespace].disconnect(socket, reason)
        except* Exception:
            logger.exception("socket.io %s: disconnect handler failed", socket.sid)


class SocketIOServer:
    """Socket.IO v5 server; ``engine_options`` go to ``EngineIOServer``."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        connect_timeout: float = 45.0,
        **engine_options: Any,
    ) -> None:
        for namespace in handlers:
            if not namespace.startswith("/"):
                raise ValueError(f"namespace {namespace!r} must start with '/'")
        self.handlers = dict(handlers)
        self.connect_timeout = connect_timeout
        self.engine = EngineIOServer(self._serve, **engine_options)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the Engine.IO server (see ``EngineIOServer.run``)."""
        await self.engine.run(task_status=task_status)

    async def handle_http(self, request: Any) -> Any:
        return await self.engine.handle_http(request)

    async def handle_websocket(self, websocket: Any) -> Any:
        return await self.engine.handle_websocket(websocket)

    async def _serve(self, session: EngineIOSession) -> None:
        await _Connection(self, session).serve()
