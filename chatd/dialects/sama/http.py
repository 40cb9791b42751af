"""SAMA's HTTP routes: POST /login and POST /logout (access token + refresh-token cookie)."""

import math

from quart import Blueprint, request

from ...core.errors import ChatdError, RateLimited, Unauthorized
from ...web.bodies import BodyError, json_object, json_response
from . import wire
from .errors import BadFormat, WireStatus, error_body

REFRESH_COOKIE = "refresh_token"


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def _error(exc: BaseException):
    body = error_body(exc)
    headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))} if isinstance(exc, RateLimited) else None
    return json_response(body, status=body["status"], headers=headers)


def blueprint(core, settings) -> Blueprint:
    bp = Blueprint("sama", __name__, url_prefix=settings.prefix or None)
    cookie_path = (settings.prefix or "") + "/"
    refresh_ttl = core.config.auth.refresh_token_ttl

    def login_response(user, issued_token: str, expires_at: int, refresh_token: str | None):
        response = json_response({"user": wire.user(user, viewer=user.id), "access_token": issued_token,
                                  "expired_at": expires_at})
        if refresh_token is not None:
            response.set_cookie(REFRESH_COOKIE, refresh_token, max_age=refresh_ttl, httponly=True,
                                samesite="Lax", path=cookie_path,
                                secure=core.config.server.public_url.startswith("https:"))
        return response

    async def body() -> dict:
        try:
            return await json_object()
        except BodyError as e:
            raise BadFormat(str(e)) from None

    @bp.post("/login")
    async def login():
        """POST /login — login+password, a Bearer access token, or the refresh-token cookie."""
        try:
            data = await body()
            device_id = data.get("device_id")
            if not isinstance(device_id, str) or not device_id:
                raise WireStatus(422, "device_id is required")  # the vendor's status
            login_name, password = data.get("login"), data.get("password")
            if login_name is not None or password is not None:
                user = await core.accounts.check_password(login_name, password, remote=request.remote_addr)
                issued = await core.sessions.create(user.id, device_id, dialect="sama")
            elif (token := _bearer()) is not None:
                session = core.sessions.authenticate(token, device_id=device_id)
                return login_response(core.accounts.get(session.user_id), token, session.expires_at, None)
            elif (refresh := request.cookies.get(REFRESH_COOKIE)) is not None:
                issued = await core.sessions.refresh(refresh, device_id)
                user = core.accounts.get(issued.session.user_id)
            else:
                raise Unauthorized("give login and password, a Bearer token or the refresh-token cookie")
            return login_response(user, issued.access_token, issued.session.expires_at, issued.refresh_token)
        except (ChatdError, BadFormat, WireStatus) as exc:
            return _error(exc)

    @bp.post("/logout")
    async def logout():
        """POST /logout — end this device's session and clear the refresh-token cookie."""
        try:
            token = _bearer()
            if token is None:
                raise Unauthorized("the access token must be in the Authorization header")
            session = core.sessions.authenticate(token)
            await core.sessions.revoke(session.id)
        except ChatdError as exc:
            return _error(exc)
        response = json_response({"success": True})
        response.delete_cookie(REFRESH_COOKIE, path=cookie_path)
        return response

    return bp
