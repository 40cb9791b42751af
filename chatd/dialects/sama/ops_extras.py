"""Contacts, attachments, push, block list, last activity and the operations log."""

import msgspec

from ...core.errors import Invalid, NotFound
from ...core.ids import timestamp_ms
from . import wire
from .errors import BadFormat
from .fields import get, limit, obj, time_range
from .wire import parse_id, parse_ids

# -- contacts -------------------------------------------------------------------------------------


def render_contact(view) -> dict:
    c = view.contact

    def points(items, matches):
        out = []
        for p, match in zip(items, matches, strict=True):
            d = {"type": p.type, "value": p.value}
            if match is not None:
                d["matched_user_id"] = str(match)
            out.append(d)
        return out

    out = {"_id": str(c.id), "email": points(c.email, view.email_matches),
           "phone": points(c.phone, view.phone_matches),
           "created_at": wire.iso(c.created_at), "updated_at": wire.iso(c.updated_at)}
    for name in ("first_name", "last_name", "company"):
        if getattr(c, name) is not None:
            out[name] = getattr(c, name)
    return out


async def contact_add(s, body) -> dict:
    """request contact_add {first_name, last_name, company, email: [{type, value}], phone: [...]}"""
    views = await s.core.contacts.add(s.user_id, [obj(body)])
    return {"contact": render_contact(views[0])}


async def contacts(s, body) -> dict:
    """request contacts [...] (batch add, as the document shows it)"""
    if not isinstance(body, list):
        raise BadFormat("contacts must be a list")
    views = await s.core.contacts.add(s.user_id, [obj(c, "contact") for c in body])
    return {"contacts": [render_contact(v) for v in views]}


async def contact_batch_add(s, body) -> dict:
    """request contact_batch_add {contacts: [...]} (the vendor server's name for batch add)"""
    return await contacts(s, get(obj(body), "contacts", list, required=True))


async def contact_update(s, body) -> dict:
    """request contact_update {id, first_name, ...}"""
    body = obj(body)
    contact_id = parse_id(get(body, "id", str | int, required=True), "contact")
    view = await s.core.contacts.update(s.user_id, contact_id, body)
    return {"contact": render_contact(view)}


async def contact_list(s, body) -> dict:
    """request contact_list {updated_at, limit, ids (at most 10)}"""
    body = obj(body)
    updated = body.get("updated_at")
    after = None
    if isinstance(updated, dict):
        after, _ = time_range(body)
    elif isinstance(updated, int | float) and not isinstance(updated, bool):
        after = int(updated)
    ids = get(body, "ids", list)
    views = s.core.contacts.list_for(s.user_id, limit=limit(body), updated_after=after,
                                     ids=parse_ids(ids, "contact", limit=10) if ids is not None else None)
    return {"contacts": [render_contact(v) for v in views]}


async def contact_delete(s, body) -> dict:
    """request contact_delete {id}"""
    await s.core.contacts.delete(s.user_id, parse_id(get(obj(body), "id", str | int, required=True), "contact"))
    return {"success": True}


# -- attachments ----------------------------------------------------------------------------------


async def create_files(s, body) -> dict:
    """request create_files [{name, size, content_type}] → ids and signed upload URLs"""
    if not isinstance(body, list):
        raise BadFormat("create_files must be a list of files")
    files = await s.core.files.create(s.user_id, body)
    return {"files": [{"_id": str(f.id), "name": f.name, "size": f.size, "content_type": f.content_type,
                       "upload_url": s.core.files.url(f, "upload")} for f in files]}


async def get_file_urls(s, body) -> dict:
    """request get_file_urls {file_ids} → signed, expiring download URLs, in the order asked"""
    ids = parse_ids(get(obj(body), "file_ids", list, required=True), "file", limit=50)
    files = s.core.files.get_for(s.user_id, ids)
    return {"file_urls": [s.core.files.url(f, "download") for f in files]}


# -- push -----------------------------------------------------------------------------------------


def render_subscription(sub) -> dict:
    out = msgspec.to_builtins(sub)
    out["_id"] = str(out.pop("id"))
    out["user_id"] = str(sub.user_id)
    out["created_at"], out["updated_at"] = wire.iso(sub.created_at), wire.iso(sub.updated_at)
    return out


async def push_subscription_create(s, body) -> dict:
    """request push_subscription_create {platform, web_endpoint, web_key_auth, web_key_p256dh | device_token, device_udid}"""
    body = obj(body)
    sub = await s.core.push.subscribe(
        s.user_id, platform=body.get("platform"), device_udid=body.get("device_udid"),
        web_endpoint=get(body, "web_endpoint", str), web_key_auth=get(body, "web_key_auth", str),
        web_key_p256dh=get(body, "web_key_p256dh", str), device_token=get(body, "device_token", str))
    return {"subscription": render_subscription(sub)}


async def push_subscription_list(s, body) -> dict:
    """request push_subscription_list {user_id}: your own subscriptions"""
    body = obj(body)
    if body.get("user_id") is not None and parse_id(body["user_id"], "user") != s.user_id:
        raise NotFound("no subscriptions visible for that user")
    return {"subscriptions": [render_subscription(x) for x in s.core.push.subscriptions(s.user_id)]}


async def push_subscription_delete(s, body) -> dict:
    """request push_subscription_delete {device_udid}"""
    await s.core.push.unsubscribe(s.user_id, get(obj(body), "device_udid", str, required=True))
    return {"success": True}


async def push_event_create(s, body) -> dict:
    """request push_event_create {recipients_ids, message: {title, body}}"""
    body = obj(body)
    recipients = parse_ids(get(body, "recipients_ids", list, required=True), "user")
    event = await s.core.push.create_event(s.user_id, recipients, get(body, "message", dict, required=True))
    return {"event": {"_id": str(event.id), "user_id": str(event.user_id),
                      "recipients_ids": [str(r) for r in event.recipients_ids], "message": event.message,
                      "created_at": wire.iso(event.created_at), "updated_at": wire.iso(event.created_at)}}


# -- blocks ---------------------------------------------------------------------------------------


async def block_user(s, body) -> dict:
    """request block_user {ids}"""
    await s.core.relationships.block(s.user_id, parse_ids(get(obj(body), "ids", list, required=True), "user"))
    return {"success": True}


async def unblock_user(s, body) -> dict:
    """request unblock_user {ids}"""
    await s.core.relationships.unblock(s.user_id, parse_ids(get(obj(body), "ids", list, required=True), "user"))
    return {"success": True}


async def list_blocked_users(s, body) -> dict:
    """request list_blocked_users {}"""
    return {"users": [str(u) for u in s.core.relationships.blocked_by(s.user_id)]}


# -- last activity --------------------------------------------------------------------------------


def _activity(s, ids: list[int]) -> dict:
    out = {}
    for uid in ids:
        status = s.core.presence.status(s.user_id, uid)
        if status is not None:
            out[str(uid)] = status
    return out


async def user_last_activity(s, body) -> dict:
    """request user_last_activity {ids} (at most 10)"""
    ids = parse_ids(get(obj(body), "ids", list, required=True), "user", limit=10)
    return {"last_activity": _activity(s, ids)}


async def user_last_activity_subscribe(s, body) -> dict:
    """request user_last_activity_subscribe {id}: then live `last_activity` packets"""
    uid = parse_id(get(obj(body), "id", str | int, required=True), "user")
    s.core.accounts.get(uid)
    if uid not in s.watching:
        s.watching.add(uid)
        s.core.presence.watch(s.user_id, uid)
    return {"last_activity": _activity(s, [uid])}


async def user_last_activity_unsubscribe(s, body) -> dict:
    """request user_last_activity_unsubscribe {}: stop all live activity packets"""
    for uid in s.watching:
        s.core.presence.unwatch(s.user_id, uid)
    s.watching.clear()
    return {"success": True}


# -- operations log -------------------------------------------------------------------------------


async def op_log_list(s, body) -> dict:
    """request op_log_list {created_at: {gt | lt}} (exactly one)"""
    body = obj(body)
    gt, lt = time_range(body, "created_at")
    if (gt is None) == (lt is None):
        # The vendor's server answers 422 here (a missing or null bound is invalid, not malformed).
        raise Invalid("op_log_list needs created_at with exactly one of gt or lt", field="created_at")
    entries = s.core.oplog.entries(s.user_id, after_ms=gt, before_ms=lt, limit=limit(body, 100, 1000))
    logs = []
    for op_id, event in entries:
        packet = wire.event(event, s.user_id, s._users)
        if packet is not None:
            logs.append({"_id": str(op_id), "user_id": str(s.user_id), "packet": packet,
                         "created_at": wire.iso(timestamp_ms(op_id))})
    return {"logs": logs}


OPERATIONS = {f.__name__: f for f in (
    contact_add, contacts, contact_batch_add, contact_update, contact_list, contact_delete, create_files,
    get_file_urls, push_subscription_create, push_subscription_list, push_subscription_delete, push_event_create,
    block_user, unblock_user, list_blocked_users, user_last_activity, user_last_activity_subscribe,
    user_last_activity_unsubscribe, op_log_list,
)}
