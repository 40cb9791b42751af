"""Socket.IO packets whose JSON nests too deep (chatd.wirejson: 32 levels) are parse errors:
1,000 levels (past msgspec's recursion limit) and 40 levels alike close only that connection."""

import pytest
import trio

from chatd.gateway.engineio import ProtocolError
from chatd.gateway.frames import CLOSE, TEXT
from chatd.gateway.socketio import decode_packet
from tests.test_front_door import EIO_WS, RawWS


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize("depth", [40, 1000])
def test_decode_packet_refuses_deep_json(depth):
    with pytest.raises(ProtocolError):
        decode_packet(f'2["message",{nested(depth)}]')
    with pytest.raises(ProtocolError):
        decode_packet(f"0{{\"auth\":{nested(depth)}}}")


def test_decode_packet_accepts_shallow_json():
    assert decode_packet(f'2["message",{nested(30)}]').data[0] == "message"


async def connected(server) -> RawWS:
    """A raw Engine.IO WebSocket with the Socket.IO namespace "/" connected."""
    ws = await RawWS.open(server, EIO_WS)
    opcode, payload = await ws.frame()
    assert opcode == TEXT and payload.startswith(b"0{")
    await ws.send(b"40")
    opcode, payload = await ws.frame()
    assert opcode == TEXT and payload.startswith(b"40"), payload
    return ws


async def engine_ping_answered(ws: RawWS) -> None:
    await ws.send(b"2")
    while True:
        opcode, payload = await ws.frame()
        if payload == b"3":
            return


@pytest.mark.config(dialects={"sockchat": {"enabled": True}})
@pytest.mark.parametrize("depth", [40, 1000])
async def test_deeply_nested_event_closes_only_that_connection(server, depth):
    other = await connected(server)
    bad = await connected(server)
    await bad.send(f'42["message",{nested(depth)}]'.encode())
    # The connection is closed (Engine.IO "parse error": close frame, then EOF).
    with trio.fail_after(5):
        while (f := await bad.frame()) is not None:
            if f[0] == CLOSE:
                break
    assert f is None or f[0] == CLOSE, f
    await engine_ping_answered(other)
    fresh = await connected(server)
    await engine_ping_answered(fresh)
    for ws in (other, bad, fresh):
        await ws.stream.aclose()
