"""Domain errors → SAMA's `{status, message}` error objects (HTTP-like statuses)."""

import logging

import msgspec

from ...core import errors

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


def error_body(exc: BaseException) -> dict:
    if isinstance(exc, errors.ChatdError):
        return {"status": STATUS.get(type(exc), 400), "message": exc.message}
    if isinstance(exc, BadFormat | msgspec.ValidationError | msgspec.DecodeError):
        return {"status": 400, "message": str(exc) or "bad format"}
    log.error("unexpected error", exc_info=exc)
    return {"status": 500, "message": "internal error"}
