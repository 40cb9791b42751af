"""Conversations and messages: conversation_*, get_participants_by_cids, message packets and
message_list/read/delete/edit, typing, system_message."""

import msgspec

from ...core.errors import Invalid
from ...core.models import Attachment
from ...core.permissions import SAMA_GROUP
from . import wire
from .errors import BadFormat, error_body
from .fields import get, limit, obj, time_range
from .wire import parse_id, parse_ids


def render_view(s, view) -> dict:
    out = wire.conversation(view.channel, view.participants, s.user_id)
    if view.last_message is not None:
        m = view.last_message
        out["last_message"] = {"_id": str(m.id), "body": m.body, "from": str(m.author_id), "t": m.created_at // 1000}
        if m.attachments:
            out["last_message"]["attachments"] = [msgspec.to_builtins(a) for a in m.attachments]
    out["unread_messages_count"] = view.unread
    return out


async def conversation_create(s, body) -> dict:
    """request conversation_create {type, name?, description?, participants}"""
    body = obj(body)
    kind = get(body, "type", str, required=True)
    participants = parse_ids(get(body, "participants", list, required=True), "user", limit=1000)
    if kind not in wire.KINDS:
        raise Invalid("type must be 'u' or 'g'", field="type")
    conv, members, _ = await s.core.channels.create(
        s.user_id, wire.KINDS[kind], participants, name=get(body, "name", str),
        description=get(body, "description", str), preset=SAMA_GROUP if kind == "g" else 0)
    view = s.core.views.list_for(s.user_id, ids=[conv.id])
    return {"conversation": render_view(s, view[0]) if view else wire.conversation(conv, members, s.user_id)}


async def conversation_update(s, body) -> dict:
    """request conversation_update {id, name?, description?, participants: {add, remove}}"""
    body = obj(body)
    cid = parse_id(get(body, "id", str | int, required=True), "conversation")
    participants = obj(get(body, "participants", dict, default={}), "participants")
    conv, members = await s.core.channels.update(
        s.user_id, cid, name=get(body, "name", str), description=get(body, "description", str),
        add=parse_ids(get(participants, "add", list, default=[]), "user", limit=1000),
        remove=parse_ids(get(participants, "remove", list, default=[]), "user", limit=1000),
    )
    return {"conversation": wire.conversation(conv, members, s.user_id)}


async def conversation_delete(s, body) -> dict:
    """request conversation_delete {id}: leave the conversation"""
    cid = parse_id(get(obj(body), "id", str | int, required=True), "conversation")
    await s.core.channels.leave(s.user_id, cid, owner_leaves="transfer")
    return {"success": True}


async def conversation_list(s, body) -> dict:
    """request conversation_list {limit, updated_at: {gt|lt}, ids?}"""
    body = obj(body)
    gt, lt = time_range(body)
    ids = get(body, "ids", list)
    views = s.core.views.list_for(
        s.user_id, limit=limit(body), updated_after=gt, updated_before=lt,
        ids=parse_ids(ids, "conversation", limit=100) if ids is not None else None)
    return {"conversations": [render_view(s, v) for v in views]}


async def conversation_search(s, body) -> dict:
    """request conversation_search {name, limit, updated_at: {gt}}"""
    body = obj(body)
    gt, _ = time_range(body)
    name = get(body, "name", str, required=True)
    views = s.core.views.list_for(s.user_id, limit=limit(body), updated_after=gt, name=name)
    return {"conversations": [{"_id": str(v.channel.id), "name": v.channel.name} for v in views]}


async def get_participants_by_cids(s, body) -> dict:
    """request get_participants_by_cids {cids}"""
    cids = parse_ids(get(obj(body), "cids", list, required=True), "conversation")
    users = s.core.accounts.get_many(s.core.channels.participants_of_many(s.user_id, cids))
    return {"users": [wire.user(u, viewer=s.user_id) for u in users]}


# -- messages -------------------------------------------------------------------------------------


def _attachments(items: list) -> tuple[Attachment, ...]:
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise BadFormat("each attachment must be an object")
        file_id = item.get("file_id")
        if not isinstance(file_id, str):
            raise BadFormat("attachment.file_id must be a file id from create_files")
        name = item.get("file_name", item.get("name"))
        out.append(Attachment(file_id=str(parse_id(file_id, "file")),
                              file_name=name if isinstance(name, str) else None))
    return tuple(out)


def submit_message(s, packet: dict, on_done) -> None:
    """packet message {id, cid, body, x?, attachments?}: validate and queue the write;
    `on_done(pending)` runs once it is durable (or failed)."""
    s.require_login()
    m = msgspec.convert(packet, wire.MessageIn)
    s.core.messages.submit(
        s.user_id, parse_id(m.cid, "conversation"), body=m.body, data=m.x,
        attachments=_attachments(m.attachments), client_id=m.id, origin=s.conn, on_done=on_done)


def ack_packet(mid, msg) -> dict:
    ack = {"mid": mid, "server_mid": str(msg.id), "t": msg.created_at // 1000}
    # The document calls it `ack`; the vendor's server and SDK call it `ask`. Send both.
    return {"ack": ack, "ask": ack}


def send_error_packet(mid, exc: BaseException) -> dict:
    return {"message": {"id": mid, "error": error_body(exc)}}


async def message_list(s, body) -> dict:
    """request message_list {cid, limit, updated_at: {gt|lt}}"""
    body = obj(body)
    cid = parse_id(get(body, "cid", str | int, required=True), "conversation")
    gt, lt = time_range(body)
    msgs = s.core.history.history(s.user_id, cid, limit=limit(body, 50, 100), after_ms=gt, before_ms=lt)
    flags = s.core.receipts.read_flags(cid, msgs)
    system_users = [m.data.get("user_id") for m in msgs if m.data and m.kind == "system"]
    users = s._users(system_users) if system_users else None
    return {"messages": [wire.message_json(m, users, "read" if read else "sent")
                         for m, read in zip(msgs, flags, strict=True)]}


async def message_read(s, body) -> dict:
    """request message_read {cid, ids?}: without ids, everything unread"""
    body = obj(body)
    cid = parse_id(get(body, "cid", str | int, required=True), "conversation")
    ids = get(body, "ids", list)
    await s.core.receipts.mark_read(s.user_id, cid, parse_ids(ids, "message") if ids is not None else None)
    return {"success": True}


async def message_delete(s, body) -> dict:
    """request message_delete {cid, ids, type: myself|all}"""
    body = obj(body)
    cid = parse_id(get(body, "cid", str | int, required=True), "conversation")
    kind = get(body, "type", str, required=True)
    if kind not in ("myself", "all"):
        raise BadFormat("type must be 'myself' or 'all'")
    ids = parse_ids(get(body, "ids", list, required=True), "message")
    await s.core.messages.delete(s.user_id, cid, ids, for_all=kind == "all", origin=s.conn)
    return {"success": True}


async def message_edit(s, body) -> dict:
    """request message_edit {id, body}"""
    body = obj(body)
    mid = parse_id(get(body, "id", str | int, required=True), "message")
    await s.core.messages.edit(s.user_id, mid, body=get(body, "body", str, required=True), origin=s.conn)
    return {"success": True}


def typing(s, packet: dict) -> None:
    """packet typing {cid, status?}: relayed to the other participants"""
    s.require_login()
    t = msgspec.convert(packet, wire.TypingIn)
    if t.status is not None and t.status not in ("start", "stop"):
        raise BadFormat("typing.status must be 'start' or 'stop'")
    s.core.signals.typing(s.user_id, parse_id(t.cid, "conversation"), t.status, origin=s.conn)


async def system_message(s, packet: dict) -> None:
    """packet system_message {id, uids | cid, x}: a transient signal, not stored in history"""
    s.require_login()
    m = msgspec.convert(packet, wire.SystemMessageIn)
    await s.core.signals.system_message(
        s.user_id, client_id=m.id, x=m.x, origin=s.conn,
        uids=parse_ids(m.uids, "user") if m.uids is not None else None,
        cid=parse_id(m.cid, "conversation") if m.cid is not None else None)


OPERATIONS = {f.__name__: f for f in (
    conversation_create, conversation_update, conversation_delete, conversation_list, conversation_search,
    get_participants_by_cids, message_list, message_read, message_delete, message_edit,
)}
