"""WebSocket frames (RFC 6455 §5) for the raw gateway: building server frames, reading client ones.

wsproto still does the opening handshake. Once the connection is open we need so little of a
general WebSocket library — no extensions, server frames never masked — that reading frames
through its generators and event objects cost more than the dialects' own work on a message
(about 10 % of a server's CPU on small messages). The reader here checks everything the RFC
requires of a client frame and refuses a frame by its declared length before buffering it.
"""

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_NO_STATUS = 1005

# Codes a peer may send in a close frame (§7.4): 1000–1003, 1007–1014, and 3000–4999.
_VALID_CLOSE = frozenset((*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)))


class ProtocolViolation(Exception):
    """The client broke the protocol; close with `code`."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """One final, unmasked server frame (text by default)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big") + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(code.to_bytes(2, "big") + reason.encode()[:123], CLOSE)


def unmask(data: bytes | bytearray, mask: bytes | bytearray) -> bytes:
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


class FrameReader:
    """Client frames in, complete messages and control frames out.

    `feed` the bytes read from the socket, then call `next` until it returns None. It returns
    `(TEXT, str)`, `(BINARY, bytes)`, `(PING, payload)`, `(PONG, payload)` or
    `(CLOSE, (code, reason))`, and raises ProtocolViolation for a frame the RFC forbids.
    """

    __slots__ = ("max_message", "_buf", "_pos", "_parts", "_size", "_opcode")

    def __init__(self, max_message: int):
        self.max_message = max_message
        self._buf = bytearray()
        self._pos = 0  # where the next frame starts in _buf
        self._parts: list[bytes] = []  # payloads of the fragmented message being received
        self._size = 0
        self._opcode = 0

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data

    def next(self):
        buf = self._buf
        while True:
            pos = self._pos
            have = len(buf) - pos
            if have < 2:
                return None
            b0, b1 = buf[pos], buf[pos + 1]
            if b0 & 0x70:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension was agreed)")
            if not b1 & 0x80:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            fin, opcode, length = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            head = 6
            if length == 126:
                if have < 4:
                    return None
                length, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 8
            elif length == 127:
                if have < 10:
                    return None
                length, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 14
                if length >> 63:
                    raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "frame length out of range")
            if opcode >= CLOSE:
                if opcode > PONG:
                    raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
                if not fin or length > 125:
                    raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "control frames must be final and short")
            elif opcode > BINARY:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
            elif opcode == CONT:
                if not self._parts:
                    raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "continuation frame without a message")
            elif self._parts:
                raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "a new message inside a fragmented one")
            if opcode < CLOSE and self._size + length > self.max_message:
                raise ProtocolViolation(CLOSE_TOO_BIG, "message too big")
            end = head + length
            if have < end:
                return None
            payload = unmask(buf[pos + head:pos + end], buf[pos + head - 4:pos + head])
            self._pos = pos + end

            if opcode >= CLOSE:
                if opcode == CLOSE:
                    return CLOSE, _close_payload(payload)
                return opcode, payload
            if not fin:
                if opcode:
                    self._opcode = opcode
                self._parts.append(payload)
                self._size += length
                continue
            if self._parts:
                self._parts.append(payload)
                payload, opcode = b"".join(self._parts), self._opcode
                self._parts.clear()
                self._size = 0
            if opcode == TEXT:
                try:
                    return TEXT, payload.decode()
                except UnicodeDecodeError:
                    raise ProtocolViolation(CLOSE_INVALID_DATA, "text message is not UTF-8") from None
            return BINARY, payload


def _close_payload(payload: bytes) -> tuple[int, str]:
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, "close frame with a one-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if code not in _VALID_CLOSE:
        raise ProtocolViolation(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        return code, payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolViolation(CLOSE_INVALID_DATA, "close reason is not UTF-8") from None
