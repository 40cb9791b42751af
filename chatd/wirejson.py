"""JSON from clients, for every dialect: decoded once, nested at most `MAX_DEPTH` levels.

A free-form value (SAMA's `x`, a Socket.IO event's arguments, a REST body) is
stored and later decoded again by cbor2, which refuses more than 400 levels;
and msgspec raises RecursionError on ~1,000. Bounding depth at the edge keeps
every stored record readable and every decode error a client error.
"""

from typing import Any

import msgspec

from .core.validate import MAX_JSON_DEPTH, nesting_exceeds

MAX_DEPTH = MAX_JSON_DEPTH

_decode = msgspec.json.Decoder().decode


class JSONInputError(ValueError):
    """The input is not JSON, or nests deeper than allowed (dialects map it to their 400)."""


def decode(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode client JSON; JSONInputError if it is not JSON or nests deeper than `max_depth`."""
    try:
        value = _decode(raw)
    except msgspec.DecodeError:
        raise JSONInputError("not valid JSON") from None
    except RecursionError:
        raise JSONInputError(f"JSON nested deeper than {max_depth} levels") from None
    check_depth(value, max_depth, raw)
    return value


def _openers(raw: bytes | str) -> int:
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{")
    return raw.count(b"[") + raw.count(b"{")


def check_depth(value: Any, max_depth: int = MAX_DEPTH, raw: bytes | str | None = None) -> None:
    """JSONInputError if `value` has containers nested deeper than `max_depth`.

    With the `raw` text it came from, a value with fewer brackets than the limit is not walked.
    """
    if raw is not None and _openers(raw) <= max_depth:
        return
    if nesting_exceeds(value, max_depth):
        raise JSONInputError(f"JSON nested deeper than {max_depth} levels")
