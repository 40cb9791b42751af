"""The Socket.IO side: who a socket is, which channels it hears, events both ways.

A socket's bus subscription feeds its connection's bounded Engine.IO outbound
queue (`into=socket.outbound`): the publisher's task (the store's commit path)
only queues the envelope. The task that writes to the client (the WebSocket
pump, or the long-poll GET) later asks `packets_for` what the envelope becomes
for this socket — filtered by its channels, rendered once per event for all
sockchat recipients (cached in the envelope) — and writes the packets with
everything else it has queued. The subscription carries `origin=socket`, so the
bus never queues a socket's own events back to it. A full queue closes that
session as a slow consumer (the bus drops the subscription), never blocking the
publisher.

When the socket's session ends (its token expired, the password was changed,
the account logged out or was deleted) the server disconnects the namespace
(a Socket.IO DISCONNECT: stock clients do not reconnect by themselves; the
client needs a new token from POST /new).
"""

import logging

from ...core import events as ev
from ...core.bus import Envelope, Subscription
from ...core.errors import Forbidden, RateLimited, Unauthorized
from ...core.ratelimit import TokenBucket
from ...gateway.socketio import (
    ConnectInfo,
    ConnectRefused,
    EncodedPacket,
    Later,
    Socket,
    encode_event,
)
from . import lookup
from .errors import BadRequest, error_ack
from .http import token_of
from .wire import DeleteIn, MessageIn, Renderer, deleted, event_payload, parse_id

log = logging.getLogger("chatd.sockchat")

RENDER_KEY = "sockchat"
CHANNEL_HEADER = "channels"


class SocketStats:
    """What /metrics shows for the Socket.IO gateway (see chatd/metrics.py)."""

    def __init__(self):
        self.engine = None
        self.accepted = 0
        self.frames_sent = 0
        self.slow_consumers = 0

    @property
    def open(self) -> int:
        return len(self.engine.sessions) if self.engine is not None else 0


def _channel_list(value) -> list:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [part for part in value.split(",") if part.strip()]
    return []


def credentials(info: ConnectInfo) -> tuple[str | None, list]:
    """The token and channel list of a connection: from the handshake headers (the document),
    else from the CONNECT `auth` payload or the query string (browsers cannot set WebSocket headers)."""
    auth = info.auth if isinstance(info.auth, dict) else {}
    token = token_of({"Authorisation": info.headers.get("authorisation"),
                      "Authorization": info.headers.get("authorization")})
    if token is None:
        for key in ("token", "Authorisation", "authorisation", "Authorization", "authorization"):
            if isinstance(auth.get(key), str) and auth[key]:
                token = token_of({"Authorisation": auth[key]})
                break
    if token is None:
        token = token_of({"Authorisation": info.query.get("token") or info.query.get("Authorisation")})
    channels = _channel_list(info.headers.get(CHANNEL_HEADER))
    if not channels:
        channels = _channel_list(auth.get("channels"))
    if not channels:
        channels = _channel_list(info.query.get("channels"))
    return token, channels


class Client:
    """One authenticated socket: its user, session, subscribed channels and bus feed."""

    def __init__(self, handler: "SockchatHandler", socket: Socket, user_id: int, session_id: int,
                 channels: set[int]):
        self.handler = handler
        self.socket = socket
        self.user_id = user_id
        self.session_id = session_id
        self.channels = channels
        self.rate = TokenBucket(handler.limits.rate_per_second, handler.limits.rate_burst)
        self.subscription: Subscription | None = None

    def unsubscribe(self, reason: str = "closed") -> None:
        self.channels = set()
        if self.subscription is not None:
            sub, self.subscription = self.subscription, None
            sub.close()


class SockchatHandler:
    """The Socket.IO namespace "/" handler (see chatd/gateway/socketio.py)."""

    def __init__(self, core, renderer: Renderer, stats: SocketStats):
        self.core = core
        self.render = renderer
        self.stats = stats
        self.limits = core.config.limits

    # -- connection ------------------------------------------------------------------------------

    async def connect(self, socket: Socket, info: ConnectInfo) -> None:
        """Without a valid token the connection succeeds and hears nothing, as documented."""
        self.stats.accepted += 1
        socket.state["client"] = None
        token, requested = credentials(info)
        if token is None:
            return
        try:
            session = self.core.sessions.authenticate(token)
            user_id = session.user_id
            self.core.sessions.admit(user_id)
        except Unauthorized:
            return
        except (Forbidden, RateLimited) as exc:  # refused, or the connection cap
            raise ConnectRefused(exc.message) from None
        wanted = set()
        for value in requested[:1000]:
            try:
                wanted.add(parse_id(value))
            except BadRequest:
                continue
        member = set(lookup.dm_ids(self.core, user_id)) if wanted else set()
        client = Client(self, socket, user_id, session.id, wanted & member)
        socket.state["client"] = client
        client.subscription = self.core.bus.subscribe(
            user_id, into=socket.outbound, origin=socket, on_drop=lambda reason: self._dropped(client, reason))

    def _dropped(self, client: Client, reason: str) -> None:
        """The bus ended the feed: a slow consumer's session has closed already (no DISCONNECT, so
        the client reconnects); otherwise (logged out everywhere, account deleted) disconnect too."""
        client.unsubscribe(reason)
        if not reason.startswith("slow consumer"):
            client.socket.close_soon(reason)

    async def disconnect(self, socket: Socket, reason: str) -> None:
        if reason == "slow consumer":
            self.stats.slow_consumers += 1
        client = socket.state.get("client")
        if client is not None:
            client.unsubscribe()

    # -- client events ---------------------------------------------------------------------------

    async def event(self, socket: Socket, name: str, args: list):
        """Handle `message` and `messageDeleted`; the ack is `{ok: true, data}` with the event as the
        others receive it, or `{ok: false, status, error}` (then nothing was emitted)."""
        try:
            client: Client | None = socket.state.get("client")
            if client is None or client.subscription is None:
                raise Unauthorized("connect with a valid Authorisation token to send events")
            client.rate.take()
            if name == "message":
                return self.send_message(client, event_payload(args, MessageIn))
            elif name == "messageDeleted":
                data = await self.delete_message(client, event_payload(args, DeleteIn))
            else:
                raise BadRequest(f"unknown event {name!r}")
            return {"ok": True, "data": data}
        except Exception as exc:
            return error_ack(exc)

    def send_message(self, client: Client, payload: MessageIn) -> Later:
        """event message {content, channel}: stored, then emitted to the channel's other sockets.

        The write is queued without waiting for it, so a client's pipelined messages share group
        commits; the ack (in the order of the events) follows once the message is durable."""
        cid = parse_id(payload.channel, "channel")
        lookup.dm(self.core, client.user_id, cid)
        if not payload.content.strip():
            raise BadRequest("content must not be empty")
        pending = self.core.messages.submit(client.user_id, cid, body=payload.content, origin=client.socket)

        async def ack() -> dict:
            try:
                message = (await pending.wait())[0]
                author = self.render.user(self.core.accounts.find(client.user_id), client.user_id)
                return {"ok": True, "data": self.render.message(message, author)}
            except Exception as exc:
                return error_ack(exc)

        return Later(ack)

    async def delete_message(self, client: Client, payload: DeleteIn) -> dict:
        """event messageDeleted {channel, id}: the author deletes for everyone."""
        cid = parse_id(payload.channel, "channel")
        mid = parse_id(payload.id, "id")
        lookup.dm(self.core, client.user_id, cid)
        await self.core.messages.delete(client.user_id, cid, [mid], for_all=True, origin=client.socket)
        return deleted(cid, mid)

    # -- bus events ------------------------------------------------------------------------------

    def packets_for(self, socket: Socket, envelope: Envelope) -> list[EncodedPacket]:
        """The packets a socket gets for one bus event (filtered by its channels). Called by the
        Socket.IO gateway on the task writing to that client, when the envelope's turn comes."""
        client: Client | None = socket.state.get("client")
        if client is None:
            return []
        packets = self._packets_for(client, envelope)
        if packets:
            self.stats.frames_sent += len(packets)
        return packets

    def _packets_for(self, client: Client, envelope: Envelope) -> list[EncodedPacket]:
        event = envelope.event
        match event:
            case ev.MessageCreated(message=m):
                if m.cid in client.channels:
                    return envelope.rendered(RENDER_KEY, self._render)
            case ev.MessagesDeleted(cid=cid):
                if cid in client.channels:
                    return envelope.rendered(RENDER_KEY, self._render)
            case ev.ChannelCreated(channel=conv, actor_id=actor):
                if conv.kind == "dm":
                    # A new channel of this user: hear it from now on; tell only the other user.
                    client.channels.add(conv.id)
                    if actor != client.user_id:
                        return envelope.rendered(RENDER_KEY, self._render)
            case ev.SessionsRevoked(session_ids=ids, reason=reason):
                if client.session_id in ids:
                    client.unsubscribe("session ended")
                    client.socket.close_soon(reason or "session ended")
        return []

    def _render(self, event) -> list[EncodedPacket]:
        """A domain event as sockchat packets, the same for every recipient (encoded once)."""
        match event:
            case ev.MessageCreated(message=m):
                author = self.render.user(self.core.accounts.find(m.author_id), m.author_id)
                return [encode_event("message", self.render.message(m, author))]
            case ev.MessagesDeleted(cid=cid, ids=ids):
                return [encode_event("messageDeleted", deleted(cid, mid)) for mid in ids]
            case ev.ChannelCreated(channel=conv):
                return [encode_event("channelCreate", {"channel_id": str(conv.id)})]
        return []

