"""The domain error hierarchy.

Services raise only these. Each carries a stable `code` (a short snake_case
string) and a human message; none knows about HTTP. Every dialect maps them
once, in its own `errors.py`, to its wire form.
"""


class ChatdError(Exception):
    code = "error"

    def __init__(self, message: str = "", **details):
        super().__init__(message or self.code)
        self.message = message or self.code.replace("_", " ")
        self.details = details


class Invalid(ChatdError):
    """The request is malformed or a value is out of range; `field` names the culprit."""

    code = "invalid"

    def __init__(self, message: str = "", *, field: str | None = None, **details):
        super().__init__(message, **details)
        self.field = field


class Unauthorized(ChatdError):
    """No valid credentials: unknown, expired or revoked token, or a wrong password."""

    code = "unauthorized"


class Forbidden(ChatdError):
    """The actor is known but may not do this."""

    code = "forbidden"


class NotFound(ChatdError):
    code = "not_found"


class Conflict(ChatdError):
    """The request contradicts stored state (a taken username, an existing DM)."""

    code = "conflict"


class TooLarge(ChatdError):
    code = "too_large"


class RateLimited(ChatdError):
    code = "rate_limited"

    def __init__(self, message: str = "", *, retry_after: float = 1.0, **details):
        super().__init__(message, **details)
        self.retry_after = retry_after


class Unavailable(ChatdError):
    """The server is shutting down or a resource is exhausted; try again later."""

    code = "unavailable"


def from_store(exc: Exception) -> Exception:
    """The store's errors in the core's terms (installed as `Store.translate_error`)."""
    from ..store.errors import KeyTooLong, StoreUnavailable

    if isinstance(exc, StoreUnavailable):
        return Unavailable(str(exc))
    if isinstance(exc, KeyTooLong):
        return Invalid(str(exc))
    return exc
