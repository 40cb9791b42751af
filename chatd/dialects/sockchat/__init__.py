"""The sockchat dialect: the REST + Socket.IO API of shared/seeds/000_77eec7a90c31ba79.txt.

REST (at the dialect prefix, default "/"): POST /new, /update-account,
/create-channel; GET /users, /messages, /dmchannels. The token goes in the
`Authorisation` header (`Authorization` and a `Bearer ` prefix also work).
Error bodies are `null`. Array query parameters are accepted as
`users=1&users=2`, `users[]=1`, `users[0]=1`, `users=1,2` or `users=["1","2"]`.

Socket.IO (Engine.IO v4 / Socket.IO v5, namespace "/") at `<prefix>/socket.io/`.
At the handshake a client gives its token in the `Authorisation` header and the
channels it wants to hear in the `channels` header, comma-separated
(`channels: 1596546252413,1599079146709`). Browsers cannot set headers on a
WebSocket, so both may also come in the CONNECT `auth` payload
(`{"token": "...", "channels": ["...", ...]}` or a comma-separated string) or in
the query string (`?token=...&channels=1,2`). Without a valid token the
connection succeeds but receives nothing, as documented. Only channels the
user is a member of are heard, whatever the client lists; a channel created
later (`channelCreate`) is heard from then on without reconnecting.

Events: `message` and `messageDeleted` both ways, `channelCreate` from the
server (to the other user only). An event is stored before it is emitted; one
that does not take the documented shape is not emitted. A client that asks for
an ack gets `{"ok": true, "data": <the event as the others receive it>}` (so
the sender learns its message id: the sending socket does not get its own
`message` back, the document's "emitted to other clients"; the user's other
sockets do) or `{"ok": false, "status": 400|401|403|404|429, "error": "why"}`.

Channels are the core's DMs (kind "dm", one per pair), so a
DM here is the same conversation a SAMA client sees. Groups of other dialects
are not shown. The welcome channel is virtual: channel id "0", message id "0",
bot user id "1", its name, avatar and text from the options below.

SECURITY: as documented, `POST /new` with an `accountID` and its `username`
logs in — anyone who knows both (ids and usernames are not secrets) can act as
that user. That is the default, for compatibility with existing clients. Set
`require_password = true` to require a `password` in that request too; users
set it with `POST /update-account` (field `password`, plus `currentPassword`
when changing an existing one), at sign-up (`password` in `POST /new`), or
with `chatd admin create-user NAME --password`. Accounts without a password
cannot log in that way while the switch is on.

Options in `[dialects.sockchat]` (defaults):

    require_password = false
    default_avatar_url = ""        # avatarURL of users who have none
    welcome_username = "chatd"     # the welcome channel's bot
    welcome_avatar_url = ""
    welcome_message = "Hello! Welcome {username}!!! …"   # {username} is replaced
    ping_interval = <limits.heartbeat_interval>          # Engine.IO, seconds
    ping_timeout = 20.0

Engine.IO limits come from the config: maxPayload = `limits.max_ws_frame`,
outbound queue = `limits.outbound_queue` (a socket that falls behind is
disconnected and reconnects, then refetches with GET /messages), CORS =
`server.cors_origins` (also applied to the REST routes, with preflights). At
shutdown every Socket.IO session is closed with WebSocket code 1001 before the
HTTP server stops.
"""

import msgspec

from ...config import ConfigError
from ...gateway.socketio import SocketIOServer
from ...gateway.socketio import mount as mount_socketio
from .http import blueprint
from .socket import SockchatHandler, SocketStats
from .wire import Options, Renderer


def options_of(settings) -> Options:
    try:
        return msgspec.convert(dict(settings.options), Options)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"dialects.sockchat: {exc}") from None


async def mount(server, app, nursery, settings) -> None:
    options = options_of(settings)
    config = server.config
    origins = config.server.cors_origins
    stats = SocketStats()
    sio = SocketIOServer(
        {"/": SockchatHandler(server.core, Renderer(options), stats)},
        ping_interval=options.ping_interval or config.limits.heartbeat_interval,
        ping_timeout=options.ping_timeout,
        max_payload=config.limits.max_ws_frame,
        cors_allowed_origins="*" if "*" in origins else list(origins),
        outbound_queue_size=config.limits.outbound_queue,
    )
    stats.engine = sio.engine
    path = (settings.prefix or "") + "/socket.io/"
    mount_socketio(app, sio, path)
    if getattr(server, "front", None) is not None:
        # WebSocket upgrades on this path are served by the front door over chatd's own frame
        # reader; the Quart route only sees upgrades sent on a kept-alive HTTP connection.
        server.front.route_websocket(path, sio.engine.handle_websocket)
    app.register_blueprint(blueprint(server.core, options, origins, settings.prefix))
    await nursery.start(sio.run)
    server.extra_gateway_stats["socketio"] = stats

    def close_all() -> None:
        for session in list(sio.engine.sessions.values()):
            session.close("server shutting down")

    server.on_shutdown.append(close_all)
