"""Domain errors → SAMA's `{status, message}` error objects (HTTP-like statuses)."""

import logging

import msgspec

from ...core import errors
from ...wirejson import JSONInputError

log = logging.getLogger("chatd.sama")

STATUS = {
    errors.Invalid: 422,
    errors.Conflict: 422,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.TooLarge: 413,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
}


class BadFormat(Exception):
    """The frame or a field has the wrong shape (400)."""


class WireStatus(Exception):
    """An answer whose status the vendor's server fixes, whatever the domain error behind it
    (`connect` with a dead token: 422 "The token has expired.")."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(exc: BaseException) -> dict:
    if isinstance(exc, errors.ChatdError):
        message = exc.message
        if exc.details.get("kind") == "channel":
            message = message.replace("channel", "conversation")  # the core's channel is SAMA's conversation
        return {"status": STATUS.get(type(exc), 400), "message": message}
    if isinstance(exc, WireStatus):
        return {"status": exc.status, "message": exc.message}
    if isinstance(exc, BadFormat | msgspec.ValidationError | msgspec.DecodeError | JSONInputError):
        return {"status": 400, "message": str(exc) or "bad format"}
    log.error("unexpected error", exc_info=exc)
    return {"status": 500, "message": "internal error"}
