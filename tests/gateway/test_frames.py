"""Client frames read by gateway/frames.py: what RFC 6455 §5 allows, and each thing it forbids."""

import os

import pytest

from chatd.gateway.frames import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    FrameReader,
    ProtocolViolation,
    close_frame,
    frame,
    unmask,
)


def client_frame(payload: bytes, opcode: int = TEXT, *, fin: bool = True, masked: bool = True,
                 rsv: int = 0, declared: int | None = None) -> bytes:
    n = len(payload) if declared is None else declared
    b0 = (0x80 if fin else 0) | rsv | opcode
    m = 0x80 if masked else 0
    if n < 126:
        head = bytes((b0, m | n))
    elif n < 65536:
        head = bytes((b0, m | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, m | 127)) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def split_server_frame(buf: bytes) -> tuple[int, bytes, bytes] | None:
    """(opcode, payload, the rest) of the first whole server frame in `buf`, or None if it is not
    all there yet (for hand-made test clients)."""
    if len(buf) < 2:
        return None
    opcode, n, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
    assert not buf[1] & 0x80, "server frames are never masked"
    if n == 126:
        n, at = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        n, at = int.from_bytes(buf[2:10], "big"), 10
    if len(buf) < at + n:
        return None
    return opcode, buf[at:at + n], buf[at + n:]


def read_all(data: bytes, max_message: int = 1 << 20) -> list:
    reader = FrameReader(max_message)
    reader.feed(data)
    out = []
    while (item := reader.next()) is not None:
        out.append(item)
    return out


def test_unmask_round_trips_every_length():
    mask = b"\x01\x02\x03\x04"
    for n in range(0, 70):
        data = os.urandom(n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        assert unmask(masked, mask) == data


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 200_000])
def test_text_and_binary_of_every_length_class(size):
    text = "é" * (size // 2) + "x" * (size % 2)
    blob = os.urandom(size)
    items = read_all(client_frame(text.encode()) + client_frame(blob, BINARY))
    assert items == [(TEXT, text), (BINARY, blob)]


def test_frames_split_at_every_byte_arrive_whole():
    data = client_frame(b'{"a": 1}') + client_frame(b"x" * 300) + client_frame(b"hb", PING)
    reader = FrameReader(1 << 20)
    out = []
    for i in range(len(data)):
        reader.feed(data[i:i + 1])
        while (item := reader.next()) is not None:
            out.append(item)
    assert out == [(TEXT, '{"a": 1}'), (TEXT, "x" * 300), (PING, b"hb")]


def test_fragmented_message_with_a_ping_in_between():
    data = (client_frame(b"hel", TEXT, fin=False) + client_frame(b"hb", PING)
            + client_frame(b"lo ", 0, fin=False) + client_frame("wörld".encode(), 0))
    assert read_all(data) == [(PING, b"hb"), (TEXT, "hello wörld")]


def test_utf8_is_checked_on_the_whole_message_not_per_fragment():
    word = "ü".encode()  # two bytes, split across fragments
    data = client_frame(word[:1], TEXT, fin=False) + client_frame(word[1:], 0)
    assert read_all(data) == [(TEXT, "ü")]
    with pytest.raises(ProtocolViolation) as e:
        read_all(client_frame(b"\xff\xfe"))
    assert e.value.code == 1007


@pytest.mark.parametrize("data, why", [
    (client_frame(b"x", masked=False), "masked"),
    (client_frame(b"x", rsv=0x40), "reserved"),
    (client_frame(b"x", 0x3), "opcode"),
    (client_frame(b"x", 0xB), "opcode"),
    (client_frame(b"x", 0), "continuation"),
    (client_frame(b"x", TEXT, fin=False) + client_frame(b"y", TEXT), "inside"),
    (client_frame(b"hb", PING, fin=False), "control"),
    (client_frame(b"p" * 126, PING), "control"),
    (client_frame(b"\x03", CLOSE), "one-byte"),
    (client_frame((999).to_bytes(2, "big"), CLOSE), "close code"),
    (client_frame((1005).to_bytes(2, "big"), CLOSE), "close code"),
])
def test_protocol_errors_close_with_1002(data, why):
    with pytest.raises(ProtocolViolation) as e:
        read_all(data)
    assert e.value.code == 1002 and why in str(e.value)


def test_too_big_is_refused_by_the_declared_length_before_the_payload_arrives():
    reader = FrameReader(1000)
    reader.feed(client_frame(b"", declared=5000)[:8])  # only the header and mask
    with pytest.raises(ProtocolViolation) as e:
        reader.next()
    assert e.value.code == 1009


def test_fragments_count_towards_the_message_limit():
    data = client_frame(b"a" * 600, TEXT, fin=False) + client_frame(b"b" * 600, 0)
    assert read_all(data, max_message=1200) == [(TEXT, "a" * 600 + "b" * 600)]
    with pytest.raises(ProtocolViolation) as e:
        read_all(data, max_message=1000)
    assert e.value.code == 1009


def test_close_and_pong_payloads():
    assert read_all(client_frame(b"", CLOSE)) == [(CLOSE, (1005, ""))]
    assert read_all(client_frame((4000).to_bytes(2, "big") + b"bye", CLOSE)) == [(CLOSE, (4000, "bye"))]
    assert read_all(client_frame(b"p", PONG)) == [(PONG, b"p")]


def test_server_frames():
    assert frame(b"hi") == b"\x81\x02hi"
    assert frame(b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert frame(b"x" * 70000, BINARY)[:2] == b"\x82\x7f"
    assert close_frame(1009, "too big") == b"\x88\x09\x03\xf1too big"
