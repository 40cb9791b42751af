"""Users: user_create, user_login, connect, user_logout, user_edit, user_delete, user_search,
get_users_by_ids, ping."""

from ...core.errors import Unauthorized
from . import wire
from .errors import WireStatus
from .fields import get, limit, obj, time_range
from .wire import parse_ids

DIALECT = "sama"


def token_expired() -> WireStatus:
    """How the vendor's server answers `connect` with an unknown, expired, replaced or other device's token."""
    return WireStatus(422, "The token has expired.")


def render_user(s, user) -> dict:
    """A user as `s` sees it: `recent_activity` only when the user has not blocked `s`."""
    presence = s.core.presence
    activity = presence.last_activity_ms(user.id) if presence.visible_to(s.user_id, user.id) else None
    return wire.user(user, viewer=s.user_id, recent_activity=activity)


async def user_create(s, body) -> dict:
    """request user_create {login, password, email?, phone?, first_name?, last_name?, organization_id?}"""
    body = obj(body)
    org = get(body, "organization_id", str)
    user = await s.core.accounts.create(
        get(body, "login", str, required=True), password=get(body, "password", str, required=True),
        email=get(body, "email", str), phone=get(body, "phone", str),
        first_name=get(body, "first_name", str), last_name=get(body, "last_name", str),
        extra={"organization_id": org} if org else None,
    )
    return {"user": wire.user(user, viewer=user.id)}


async def user_login(s, body) -> dict:
    """request user_login {login, password, device_id} or {token} (deprecated; HTTP /login is preferred)"""
    body = obj(body)
    token = get(body, "token", str)
    if token is not None:
        session = s.core.sessions.authenticate(token)
        user = s.core.accounts.get(session.user_id)
        s.bind(user.id, session.id, session.device_id)
        return {"user": wire.user(user, viewer=user.id), "token": token}
    user = await s.core.accounts.check_password(get(body, "login", str, required=True),
                                                get(body, "password", str, required=True), remote=s.remote)
    device_id = get(body, "device_id", str) or "default"
    issued = await s.core.sessions.create(user.id, device_id, refresh=False, dialect=DIALECT)
    s.bind(user.id, issued.session.id, device_id)
    return {"user": wire.user(user, viewer=user.id), "token": issued.access_token}


async def connect(s, body) -> dict:
    """request connect {token, device_id}: link this socket to an access token from POST /login.
    A missing device_id, or a token that is unknown, expired, replaced or another device's: 422."""
    body = obj(body)
    token = get(body, "token", str, required=True)
    device_id = get(body, "device_id", str)
    if not device_id:
        raise WireStatus(422, "device_id is required")
    try:
        session = s.core.sessions.authenticate(token, device_id=device_id)
    except Unauthorized:
        raise token_expired() from None
    s.bind(session.user_id, session.id, session.device_id)
    return {"success": True}


async def user_logout(s, body) -> dict:
    """request user_logout {}: end this device's session"""
    if s.session_id is not None:
        await s.core.sessions.revoke(s.session_id)
    s.unbind()
    return {"success": True}


async def user_edit(s, body) -> dict:
    """request user_edit {current_password?, new_password?, login?, email?, phone?, first_name?, last_name?}"""
    body = obj(body)
    changes = {}
    for name in ("login", "email", "phone", "first_name", "last_name", "avatar_url"):
        if name in body:
            value = body[name]
            if value is not None and not isinstance(value, str):
                raise wire.BadFormat(f"{name} has the wrong type")
            if name == "login" and value is None:
                continue
            if name in ("email", "phone") and not value:
                value = None  # an empty string removes the email or phone
            changes[name] = value
    # A new password ends the user's other sessions; this one stays.
    user = await s.core.accounts.update(
        s.user_id, new_password=get(body, "new_password", str),
        current_password=get(body, "current_password", str), keep_session=s.session_id, remote=s.remote,
        **changes,
    )
    return {"user": wire.user(user, viewer=user.id)}


async def user_delete(s, body) -> dict:
    """request user_delete {}"""
    # Deleting drops every connection of the account; detach this one first so it gets its answer.
    s.conn.unsubscribe()
    try:
        await s.core.accounts.delete(s.user_id)
    except BaseException:
        s.conn.subscribe(s.user_id)
        raise
    s.unbind()
    return {"success": True}


async def user_search(s, body) -> dict:
    """request user_search {keyword, limit, updated_at: {gt}, ignore_ids}"""
    body = obj(body)
    keyword = get(body, "keyword", str, default="")
    gt, _ = time_range(body)
    ignore = set(parse_ids(get(body, "ignore_ids", list, default=[]), "user"))
    ignore.add(s.user_id)
    users = s.core.accounts.search(keyword, limit=limit(body), updated_after=gt or 0, ignore=ignore)
    return {"users": [render_user(s, u) for u in users]}


async def get_users_by_ids(s, body) -> dict:
    """request get_users_by_ids {ids}"""
    body = obj(body)
    ids = parse_ids(get(body, "ids", list, required=True), "user")
    return {"users": [render_user(s, u) for u in s.core.accounts.get_many(ids)]}


async def ping(s, body) -> dict:
    """request ping {}"""
    return {"pong": {}}


OPERATIONS = {f.__name__: f for f in (user_create, user_login, connect, user_logout, user_edit, user_delete,
                                       user_search, get_users_by_ids, ping)}
