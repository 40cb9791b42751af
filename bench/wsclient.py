"""A lean WebSocket client for the load driver: no tasks of its own, frames read in bulk.

trio-websocket runs a reader task per connection and hands every message through a memory
channel; wsproto parses each frame through several generator and event layers. At tens of
thousands of frames a second either costs the driver more CPU than the server spends, on the
same two cores, and the driver then measures itself. So wsproto does the handshake and builds
the (masked) frames we send, and the server's frames, which are never masked, are read here:
a header, a length, a payload. The caller's one reader task gets every complete message of a
read at once.
"""

import contextlib
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionState, ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Pong,
    RejectConnection,
    Request,
)

RECEIVE_SIZE = 1 << 18


class HandshakeError(Exception):
    pass


class ProtocolError(Exception):
    pass


class WebSocket:
    __slots__ = ("stream", "ws", "closed", "_send_lock", "_parts", "_opcode", "_buf", "early")

    def __init__(self, stream: trio.SocketStream, ws: WSConnection):
        self.stream = stream
        self.ws = ws
        self.closed = False
        self._send_lock = trio.StrictFIFOLock()
        self._parts: list = []  # payloads of a fragmented message so far
        self._opcode = 0  # of the fragmented message
        self._buf = bytearray()
        self.early: list = []  # messages that came in the same read as the handshake's answer

    async def send_text(self, text: str) -> None:
        await self._send(self.ws.send(Message(data=text)))

    async def _send(self, data: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(data)

    async def receive_batch(self) -> list:
        """Every complete message the next read brings; [] and `closed` at the end."""
        if self.early:
            out, self.early = self.early, []
            return out
        while not self.closed:
            try:
                data = await self.stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self.closed = True
                return []
            buf = self._buf
            buf += data
            out: list = []
            control = self._parse(buf, out)
            for opcode, payload in control:
                if opcode == 0x9:
                    await self._send(self.ws.send(Pong(payload=payload)))
                elif opcode == 0x8:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    with contextlib.suppress(Exception):
                        await self._send(self.ws.send(CloseConnection(code=1000 if code == 1005 else code)))
                    self.closed = True
                    return out
            if out:
                return out
        return []

    def _parse(self, buf: bytearray, out: list) -> list:
        """Move the complete frames at the start of `buf` into `out` (messages) and the returned
        list (control frames: (opcode, payload))."""
        control = []
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b1 & 0x80 or b0 & 0x70:
                raise ProtocolError("masked frame or reserved bits set in a server frame")
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            end = pos + head + length
            if end > n:
                break
            payload = bytes(buf[pos + head:end])
            pos = end
            opcode = b0 & 0x0F
            if opcode >= 0x8:
                control.append((opcode, payload))
                continue
            if opcode:
                if self._parts:
                    raise ProtocolError("a new message inside a fragmented one")
                self._opcode = opcode
            elif not self._parts:
                raise ProtocolError("continuation frame with no message")
            if not b0 & 0x80:
                self._parts.append(payload)
                continue
            if self._parts:
                self._parts.append(payload)
                payload, opcode = b"".join(self._parts), self._opcode
                self._parts.clear()
            out.append(payload.decode() if opcode == 0x1 else payload)
        del buf[:pos]
        return control

    async def aclose(self) -> None:
        if not self.closed and self.ws.state is ConnectionState.OPEN:
            self.closed = True
            with contextlib.suppress(Exception):
                with trio.move_on_after(2):
                    await self._send(self.ws.send(CloseConnection(code=1000)))
        await self.stream.aclose()


@contextlib.asynccontextmanager
async def connect(url: str, *, headers: list[tuple[str, str]] = (), timeout: float = 30.0):
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    with trio.fail_after(timeout):
        stream = await trio.open_tcp_stream(host, port)
    ws = WSConnection(ConnectionType.CLIENT)
    client = WebSocket(stream, ws)
    try:
        with trio.fail_after(timeout):
            await stream.send_all(ws.send(Request(host=f"{host}:{port}", target=target,
                                                  extra_headers=[(k.encode(), v.encode()) for k, v in headers])))
            head = bytearray()
            while b"\r\n\r\n" not in head:
                data = await stream.receive_some(RECEIVE_SIZE)
                if not data:
                    raise HandshakeError("connection closed during the handshake")
                head += data
            end = head.index(b"\r\n\r\n") + 4
            client._buf += head[end:]  # the server may speak first (Engine.IO's open packet)
            ws.receive_data(bytes(head[:end]))
            events = list(ws.events())
            if not any(isinstance(e, AcceptConnection) for e in events):
                status = next((e.status_code for e in events if isinstance(e, RejectConnection)), "?")
                raise HandshakeError(f"handshake rejected with {status}")
        if client._buf:
            client.early = []
            client._parse(client._buf, client.early)
        yield client
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()
