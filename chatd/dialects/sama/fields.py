"""Reading fields of a request body with SAMA's 400 for wrong shapes."""

from .errors import BadFormat

_MISSING = object()


def obj(body, what: str = "request body") -> dict:
    if not isinstance(body, dict):
        raise BadFormat(f"{what} must be an object")
    return body


def get(body: dict, name: str, kind, *, required: bool = False, default=None):
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise BadFormat(f"{name} is required")
        return default
    if isinstance(value, bool) and kind is not bool:
        raise BadFormat(f"{name} has the wrong type")
    if not isinstance(value, kind):
        raise BadFormat(f"{name} has the wrong type")
    return value


def limit(body: dict, default: int = 100, maximum: int = 100) -> int:
    value = get(body, "limit", int, default=default)
    if value < 1:
        raise BadFormat("limit must be positive")
    return min(value, maximum)


def time_range(body: dict, name: str = "updated_at") -> tuple[int | None, int | None]:
    """`{gt: ms}` / `{lt: ms}` filters, in milliseconds."""
    value = body.get(name)
    if value in (None, ""):
        return None, None
    if not isinstance(value, dict):
        raise BadFormat(f"{name} must be an object with gt or lt")
    gt, lt = value.get("gt"), value.get("lt")
    for v in (gt, lt):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise BadFormat(f"{name}.gt and {name}.lt must be timestamps in milliseconds")
    return (int(gt) if gt is not None else None), (int(lt) if lt is not None else None)
