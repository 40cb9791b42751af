"""Hand-made frames against the running gateway (the `/health` probe answers every message): a
protocol error closes only the connection that made it, with the RFC's close code."""

import json

import pytest
import trio
from trio_websocket import open_websocket_url

from chatd.gateway.frames import BINARY, CLOSE, PING, PONG, TEXT
from tests.gateway.test_frames import client_frame, split_server_frame

UPGRADE = (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


class RawClient:
    def __init__(self, stream: trio.SocketStream):
        self.stream = stream
        self.buf = b""

    @classmethod
    async def open(cls, server, first: bytes = b"") -> "RawClient":
        port = int(server.ws_url.rsplit(":", 1)[1])
        c = cls(await trio.open_tcp_stream("127.0.0.1", port))
        await c.stream.send_all(UPGRADE + first)  # the first frames in the same packet as the request
        while b"\r\n\r\n" not in c.buf:
            c.buf += await c.stream.receive_some(4096)
        head, c.buf = c.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        return c

    async def frame(self) -> tuple[int, bytes] | None:
        """The next server frame (opcode, payload), or None at EOF."""
        with trio.fail_after(5):
            while True:
                if (split := split_server_frame(self.buf)) is not None:
                    opcode, payload, self.buf = split
                    return opcode, payload
                chunk = await self.stream.receive_some(65536)
                if not chunk:
                    return None
                self.buf += chunk

    async def close_code(self) -> int:
        while (f := await self.frame()) is not None:
            if f[0] == CLOSE:
                return int.from_bytes(f[1][:2], "big")
        raise AssertionError("closed without a close frame")


async def probe_ok(server) -> None:
    async with open_websocket_url(server.ws_url + "/health") as ws:
        await ws.send_message("status?")
        assert json.loads(await ws.get_message())["status"] == "ok"


async def test_first_frame_in_the_handshake_packet_is_answered(server):
    c = await RawClient.open(server, client_frame(b"status?") + client_frame(b"again", BINARY))
    for _ in range(2):
        opcode, payload = await c.frame()
        assert opcode == TEXT and json.loads(payload)["status"] == "ok"
    await c.stream.aclose()


async def test_fragmented_message_and_ping_in_between(server):
    c = await RawClient.open(server)
    await c.stream.send_all(client_frame(b"sta", TEXT, fin=False) + client_frame(b"hb!", PING)
                            + client_frame(b"tus?", 0))
    assert await c.frame() == (PONG, b"hb!")
    opcode, payload = await c.frame()
    assert opcode == TEXT and json.loads(payload)["status"] == "ok"
    await c.stream.aclose()


@pytest.mark.parametrize("bad, code", [
    (client_frame(b"status?", masked=False), 1002),
    (client_frame(b"status?", rsv=0x40), 1002),
    (client_frame(b"x", 0x3), 1002),
    (client_frame(b"\xc3\x28"), 1007),
], ids=["unmasked", "reserved-bits", "unknown-opcode", "bad-utf8"])
async def test_protocol_error_closes_only_that_connection(server, bad, code):
    c = await RawClient.open(server)
    await c.stream.send_all(bad)
    assert await c.close_code() == code
    assert await c.frame() is None  # and the server hangs up
    await probe_ok(server)


@pytest.mark.config(limits={"max_ws_frame": 1024})
async def test_declared_oversize_is_refused_before_the_payload(server):
    c = await RawClient.open(server)
    await c.stream.send_all(client_frame(b"", declared=10 << 20)[:14])  # header only, 10 MiB promised
    assert await c.close_code() == 1009
    await probe_ok(server)


async def test_client_close_is_echoed_with_its_code(server):
    c = await RawClient.open(server)
    await c.stream.send_all(client_frame((4001).to_bytes(2, "big") + b"bye", CLOSE))
    assert await c.close_code() == 4001
    assert await c.frame() is None


async def test_oversized_request_head_gets_431(server):
    port = int(server.ws_url.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /health HTTP/1.1\r\nX-Filler: " + b"a" * 40000)
        with trio.fail_after(5):
            reply = await stream.receive_some(4096)
        assert reply.startswith(b"HTTP/1.1 431 ")
    await probe_ok(server)
