"""One SAMA WebSocket connection: parse frames, dispatch operations, render events.

Frames are `{request: {<op>: {...}, id}}` (answered `{response: {id, ...}}`),
or the bare packets `message`, `typing` and `system_message`. Errors are
`{response: {id, error: {status, message}}}`, and for a `message` packet
`{message: {id, error}}` in the order of its acks; a frame that is not JSON
gets a 400 with no id. Every refused frame whose id can be read gets its id,
the rate limit (429) and too-deep nesting (400) included. Nothing a client
sends can close another connection.
"""

import collections
import logging

import msgspec
import trio

from ... import wirejson
from ...core import events as ev
from ...core.errors import ChatdError, Unauthorized
from ...gateway.session import CLOSE_POLICY, Connection
from . import ops_account, ops_chat, ops_extras, wire
from .errors import BadFormat, WireStatus, error_body

log = logging.getLogger("chatd.sama")

_frame_decoder = msgspec.json.Decoder(wire.Frame)
_encode = msgspec.json.Encoder().encode
# Free-form values (a message's `x`) nest at most wirejson.MAX_DEPTH levels; a frame wraps them in at
# most three more (`{request: {<op>: {x: …}}}`).
FRAME_DEPTH = wirejson.MAX_DEPTH + 3

OPERATIONS = {**ops_account.OPERATIONS, **ops_chat.OPERATIONS, **ops_extras.OPERATIONS}
# Messages a connection may have in flight (submitted, not yet acknowledged). Pipelined sends
# share group commits; past this many, the connection's reader waits.
PIPELINE = 64
PUBLIC = {"user_create", "user_login", "connect", "ping"}
# The close reason (code 1008) when the socket's session ends, by SessionsRevoked.reason.
CLOSE_REASONS = {"expired": "token expired", "password changed": "password changed"}


def encode(packet: dict) -> bytes:
    """JSON as UTF-8 bytes: the gateway sends bytes as a text frame without re-encoding."""
    return _encode(packet)


class SamaSession:
    def __init__(self, conn: Connection, core, settings, remote: str | None = None):
        self.conn = conn
        self.core = core
        self.settings = settings
        # The client's address ("host:port" from the gateway), for the failed-login throttle.
        self.remote = remote.rpartition(":")[0] if remote and ":" in remote else remote
        self.user_id: int | None = None
        self.session_id: int | None = None
        self.device_id: str | None = None
        self.watching: set[int] = set()
        # Messages sent and not yet answered, oldest first: [mid, answer packet or None].
        # Created on the first message; idle connections stay small.
        self._unanswered: collections.deque | None = None
        self._room: trio.Event | None = None

    # -- sending --------------------------------------------------------------------------------

    def send(self, packet: dict) -> None:
        self.conn.send(encode(packet))

    def reply_error(self, request_id, exc: BaseException) -> None:
        response = {"error": error_body(exc)}
        if request_id is not None:
            response = {"id": request_id, **response}
        self.send({"response": response})

    def require_login(self) -> int:
        if self.user_id is None:
            raise Unauthorized("not logged in: send connect first")
        return self.user_id

    def bind(self, user_id: int, session_id: int | None, device_id: str | None) -> None:
        """Attach this connection to a logged-in user (after connect or user_login), if the core's
        session policy admits it (RateLimited: the connection cap; Forbidden: refused)."""
        self.core.sessions.admit(user_id, replacing=self.user_id == user_id)
        self.unbind()
        self.user_id, self.session_id, self.device_id = user_id, session_id, device_id
        self.conn.subscribe(user_id)

    def unbind(self) -> None:
        if self.user_id is not None:
            for uid in self.watching:
                self.core.presence.unwatch(self.user_id, uid)
        self.watching.clear()
        self.conn.unsubscribe()
        self.user_id = self.session_id = self.device_id = None

    # -- Handler protocol -----------------------------------------------------------------------

    async def on_message(self, data) -> None:
        request_id = None
        try:
            frame = self._decode(data)
            if frame.request is not None:
                request_id = frame.request.get("id")
            elif frame.message is not None:
                await self._submit_message(frame.message, data)
                return
            # Checked once the id is known, so that the refusal carries it.
            self._check_depth(frame, data)
            self.conn.check_rate()
            if frame.request is not None:
                await self._request(frame.request)
            elif frame.typing is not None:
                ops_chat.typing(self, frame.typing)
            elif frame.system_message is not None:
                await ops_chat.system_message(self, frame.system_message)
            else:
                raise BadFormat("expected request, message, typing or system_message")
        except (ChatdError, BadFormat, WireStatus, msgspec.ValidationError) as exc:
            self.reply_error(request_id, exc)
        except Exception as exc:
            log.exception("sama frame failed")
            self.reply_error(request_id, exc)

    @staticmethod
    def _decode(data) -> wire.Frame:
        """The frame in its typed shape, or 400. Its depth is checked later (`_check_depth`), once
        the request or message id has been read, so that the refusal carries it."""
        try:
            # No depth bound yet (msgspec itself gives up at ~1,000 levels; then no id can be read).
            return _frame_decoder.decode(data)
        except RecursionError:
            raise BadFormat("the frame is not JSON in the SAMA format: it nests too deep") from None
        except msgspec.DecodeError:
            raise BadFormat("the frame is not a JSON object in the SAMA format") from None

    @staticmethod
    def _check_depth(frame: wire.Frame, data) -> None:
        try:
            for packet in (frame.request, frame.message, frame.typing, frame.system_message):
                if packet is not None:
                    wirejson.check_depth(packet, FRAME_DEPTH - 1, data)
                    x = packet.get("x")
                    if isinstance(x, dict | list):
                        wirejson.check_depth(x, wirejson.MAX_DEPTH, data)
        except wirejson.JSONInputError as exc:
            raise BadFormat(str(exc)) from None

    async def _submit_message(self, packet: dict, data) -> None:
        """Queue a message's write without waiting for it, so a client's pipelined messages share
        group commits; answers (ack or error) still go out in the order the messages came."""
        if self._unanswered is None:
            self._unanswered = collections.deque()
        while len(self._unanswered) >= PIPELINE:
            self._room = trio.Event()
            await self._room.wait()
        entry = [packet.get("id"), None]
        self._unanswered.append(entry)

        def done(pending) -> None:
            if pending.error is None:
                entry[1] = ops_chat.ack_packet(entry[0], pending.result[0])
            else:
                entry[1] = ops_chat.send_error_packet(entry[0], pending.error)
            self._flush_answers()

        try:
            self._check_depth(wire.Frame(message=packet), data)
            self.conn.check_rate()
            ops_chat.submit_message(self, packet, done)
        except Exception as exc:
            entry[1] = ops_chat.send_error_packet(entry[0], exc)
            self._flush_answers()

    def _flush_answers(self) -> None:
        queue = self._unanswered
        while queue and queue[0][1] is not None:
            self.send(queue.popleft()[1])
        if self._room is not None and len(queue) < PIPELINE:
            self._room.set()

    async def _request(self, request: dict) -> None:
        request_id = request.get("id")
        if not isinstance(request_id, str | int) or isinstance(request_id, bool):
            raise BadFormat("request.id must be a string")
        names = [k for k in request if k != "id"]
        if len(names) != 1:
            raise BadFormat("a request names exactly one operation")
        name = names[0]
        op = OPERATIONS.get(name)
        if op is None:
            raise BadFormat(f"unknown operation {name!r}")
        if name not in PUBLIC:
            self.require_login()
        result = await op(self, request[name])
        self.send({"response": {"id": request_id, **result}})

    def render(self, envelope):
        event = envelope.event
        if isinstance(event, ev.SessionsRevoked):
            if self.session_id in event.session_ids:
                self.conn.close_soon(CLOSE_POLICY, CLOSE_REASONS.get(event.reason, "session ended"))
            return None
        if isinstance(event, ev.PresenceChanged):
            if event.user_id not in self.watching:
                return None
            return envelope.rendered("sama", lambda e: encode(
                {"last_activity": {str(e.user_id): "online" if e.online else 0}}))
        if isinstance(event, wire.SHARED):
            return envelope.rendered("sama", self._render_shared)
        packet = wire.event(event, self.user_id, self._users)
        return encode(packet) if packet is not None else None

    def _render_shared(self, event):
        packet = wire.event(event, self.user_id, self._users)
        return encode(packet) if packet is not None else None

    def _users(self, ids) -> dict:
        return {u.id: u for u in self.core.accounts.get_many([i for i in ids if i is not None])}

    async def on_close(self) -> None:
        self.unbind()
