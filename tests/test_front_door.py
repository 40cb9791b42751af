"""The HTTP port's front door (chatd/front.py): no client can stop the process.

Raw sockets, no WebSocket library: Engine.IO WebSockets on the HTTP port that send an
oversize frame and then another frame (the input that made Hypercorn 0.18.0 raise TypeError
into the root nursery), on a fresh WebSocket, during a polling → WebSocket upgrade, and on a
kept-alive HTTP connection (which still goes to Hypercorn). After each, the server must still
answer GET /health and a stock Socket.IO client must connect. Then failures injected into one
connection's code, on the HTTP port and on the gateway port, must end that connection only.
"""

import json

import httpx
import pytest
import socketio
import trio

from chatd.gateway.frames import BINARY, CLOSE, TEXT
from tests.gateway.test_frames import client_frame, split_server_frame

SOCKCHAT = {"sockchat": {"enabled": True}}
LIMIT = 1024  # limits.max_ws_frame: Engine.IO maxPayload and the WebSocket message limit
EIO_WS = "/socket.io/?EIO=4&transport=websocket"


def upgrade_request(target: str) -> bytes:
    return (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


class RawWS:
    """A hand-made WebSocket client on a plain TCP stream."""

    def __init__(self, stream: trio.SocketStream, buf: bytes = b""):
        self.stream = stream
        self.buf = buf

    @classmethod
    async def open(cls, server, target: str, *, before: bytes = b"") -> "RawWS":
        port = int(server.http_url.rsplit(":", 1)[1])
        c = cls(await trio.open_tcp_stream("127.0.0.1", port))
        if before:  # a plain HTTP request first, on the same (kept-alive) connection
            await c.stream.send_all(before)
            await c._http_response()
        await c.stream.send_all(upgrade_request(target))
        head = await c._http_head()
        assert head.startswith(b"HTTP/1.1 101"), head
        return c

    async def _http_head(self) -> bytes:
        with trio.fail_after(5):
            while b"\r\n\r\n" not in self.buf:
                chunk = await self.stream.receive_some(65536)
                assert chunk, "connection closed during the HTTP response"
                self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    async def _http_response(self) -> bytes:
        head = await self._http_head()
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        with trio.fail_after(5):
            while len(self.buf) < length:
                self.buf += await self.stream.receive_some(65536)
        body, self.buf = self.buf[:length], self.buf[length:]
        return body

    async def send(self, payload: bytes, opcode: int = TEXT) -> None:
        await self.stream.send_all(client_frame(payload, opcode))

    async def frame(self, timeout: float = 5) -> tuple[int, bytes] | None:
        """The next server frame (opcode, payload), or None at EOF."""
        with trio.fail_after(timeout):
            while True:
                if (split := split_server_frame(self.buf)) is not None:
                    opcode, payload, self.buf = split
                    return opcode, payload
                try:
                    chunk = await self.stream.receive_some(65536)
                except trio.BrokenResourceError:  # reset by the server
                    return None
                if not chunk:
                    return None
                self.buf += chunk

    async def until_closed(self) -> int | None:
        """Read to the end; the close code the server sent, if any."""
        code = None
        while (f := await self.frame()) is not None:
            if f[0] == CLOSE and code is None:
                code = int.from_bytes(f[1][:2], "big")
        return code


async def server_still_serves(server) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
        r = await http.get("/health")
        assert r.status_code == 200 and r.json()["status"] == "ok"
    for transports in (["websocket"], ["polling", "websocket"]):
        client = socketio.Client(reconnection=False, request_timeout=5)

        def connect(client=client, transports=transports):
            client.connect(server.http_url, transports=transports, wait_timeout=5)
            return client.transport()

        try:
            with trio.fail_after(10):
                transport = await trio.to_thread.run_sync(connect, abandon_on_cancel=True)
            assert transport in ("websocket", "polling")
        finally:
            await trio.to_thread.run_sync(client.disconnect)


def oversize_then_other(first_opcode: int) -> list[bytes]:
    big = b"\x01" * (LIMIT * 3) if first_opcode == BINARY else b"4" + b"x" * (LIMIT * 3)
    other = b"4hello" if first_opcode == BINARY else b"\x02\x03"
    return [client_frame(big, first_opcode), client_frame(other, TEXT if first_opcode == BINARY else BINARY)]


async def attack(ws: RawWS, first_opcode: int) -> int | None:
    frames = oversize_then_other(first_opcode)
    try:
        await ws.stream.send_all(frames[0])
        await trio.sleep(0.05)  # let the server read the oversize frame on its own
        await ws.stream.send_all(frames[1] + client_frame(b"2", TEXT))
    except trio.BrokenResourceError:
        pass  # the server already closed: fine
    code = await ws.until_closed()
    await ws.stream.aclose()
    return code


@pytest.mark.config(dialects=SOCKCHAT, limits={"max_ws_frame": LIMIT})
@pytest.mark.parametrize("first", [BINARY, TEXT], ids=["binary-then-text", "text-then-binary"])
async def test_oversize_frame_then_another_on_engineio_websocket(server, first):
    ws = await RawWS.open(server, EIO_WS)
    opcode, payload = await ws.frame()
    assert opcode == TEXT and payload.startswith(b"0{")  # the Engine.IO OPEN packet
    code = await attack(ws, first)
    assert code in (1009, None)
    await server_still_serves(server)


@pytest.mark.config(dialects=SOCKCHAT, limits={"max_ws_frame": LIMIT})
@pytest.mark.parametrize("first", [BINARY, TEXT], ids=["binary-then-text", "text-then-binary"])
async def test_oversize_frame_during_polling_to_websocket_upgrade(server, first):
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
        r = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert r.status_code == 200 and r.text.startswith("0{")
        sid = json.loads(r.text[1:])["sid"]
    ws = await RawWS.open(server, f"{EIO_WS}&sid={sid}")
    await attack(ws, first)  # instead of 2probe
    await server_still_serves(server)


@pytest.mark.config(dialects=SOCKCHAT, limits={"max_ws_frame": LIMIT})
async def test_oversize_frame_on_upgrade_after_keep_alive_request(server):
    """The upgrade is the second request on a connection: Hypercorn serves it, and its failure
    must stay with that connection."""
    before = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    ws = await RawWS.open(server, EIO_WS, before=before)
    await attack(ws, BINARY)
    await server_still_serves(server)


@pytest.mark.config(dialects=SOCKCHAT)
async def test_other_websocket_paths_on_the_http_port_get_404(server):
    port = int(server.http_url.rsplit(":", 1)[1])
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(upgrade_request("/health"))
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.1 404 ")
    await server_still_serves(server)


# -- injected failures: one connection's error never ends the process ----------------------


@pytest.mark.config(dialects=SOCKCHAT)
async def test_failure_in_an_http_connection_is_contained(server, monkeypatch):
    from hypercorn.trio.tcp_server import TCPServer

    read_data = TCPServer._read_data
    failed = []

    async def failing_once(self):
        if not failed:
            failed.append(True)
            raise TypeError("injected failure")
        return await read_data(self)

    monkeypatch.setattr(TCPServer, "_read_data", failing_once)
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
        with pytest.raises(httpx.TransportError):
            await http.get("/health")
    assert failed
    await trio.sleep(0.1)
    await server_still_serves(server)


@pytest.fixture
def failing_gateway_connection(monkeypatch):
    """The gateway's per-connection handler raises for the first connection (patched before the
    server starts: the listener binds its handler then)."""
    from chatd.gateway.websocket import WebSocketGateway

    serve_one = WebSocketGateway._serve_one
    failed = []

    async def failing_once(self, stream):
        if not failed:
            failed.append(True)
            await stream.aclose()
            raise TypeError("injected failure")
        return await serve_one(self, stream)

    monkeypatch.setattr(WebSocketGateway, "_serve_one", failing_once)
    return failed


async def test_failure_in_a_gateway_connection_is_contained(failing_gateway_connection, server):
    from trio_websocket import open_websocket_url

    failed = failing_gateway_connection
    port = int(server.ws_url.rsplit(":", 1)[1])
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(upgrade_request("/health"))
        with trio.fail_after(5):
            while await stream.receive_some(4096):
                pass
    assert failed
    async with open_websocket_url(server.ws_url + "/health") as ws:
        await ws.send_message("status?")
        assert json.loads(await ws.get_message())["status"] == "ok"
    async with httpx.AsyncClient(base_url=server.http_url, timeout=5) as http:
        assert (await http.get("/health")).status_code == 200
