"""JSON request bodies and responses, shared by the app's own routes and every dialect's blueprint."""

import msgspec
from quart import Response, request

from .. import wirejson


class BodyError(ValueError):
    """The request body is not the JSON object a route expects (dialects map it to their 400)."""


async def json_object() -> dict:
    """The request body as a JSON object; an empty body is `{}`."""
    raw = await request.get_data()
    if not raw:
        return {}
    try:
        data = wirejson.decode(raw)
    except wirejson.JSONInputError as e:
        raise BodyError(f"the body is {e}") from None
    if not isinstance(data, dict):
        raise BodyError("the body must be a JSON object")
    return data


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(msgspec.json.encode(body), status=status, headers=headers, content_type="application/json")
