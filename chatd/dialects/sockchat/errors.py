"""Domain errors → sockchat HTTP statuses (bodies are `null`, as the document shows) and ack bodies.

The document names 400 (missing input), 401 (bad token or login), 406 (nothing
to update), 409 (the DM exists) and 500. The other domain errors get the
nearest ordinary status. Oversized bodies and malformed parameters are the
client's fault: 400, never 500.
"""

import logging

import msgspec
from werkzeug.exceptions import RequestEntityTooLarge

from ...core import errors
from ...web.bodies import json_response

log = logging.getLogger("chatd.sockchat")

STATUS = {
    errors.Invalid: 400,
    errors.TooLarge: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
}


class BadRequest(Exception):
    """Missing or malformed input (400)."""


class NotModified(Exception):
    """`/update-account` was given the current values only (406)."""


def status_of(exc: BaseException) -> int:
    if isinstance(exc, errors.ChatdError):
        return STATUS.get(type(exc), 400)
    if isinstance(exc, BadRequest | RequestEntityTooLarge | msgspec.ValidationError | msgspec.DecodeError):
        return 400
    if isinstance(exc, NotModified):
        return 406
    log.error("unexpected error", exc_info=exc)
    return 500


def message_of(exc: BaseException) -> str:
    if isinstance(exc, errors.ChatdError):
        return exc.message
    if isinstance(exc, RequestEntityTooLarge):
        return "the body is too large"
    if isinstance(exc, BadRequest | NotModified | msgspec.ValidationError | msgspec.DecodeError):
        return str(exc) or "bad request"
    return "internal error"


def error_response(exc: BaseException):
    """The HTTP answer for an error: its status and a `null` body."""
    if isinstance(exc, RequestEntityTooLarge):
        # The rest of the body was never read: the connection cannot carry another request.
        return json_response(None, status=400, headers={"Connection": "close"})
    return json_response(None, status=status_of(exc))


def error_ack(exc: BaseException) -> dict:
    """The Socket.IO ack for an event that was not accepted."""
    return {"ok": False, "status": status_of(exc), "error": message_of(exc)}
