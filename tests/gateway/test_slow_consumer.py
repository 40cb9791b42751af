"""A client that stops reading is closed with 1013 ("try again later"), and it reads that close
frame after the backlog once it resumes reading — the kernel send buffer is never filled to the
brim, so the close frame always fits behind the frames already written, and no frame is ever cut
short. Raw sockets on the gateway port and on the Engine.IO WebSocket of the HTTP port."""

import pytest
import trio

from chatd.gateway.frames import CLOSE, TEXT
from tests.gateway.test_raw_frames import RawClient
from tests.test_front_door import EIO_WS, RawWS

FRAME = 60_000  # bytes per frame: a few MB fill the kernel buffers quickly


async def read_to_close(client) -> tuple[int, int | None, str]:
    """(data frames read, close code, close reason); every frame must parse."""
    frames, code, reason = 0, None, ""
    while (f := await client.frame()) is not None:
        opcode, payload = f
        if opcode == CLOSE:
            code, reason = int.from_bytes(payload[:2], "big"), payload[2:].decode()
            break
        assert opcode == TEXT and len(payload) in (FRAME, FRAME + 1), (opcode, len(payload))
        frames += 1
    return frames, code, reason


@pytest.mark.deadline(40)
@pytest.mark.config(limits={"outbound_queue": 8, "idle_timeout": 60, "heartbeat_interval": 30})
async def test_gateway_client_that_stops_reading_gets_1013_after_its_backlog(server):
    client = await RawClient.open(server)  # /health, then never reads until told
    while not server.gateway.connections:
        await trio.sleep(0.01)
    conn = next(iter(server.gateway.connections))
    payload = "x" * FRAME
    queued = 0
    with trio.fail_after(20):
        while conn.close_code is None:
            conn.send(payload)  # as a dialect does; never blocks
            queued += 1
            await trio.sleep(0.002)  # let the writer drain into the socket
    assert conn.close_code == 1013
    await trio.sleep(0.5)  # the server has given up on the client by now
    frames, code, reason = await read_to_close(client)
    assert code == 1013, (frames, queued)
    assert "slow consumer" in reason
    assert 0 < frames < queued
    await client.stream.aclose()


@pytest.mark.deadline(40)
@pytest.mark.config(dialects={"sockchat": {"enabled": True}},
                    limits={"outbound_queue": 8, "heartbeat_interval": 30})
async def test_engineio_websocket_client_that_stops_reading_gets_1013(server):
    ws = await RawWS.open(server, EIO_WS)
    opcode, payload = await ws.frame()
    assert opcode == TEXT and payload.startswith(b"0{")
    engine = server.extra_gateway_stats["socketio"].engine
    session = next(iter(engine.sessions.values()))
    payload = "x" * FRAME
    queued = 0
    with trio.fail_after(20):
        while not session.closed:
            session.send(payload)
            queued += 1
            await trio.sleep(0.002)
    assert session.close_reason == "slow consumer"
    await trio.sleep(0.5)
    frames, code, _ = await read_to_close(ws)
    assert code == 1013, (frames, queued)
    assert 0 < frames < queued
    await ws.stream.aclose()
