"""The SAMA wire format: typed request bodies (msgspec) and renderers for records and events.

Ids are snowflakes rendered as decimal strings; `t` is epoch seconds; other
times are ISO 8601 strings with milliseconds, as the protocol shows them.
"""

import time

import msgspec

from ...core import events as ev
from ...core.cache import ByteLRU
from ...core.errors import NotFound
from ...core.ids import MAX_ID
from ...core.models import Channel, Message, User
from .errors import BadFormat

Id = str | int


def parse_id(value, kind: str = "object") -> int:
    """A wire id → snowflake. Anything that cannot be one of our ids is simply not found."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadFormat(f"{kind} id must be a string")
    try:
        n = int(value)
    except ValueError:
        raise NotFound(f"{kind} not found") from None
    if not 0 < n <= MAX_ID:
        raise NotFound(f"{kind} not found")
    return n


def parse_ids(values, kind: str = "object", *, limit: int = 100) -> list[int]:
    if not isinstance(values, list):
        raise BadFormat("ids must be a list")
    if len(values) > limit:
        raise BadFormat(f"at most {limit} ids")
    return [parse_id(v, kind) for v in values]


_ISO_SECONDS: dict[int, str] = {}


def iso(ms: int) -> str:
    """ISO 8601 UTC with milliseconds. The part up to the second is cached: a page of messages
    shares a few seconds, and strftime per message was a fifth of a history request's cost."""
    seconds, millis = divmod(ms, 1000)
    prefix = _ISO_SECONDS.get(seconds)
    if prefix is None:
        if len(_ISO_SECONDS) >= 8192:
            _ISO_SECONDS.clear()
        prefix = _ISO_SECONDS[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds))
    return f"{prefix}{millis:03d}Z"


# -- incoming frames ----------------------------------------------------------------------------


class Frame(msgspec.Struct, forbid_unknown_fields=False):
    request: dict | None = None
    message: dict | None = None
    typing: dict | None = None
    system_message: dict | None = None


class Range(msgspec.Struct, forbid_unknown_fields=True):
    gt: int | None = None
    lt: int | None = None


class MessageIn(msgspec.Struct):
    id: str
    cid: Id
    body: str = ""
    x: dict | None = None
    attachments: list[dict] = []


class TypingIn(msgspec.Struct):
    cid: Id
    status: str | None = None


class SystemMessageIn(msgspec.Struct):
    id: str
    x: dict | None = None
    uids: list[Id] | None = None
    cid: Id | None = None


# -- rendering ------------------------------------------------------------------------------------


def user(u: User, *, viewer: int | None = None, recent_activity: int | None = None) -> dict:
    out = {"_id": str(u.id), "native_id": str(u.id), "login": u.login,
           "created_at": iso(u.created_at), "updated_at": iso(u.updated_at)}
    for name in ("first_name", "last_name", "avatar_url"):
        value = getattr(u, name)
        if value:
            out[name] = value
    if viewer == u.id:
        if u.email:
            out["email"] = u.email
        if u.phone:
            out["phone"] = u.phone
    if recent_activity is not None:
        out["recent_activity"] = recent_activity // 1000
    return out


# SAMA's conversation types and the core's channel kinds.
KINDS = {"u": "dm", "g": "group"}
TYPES = {"dm": "u", "group": "g"}


def conversation(c: Channel, participants, viewer: int) -> dict:
    out = {"_id": str(c.id), "type": TYPES.get(c.kind, "g"), "owner_id": str(c.owner_id),
           "created_at": iso(c.created_at), "updated_at": iso(c.updated_at)}
    if c.name is not None:
        out["name"] = c.name
    if c.description is not None:
        out["description"] = c.description
    if c.kind == "dm" and c.pair:
        out["opponent_id"] = str(c.pair[0] if c.pair[1] == viewer else c.pair[1])
    out["participants"] = [str(p) for p in participants]
    return out


def message(m: Message, users: dict[int, User] | None = None, status: str | None = None) -> dict:
    out = {"_id": str(m.id), "t": m.created_at // 1000, "from": str(m.author_id), "body": m.body,
           "cid": str(m.cid), "created_at": iso(m.created_at)}
    if m.updated_at != m.created_at:
        out["updated_at"] = iso(m.updated_at)
    if m.data is not None:
        out["x"] = system_x(m.data, users) if m.system else m.data
    if m.attachments:
        out["attachments"] = [msgspec.to_builtins(a) for a in m.attachments]
    if status is not None:
        out["status"] = status
    return out


# Rendered messages, bounded in bytes: this dialect's share of `limits.history_cache_mb`
# (set at mount; the core's history caches take the rest).
RENDERED_SHARE = 0.3
_RENDERED = ByteLRU(int(64 * RENDERED_SHARE) << 20)
_encode = msgspec.json.Encoder().encode


def set_cache_budget(history_cache_mb: int) -> None:
    _RENDERED.max_bytes = int((history_cache_mb << 20) * RENDERED_SHARE)
    _RENDERED.clear()


def message_json(m: Message, users: dict[int, User] | None, status: str):
    """`message(...)`, pre-encoded and cached: a history page is mostly the same messages again.
    System messages show users, who may change, so they are rendered each time."""
    if m.kind == "system":
        return message(m, users, status)
    key = (m.id, m.updated_at, status)
    raw = _RENDERED.get(key)
    if raw is None:
        encoded = _encode(message(m, None, status))
        raw = msgspec.Raw(encoded)
        _RENDERED.put(key, raw, 2 * len(encoded))
    return raw


def system_x(x: dict, users: dict[int, User] | None) -> dict:
    """Stored participant messages keep a user id; the wire shows the user."""
    uid = x.get("user_id")
    out = {"type": x.get("type")}
    u = (users or {}).get(uid)
    out["user"] = user(u) if u is not None else {"_id": str(uid)}
    return out


def conversation_event(kind: str, e, viewer: int) -> dict:
    c = e.channel
    return {"system_message": {
        "_id": str(c.id), "t": c.updated_at // 1000, "cid": str(c.id), "from": str(e.actor_id),
        "x": {kind: conversation(c, e.participants, viewer)},
    }}


def event(e: ev.Event, viewer: int, lookup_users) -> dict | None:
    """A domain event as the packet a SAMA client receives, or None if it has no SAMA form."""
    match e:
        case ev.MessageCreated(message=m):
            users = lookup_users([m.data.get("user_id")]) if m.system and m.data else None
            return {"message": message(m, users)}
        case ev.MessageEdited(message=m, editor_id=editor):
            return {"message_edit": {"id": str(m.id), "cid": str(m.cid), "body": m.body, "from": str(editor),
                                     "t": m.updated_at // 1000}}
        case ev.MessagesDeleted(cid=cid, ids=ids, actor_id=actor):
            return {"message_delete": {"cid": str(cid), "ids": [str(i) for i in ids], "type": "all",
                                       "from": str(actor)}}
        case ev.MessagesRead(cid=cid, ids=ids, reader_id=reader):
            return {"message_read": {"cid": str(cid), "ids": [str(i) for i in ids], "from": str(reader)}}
        case ev.Typing(cid=cid, user_id=uid, status=status):
            out = {"cid": str(cid), "from": str(uid), "t": int(time.time())}
            if status:
                out["status"] = status
            return {"typing": out}
        case ev.ChannelCreated():
            return conversation_event("conversation_created", e, viewer)
        case ev.ChannelUpdated():
            return conversation_event("conversation_updated", e, viewer)
        case ev.ChannelKicked():
            return conversation_event("conversation_kicked", e, viewer)
        case ev.SystemMessage(id=sid, from_id=frm, created_at=at, cid=cid, x=x):
            out = {"_id": sid, "t": at // 1000, "from": str(frm), "x": x or {}}
            if cid is not None:
                out["cid"] = str(cid)
            return {"system_message": out}
        case ev.UserUpdated(user=u):
            return {"user_update": user(u, viewer=viewer)} if u.id != viewer else None
    return None


# Events whose SAMA packet is the same for every recipient, so it is encoded once.
SHARED = (ev.MessageCreated, ev.MessageEdited, ev.MessagesDeleted, ev.MessagesRead, ev.Typing, ev.SystemMessage)
