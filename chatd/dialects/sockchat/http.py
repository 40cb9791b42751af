"""sockchat's REST routes: /new, /update-account, /create-channel, /users, /messages, /dmchannels."""

import functools
import secrets

from quart import Blueprint, Response, request

from ...core.errors import NotFound, Unauthorized
from ...web.bodies import BodyError, json_object, json_response
from . import lookup
from .errors import BadRequest, NotModified, error_response
from .wire import (
    NULL_CHANNELS,
    WELCOME_BOT_ID,
    WELCOME_CHANNEL_ID,
    Options,
    Renderer,
    array_param,
    parse_id,
)

DIALECT = "sockchat"


def token_of(headers) -> str | None:
    """The `Authorisation` header (the document's spelling; `Authorization` and a Bearer prefix work too)."""
    value = headers.get("Authorisation") or headers.get("Authorization")
    if not value:
        return None
    value = value.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value or None


def blueprint(core, options: Options, cors_origins: tuple[str, ...], prefix: str = "") -> Blueprint:
    bp = Blueprint(DIALECT, __name__, url_prefix=prefix or None)
    render = Renderer(options)
    any_origin = "*" in cors_origins

    def handled(route):
        """Answer domain and input errors with the dialect's status and a `null` body."""
        @functools.wraps(route)
        async def wrapper(*args, **kwargs):
            try:
                return await route(*args, **kwargs)
            except Exception as exc:  # domain and input errors; anything else is logged as a 500
                return error_response(exc)
        return wrapper

    async def body() -> dict:
        """A JSON object (or a form) body; too large or malformed → 400."""
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return dict((await request.form).items())
        try:
            return await json_object()
        except BodyError as e:
            raise BadRequest(str(e)) from None

    def required_str(data: dict, name: str, *, allow_empty: bool = False) -> str:
        value = data.get(name)
        if not isinstance(value, str) or (not allow_empty and not value.strip()):
            raise BadRequest(f"{name} is required")
        return value

    def viewer() -> int:
        """The user of the `Authorisation` token: none → 400, not valid → 401 (the document's order)."""
        token = token_of(request.headers)
        if token is None:
            raise BadRequest("no authorisation token")
        return core.sessions.authenticate(token).user_id

    def user_json(user_id: int) -> dict:
        return render.user(core.accounts.find(user_id), user_id)

    async def issue(user) -> dict:
        issued = await core.sessions.create(user.id, "sockchat-" + secrets.token_hex(8), refresh=False,
                                            dialect=DIALECT)
        return {"id": str(user.id), "dms": [str(c) for c in lookup.dm_ids(core, user.id)],
                "token": issued.access_token}

    # -- CORS for browser clients (the Socket.IO path has its own) -------------------------------

    def cors_headers() -> dict:
        origin = request.headers.get("Origin")
        if origin is None or not (any_origin or origin in cors_origins):
            return {}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}

    @bp.before_request
    async def preflight():
        if request.method == "OPTIONS":
            headers = cors_headers()
            if headers:
                headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
                headers["Access-Control-Allow-Headers"] = request.headers.get(
                    "Access-Control-Request-Headers", "Authorisation, Content-Type")
                headers["Access-Control-Max-Age"] = "86400"
            return Response("", 204, headers)
        return None

    @bp.after_request
    async def add_cors(response):
        response.headers.update(cors_headers())
        return response

    # -- routes ---------------------------------------------------------------------------------

    @bp.post("/new")
    @handled
    async def new_session():
        """POST /new — create an account (201) or log in with accountID + username (202).

        An account that has a password (set here, in another dialect or by the CLI) always needs it;
        one without may log in by accountID + username alone unless `require_password` is set."""
        data = await body()
        username = required_str(data, "username")
        password = data.get("password")
        if password is not None and not isinstance(password, str):
            raise BadRequest("password must be a string")
        account_id = data.get("accountID")
        if account_id in (None, "") or (isinstance(account_id, str) and not account_id.strip()):
            user = await core.accounts.create(username, password=password or None)
            return json_response(await issue(user), status=201)
        try:
            wanted = parse_id(account_id, "accountID")
        except BadRequest:
            raise Unauthorized("wrong account id or username") from None
        user = await core.accounts.login_by_id(wanted, username, password,
                                               allow_passwordless=not options.require_password,
                                               remote=request.remote_addr)
        return json_response(await issue(user), status=202)

    @bp.post("/update-account")
    @handled
    async def update_account():
        """POST /update-account — change username, avatarURL (and password); 406 when nothing changes."""
        token = token_of(request.headers)
        data = await body()
        if token is None:
            raise BadRequest("no authorisation token")
        username = required_str(data, "username")
        avatar = required_str(data, "avatarURL", allow_empty=True)
        password = data.get("password")
        if password is not None and (not isinstance(password, str) or not password):
            raise BadRequest("password must be a non-empty string")
        current_password = data.get("currentPassword")
        if current_password is not None and not isinstance(current_password, str):
            raise BadRequest("currentPassword must be a string")
        session = core.sessions.authenticate(token)
        user = core.accounts.get(session.user_id)
        current = render.user(user)
        changes = {}
        if username != user.login:
            changes["login"] = username
        if avatar != current["avatarURL"]:
            changes["avatar_url"] = avatar or None
        if password is not None:
            # A new password ends the user's other sessions (tokens of other dialects too); this one stays.
            changes.update(new_password=password, current_password=current_password, keep_session=session.id,
                           remote=request.remote_addr)
        if not changes:
            raise NotModified("nothing to update")
        user = await core.accounts.update(user.id, **changes)
        return json_response(render.user(user), status=202)

    @bp.post("/create-channel")
    @handled
    async def create_channel():
        """POST /create-channel — open a DM with `to` (type 1); 409 if it exists; others get channelCreate."""
        data = await body()
        me = viewer()
        to, kind = data.get("to"), data.get("type")
        if to in (None, "") or kind is None:
            raise BadRequest("to and type are required")
        if isinstance(kind, bool) or kind not in (1, "1"):  # True == 1 in Python
            raise BadRequest("only type 1 (DM channel) is supported")
        other = parse_id(to, "to")
        if other == WELCOME_BOT_ID:
            raise NotFound("user not found")
        channel, _, _ = await core.channels.create(me, "dm", [other], if_exists="conflict")
        return json_response({"channel_id": str(channel.id)}, status=201)

    @bp.get("/users")
    @handled
    async def users():
        """GET /users?users=… — the users that exist among the ids (404 with an empty list if none)."""
        ids = array_param(request.args, "users")
        viewer()
        found = [render.user(u) for u in core.accounts.get_many(ids)]
        if WELCOME_BOT_ID in ids:
            found.append(dict(render.bot))
        return json_response({"users": found}, status=200 if found else 404)

    @bp.get("/messages")
    @handled
    async def messages():
        """GET /messages?channel_id=… — the last 50 messages with authors; null/undefined → welcome (201)."""
        raw = request.args.get("channel_id", request.args.get("channelID"))
        if raw is None or not raw.strip():
            raise BadRequest("channel_id is required")
        me = viewer()
        if raw.strip() in NULL_CHANNELS:
            return json_response(render.welcome(core.accounts.get(me)), status=201)
        cid = parse_id(raw, "channel_id")
        if cid == WELCOME_CHANNEL_ID:
            return json_response(render.welcome(core.accounts.get(me)), status=200)
        channel = lookup.dm(core, me, cid)
        history = core.history.history(me, cid, limit=50)
        history.reverse()
        authors = {u.id: render.user(u) for u in core.accounts.get_many(m.author_id for m in history)}
        other = lookup.other_of(channel, me)
        return json_response({
            "messages": [render.message(m, authors.get(m.author_id) or render.user(None, m.author_id))
                         for m in history],
            "channel": {"name": user_json(other)["username"], "id": str(cid)},
            "other_user": str(other),
        })

    @bp.get("/dmchannels")
    @handled
    async def dmchannels():
        """GET /dmchannels?channels=… — those of the channels the user is in, with the other user."""
        ids = array_param(request.args, "channels")
        me = viewer()
        out = []
        for cid in ids:
            if cid == WELCOME_CHANNEL_ID:
                out.append({"channel_id": str(cid), "user": dict(render.bot)})
                continue
            try:
                channel = lookup.dm(core, me, cid)
            except NotFound:
                continue
            out.append({"channel_id": str(cid), "user": user_json(lookup.other_of(channel, me))})
        return json_response({"dmchannels": out}, status=200 if out else 404)

    return bp
