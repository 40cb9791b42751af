"""Key encodings: fixed-width big-endian integers so that byte order is numeric order."""

import struct

_U64 = struct.Struct(">Q")
_U64x2 = struct.Struct(">QQ")
MAX_U64 = (1 << 64) - 1


def u64(n: int) -> bytes:
    return _U64.pack(n)


def pair(a: int, b: int) -> bytes:
    """`a(8) ‖ b(8)`: e.g. channel id ‖ message id, so a channel's messages are one ordered range."""
    return _U64x2.pack(a, b)


def read_u64(b: bytes, offset: int = 0) -> int:
    return _U64.unpack_from(b, offset)[0]


def read_pair(b: bytes) -> tuple[int, int]:
    return _U64x2.unpack(b)


def text(s: str) -> bytes:
    """A case-folded text key (usernames, emails): unique regardless of case."""
    return s.casefold().encode("utf-8")
