"""Found by probing chatd as an attacker would: bounded unread counts, malformed input answered in
SAMA's shape (never a 500), push events only to people the sender may reach, and the same answer
for another's id as for an unknown one."""

import pytest

from chatd.core.views import UNREAD_CAP

from .client import login_http, open_client, private_chat, two_users, user_with_devices

YEAR_2200_MS = 7_258_118_400_000


@pytest.mark.deadline(40)
async def test_unread_count_is_bounded_by_a_cap(server, nursery):
    """What another user writes sets the length of the count: it stops at UNREAD_CAP."""
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    for i in range(UNREAD_CAP + 20):
        await server.core.messages.send(int(a1.user_id), int(cid), body=f"m{i}")
    (view,) = (await b1.ok("conversation_list"))["conversations"]
    assert view["unread_messages_count"] == UNREAD_CAP
    assert view["last_message"]["body"] == f"m{UNREAD_CAP + 19}"
    await b1.ok("message_read", {"cid": cid})
    await server.core.messages.send(int(a1.user_id), int(cid), body="one more")
    (view,) = (await b1.ok("conversation_list"))["conversations"]
    assert view["unread_messages_count"] == 1


async def test_times_past_the_id_range_are_answered(server, nursery):
    """A filter past year 2163 used to raise struct.error packing a key (500)."""
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    await a1.send_message(cid, "hello")
    for bound in ("gt", "lt"):
        for t in (YEAR_2200_MS, 10**30, -5):
            range_ = {bound: t}
            listed = (await a1.ok("message_list", {"cid": cid, "updated_at": range_}))["messages"]
            assert len(listed) == (1 if (bound == "lt") == (t > 0) else 0), (bound, t)
            await a1.ok("conversation_list", {"updated_at": range_})
            await a1.ok("op_log_list", {"created_at": range_})
            await a1.ok("user_search", {"keyword": "b", "updated_at": range_})


async def test_values_too_long_for_a_storage_key_are_refused(server, nursery, http):
    """Characters count, but so do their bytes: 4-byte characters used to pass validation and
    overflow LMDB's 511-byte keys (the HTTP /login then served an HTML 500 page)."""
    wide = "\U0001d54f"  # 4 bytes in UTF-8
    (a1,) = await user_with_devices(server, nursery, "alice", ("d1",))
    status = await _user_create_status(server, nursery, {"login": "bob", "password": "pw",
                                                         "email": wide * 120 + "@example.com"})
    assert status == 422
    r = await login_http(server, "alice", device_id=wide * 128)
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"
    for login in (wide * 200, "x" * 5000):
        r = await http.post("/login", json={"login": login, "password": "pw", "device_id": "d1"})
        assert r.status_code in (401, 422) and r.headers["content-type"] == "application/json", login[:8]
    assert await a1.error("push_subscription_create", {"platform": "ios", "device_token": "t",
                                                       "device_udid": wide * 255}) == 422
    assert await a1.error("push_subscription_delete", {"device_udid": wide * 255}) == 422
    # an all-whitespace contact email used to become an empty key
    assert await a1.error("contact_add", {"first_name": "x", "email": [{"type": "home", "value": "   "}]}) == 422
    await a1.ok("contact_add", {"first_name": "x", "email": [{"type": "home", "value": " bob@example.com "}]})
    (contact,) = (await a1.ok("contact_list"))["contacts"]
    assert contact["email"] == [{"type": "home", "value": "bob@example.com"}]


async def _user_create_status(server, nursery, body) -> int:
    client = await open_client(nursery, server)
    try:
        return await client.error("user_create", body)
    finally:
        await client.close()


async def test_push_events_reach_only_people_the_sender_may_reach(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    (c1,) = await user_with_devices(server, nursery, "carol", ("d1",))
    (s1,) = await user_with_devices(server, nursery, "stranger", ("d1",))
    await private_chat(a1, b1)
    await private_chat(a1, c1)
    for client in (b1, c1, s1):
        await client.ok("push_subscription_create", {"platform": "android", "device_token": "t",
                                                     "device_udid": "phone"})
    await c1.ok("block_user", {"ids": [a1.user_id]})
    message = {"title": "Free money", "body": "click here"}
    await a1.ok("push_event_create", {"recipients_ids": [b1.user_id, c1.user_id, s1.user_id], "message": message})
    assert [q.payload for q in server.core.push.queued(int(b1.user_id))] == [message]
    assert server.core.push.queued(int(c1.user_id)) == []  # blocked the sender
    assert server.core.push.queued(int(s1.user_id)) == []  # shares no conversation with the sender


async def test_another_users_ids_are_answered_as_unknown_ones(server, nursery, http):
    """A stranger gets the same status for a conversation, message or file id that exists but is not
    theirs as for one that does not exist, so ids cannot be probed."""
    a1, a2, b1, b2 = await two_users(server, nursery)
    (z,) = await user_with_devices(server, nursery, "zed", ("d1",))
    cid = await private_chat(a1, b1)
    mid = (await a1.send_message(cid, "private"))["server_mid"]
    files = (await a1.ok("create_files", [{"name": "a.png", "size": 4, "content_type": "image/png"}]))["files"]
    unknown = "4611686018427387904"  # a well-formed id that no object has
    requests = [
        ("message_list", lambda i: {"cid": i}),
        ("message_read", lambda i: {"cid": i}),
        ("conversation_update", lambda i: {"id": i, "name": "mine"}),
        ("conversation_delete", lambda i: {"id": i}),
        ("conversation_list", lambda i: {"ids": [i]}),
    ]
    for op, body in requests:
        foreign = await z.request(op, body(cid))
        missing = await z.request(op, body(unknown))
        assert foreign.get("error") == missing.get("error"), (op, foreign, missing)
        assert foreign.get("conversations", []) == missing.get("conversations", [])
    assert await z.error("message_edit", {"id": mid, "body": "x"}) == await z.error(
        "message_edit", {"id": unknown, "body": "x"}) == 404
    assert await z.error("get_file_urls", {"file_ids": [files[0]["_id"]]}) == await z.error(
        "get_file_urls", {"file_ids": [unknown]}) == 404
    assert await z.send_message_error(cid, "hi") == await z.send_message_error(unknown, "hi") == 404
    assert await z.send_message_error(cid, "hi", attachments=[{"file_id": files[0]["_id"]}]) == 404
    other = await private_chat(z, a1)
    assert await z.send_message_error(other, "hi", attachments=[{"file_id": files[0]["_id"]}]) == \
        await z.send_message_error(other, "hi", attachments=[{"file_id": unknown}]) == 422

