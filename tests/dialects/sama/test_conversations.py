"""Conversations: create (u and g), update, delete (leave), list, participants, search;
the stored participant messages and the conversation_* system events."""

import trio

from .client import create_user, device, now_ms, private_chat, two_users, user_with_devices


def _created(p):
    return "conversation_created" in p.get("system_message", {}).get("x", {})


def _system_x(kind):
    return lambda p: kind in p.get("system_message", {}).get("x", {})


async def test_private_conversation_is_unique_per_pair(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    conv = (await a1.ok("conversation_create", {"type": "u", "participants": [b1.user_id]}))["conversation"]
    assert conv["type"] == "u" and conv["owner_id"] == a1.user_id
    assert conv["opponent_id"] == b1.user_id
    assert set(conv["participants"]) == {a1.user_id, b1.user_id}
    # Every online device of the participants hears about it.
    for c in (b1, b2, a2):
        event = (await c.wait_for(_created))["system_message"]
        assert event["x"]["conversation_created"]["_id"] == conv["_id"]
        assert event["cid"] == conv["_id"] and event["from"] == a1.user_id
    again = (await a1.ok("conversation_create", {"type": "u", "participants": [b1.user_id]}))["conversation"]
    assert again["_id"] == conv["_id"]
    other_side = (await b1.ok("conversation_create", {"type": "u", "participants": [a1.user_id]}))["conversation"]
    assert other_side["_id"] == conv["_id"] and other_side["opponent_id"] == a1.user_id
    assert await a1.error("conversation_create", {"type": "u", "participants": []}) == 422
    assert await a1.error("conversation_create", {"type": "x", "participants": [b1.user_id]}) == 422
    assert await a1.error("conversation_create", {"type": "u", "participants": ["98765"]}) == 404
    assert await a1.error("conversation_create", {"type": "u", "participants": b1.user_id}) == 400


async def test_group_create_update_and_participant_messages(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    (c1,) = await user_with_devices(server, nursery, "carol", ("d1",))
    conv = (await a1.ok("conversation_create", {"type": "g", "name": "Team", "description": "the team",
                                                "participants": [b1.user_id]}))["conversation"]
    cid = conv["_id"]
    assert conv["type"] == "g" and conv["name"] == "Team" and conv["description"] == "the team"
    assert set(conv["participants"]) == {a1.user_id, b1.user_id}
    await b2.wait_for(_created)
    await c1.expect_no(_created, within=0.1)

    updated = (await b1.ok("conversation_update", {"id": cid, "name": "Team 2", "description": "new",
                                                   "participants": {"add": [c1.user_id]}}))["conversation"]
    assert updated["name"] == "Team 2" and updated["description"] == "new"
    assert set(updated["participants"]) == {a1.user_id, b1.user_id, c1.user_id}
    # The added user learns about the conversation, and everybody gets the stored message.
    event = await c1.wait_for(_system_x("conversation_updated"))
    assert event["system_message"]["x"]["conversation_updated"]["_id"] == cid
    added = await a2.wait_for(lambda p: p.get("message", {}).get("x", {}).get("type") == "added_participant")
    assert added["message"]["x"]["user"]["_id"] == c1.user_id and added["message"]["cid"] == cid
    await c1.wait_for(lambda p: p.get("message", {}).get("x", {}).get("type") == "added_participant")
    # The notice is unread for the others, not for the one who added.
    unread = {c["_id"]: c["unread_messages_count"] for c in (await b1.ok("conversation_list", {}))["conversations"]}
    assert unread[cid] == 0
    unread = {c["_id"]: c["unread_messages_count"] for c in (await a1.ok("conversation_list", {}))["conversations"]}
    assert unread[cid] == 1

    # Only the owner removes.
    assert await b1.error("conversation_update", {"id": cid, "participants": {"remove": [c1.user_id]}}) == 403
    await a1.ok("conversation_update", {"id": cid, "participants": {"remove": [c1.user_id]}})
    kicked = (await c1.wait_for(_system_x("conversation_kicked")))["system_message"]
    assert kicked["x"]["conversation_kicked"]["_id"] == cid and kicked["from"] == a1.user_id
    await b2.wait_for(lambda p: p.get("message", {}).get("x", {}).get("type") == "removed_participant")

    history = (await b1.ok("message_list", {"cid": cid}))["messages"]
    kinds = [m["x"]["type"] for m in history if "x" in m]
    assert "added_participant" in kinds and "removed_participant" in kinds
    removed = next(m for m in history if m.get("x", {}).get("type") == "removed_participant")
    assert removed["x"]["user"]["_id"] == c1.user_id and removed["x"]["user"]["login"] == "carol"
    assert removed["body"] and removed["status"] in ("sent", "read")

    assert await a1.error("conversation_update", {"id": "123456789"}) == 404
    assert await c1.error("conversation_update", {"id": cid, "name": "hijack"}) == 404
    assert await a1.error("conversation_update", {"id": [cid]}) == 400
    u = await private_chat(a1, b1)
    assert await a1.error("conversation_update", {"id": u, "participants": {"add": [c1.user_id]}}) == 422


async def test_removed_participant_loses_the_group(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = (await a1.ok("conversation_create", {"type": "g", "name": "G",
                                               "participants": [b1.user_id]}))["conversation"]["_id"]
    await a1.send_message(cid, "before")
    await b1.wait_for("message")
    await a1.ok("conversation_update", {"id": cid, "participants": {"remove": [b1.user_id]}})
    await b1.wait_for(_system_x("conversation_kicked"))
    await b2.wait_for(_system_x("conversation_kicked"))
    b1.drain()
    b2.drain()
    await a1.send_message(cid, "after")
    await b1.expect_no(lambda p: p.get("message", {}).get("body") == "after", within=0.3)
    await b2.expect_no(lambda p: p.get("message", {}).get("body") == "after", within=0.05)
    assert await b1.error("message_list", {"cid": cid}) == 404
    assert await b1.send_message_error(cid, "let me in") == 404
    assert cid not in {c["_id"] for c in (await b1.ok("conversation_list", {}))["conversations"]}


async def test_leaving_a_group_stores_left_participants(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = (await a1.ok("conversation_create", {"type": "g", "name": "G",
                                               "participants": [b1.user_id]}))["conversation"]["_id"]
    assert (await b1.ok("conversation_delete", {"id": cid}))["success"] is True
    live = await a2.wait_for(lambda p: p.get("message", {}).get("x", {}).get("type") == "left_participants")
    assert live["message"]["x"]["user"]["_id"] == b1.user_id
    history = (await a1.ok("message_list", {"cid": cid}))["messages"]
    left = [m for m in history if m.get("x", {}).get("type") == "left_participants"]
    assert len(left) == 1 and left[0]["from"] == b1.user_id and "bob" in left[0]["body"]
    assert await b1.error("message_list", {"cid": cid}) == 404
    assert await b1.error("conversation_delete", {"id": cid}) == 404
    assert await b1.error("conversation_delete", {"id": "424242"}) == 404


async def test_conversation_list(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    await create_user(server, nursery, "carol")
    carol = await device(server, nursery, "carol", "d1")
    first = await private_chat(a1, b1)
    second = (await a1.ok("conversation_create", {"type": "g", "name": "G",
                                                  "participants": [b1.user_id, carol.user_id]}))["conversation"]["_id"]
    await a1.send_message(first, "one")
    await a1.send_message(first, "two")
    await trio.sleep(0.01)
    mark = now_ms()
    await trio.sleep(0.01)
    await carol.send_message(second, "latest")

    convs = (await b1.ok("conversation_list", {}))["conversations"]
    assert [c["_id"] for c in convs] == [second, first]  # most recently active first
    by_id = {c["_id"]: c for c in convs}
    assert by_id[first]["last_message"]["body"] == "two"
    assert by_id[first]["last_message"]["from"] == a1.user_id
    assert isinstance(by_id[first]["last_message"]["t"], int) and by_id[first]["last_message"]["t"] < 1e11
    assert by_id[first]["unread_messages_count"] == 2
    assert by_id[second]["unread_messages_count"] == 1
    assert by_id[first]["opponent_id"] == a1.user_id
    assert (await a1.ok("conversation_list", {}))["conversations"][1]["unread_messages_count"] == 0

    recent = (await b1.ok("conversation_list", {"updated_at": {"gt": mark}}))["conversations"]
    assert [c["_id"] for c in recent] == [second]
    assert len((await b1.ok("conversation_list", {"limit": 1}))["conversations"]) == 1
    await b1.ok("message_read", {"cid": first})
    by_id = {c["_id"]: c for c in (await b1.ok("conversation_list", {}))["conversations"]}
    assert by_id[first]["unread_messages_count"] == 0
    assert await b1.error("conversation_list", {"limit": "10"}) == 400
    assert await b1.error("conversation_list", {"updated_at": {"gt": "yesterday"}}) == 400


async def test_get_participants_by_cids(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    await create_user(server, nursery, "carol")
    carol = await device(server, nursery, "carol", "d1")
    g = (await a1.ok("conversation_create", {"type": "g", "name": "G",
                                             "participants": [b1.user_id, carol.user_id]}))["conversation"]["_id"]
    u = await private_chat(a1, b1)
    users = (await b1.ok("get_participants_by_cids", {"cids": [g, u]}))["users"]
    assert sorted(x["login"] for x in users) == ["alice", "bob", "carol"]
    # Conversations the caller is not in contribute nobody.
    users = (await carol.ok("get_participants_by_cids", {"cids": [u]}))["users"]
    assert users == []
    assert await b1.error("get_participants_by_cids", {"cids": g}) == 400


async def test_conversation_search(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    for name in ("conversationNameTest", "conversationNamePress", "Other"):
        await a1.ok("conversation_create", {"type": "g", "name": name, "participants": [b1.user_id]})
    found = (await b1.ok("conversation_search", {"name": "conversationName"}))["conversations"]
    assert sorted(c["name"] for c in found) == ["conversationNamePress", "conversationNameTest"]
    assert all(set(c) >= {"_id", "name"} for c in found)
    assert len((await b1.ok("conversation_search", {"name": "conversationname", "limit": 1}))["conversations"]) == 1
    assert (await b1.ok("conversation_search", {"name": "nothing-like-it"}))["conversations"] == []
    assert await b1.error("conversation_search", {}) == 400


async def test_concurrent_private_creates_give_one_conversation(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    ids = []

    async def create(client, other):
        response = await client.ok("conversation_create", {"type": "u", "participants": [other]})
        ids.append(response["conversation"]["_id"])

    async with trio.open_nursery() as n:
        n.start_soon(create, a1, b1.user_id)
        n.start_soon(create, b1, a1.user_id)
    assert len(ids) == 2 and ids[0] == ids[1]
    convs = (await a1.ok("conversation_list", {}))["conversations"]
    assert [c["_id"] for c in convs] == [ids[0]]


async def test_left_private_conversation_comes_back_with_a_message(server, nursery):
    """Leaving a private conversation hides it; the partner's next message brings it back."""
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    await b1.ok("conversation_delete", {"id": cid})
    assert await b1.error("message_list", {"cid": cid}) == 404
    assert cid not in {c["_id"] for c in (await b1.ok("conversation_list", {}))["conversations"]}
    await a1.send_message(cid, "come back")
    assert (await b1.wait_for("message"))["message"]["body"] == "come back"
    assert [m["body"] for m in (await b1.ok("message_list", {"cid": cid}))["messages"]] == ["come back"]
    again = (await b1.ok("conversation_create", {"type": "u", "participants": [a1.user_id]}))["conversation"]
    assert again["_id"] == cid


async def test_offline_kicked_user_finds_it_in_the_op_log(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = (await a1.ok("conversation_create", {"type": "g", "name": "G",
                                               "participants": [b1.user_id]}))["conversation"]["_id"]
    mark = now_ms()
    await b1.close()
    await b2.close()
    await trio.sleep(0.05)
    await a1.ok("conversation_update", {"id": cid, "participants": {"remove": [b1.user_id]}})
    b3 = await device(server, nursery, "bob", "d3")
    logs = (await b3.ok("op_log_list", {"created_at": {"gt": mark}}))["logs"]
    kicked = [e["packet"]["system_message"] for e in logs
              if "conversation_kicked" in e["packet"].get("system_message", {}).get("x", {})]
    assert [k["cid"] for k in kicked] == [cid]
    assert cid not in {c["_id"] for c in (await b3.ok("conversation_list", {}))["conversations"]}


async def test_owner_leaving_passes_the_group_on(server, nursery):
    """When the owner leaves, the longest-standing participant becomes owner (and may remove people);
    when the last participant leaves, the group is gone."""
    a1, a2, b1, b2 = await two_users(server, nursery)
    await create_user(server, nursery, "carol")
    carol = await device(server, nursery, "carol", "d1")
    cid = (await a1.ok("conversation_create", {"type": "g", "name": "G",
                                               "participants": [b1.user_id, carol.user_id]}))["conversation"]["_id"]
    await a1.ok("conversation_delete", {"id": cid})
    event = await b2.wait_for(_system_x("conversation_updated"))
    updated = event["system_message"]["x"]["conversation_updated"]
    assert updated["owner_id"] == b1.user_id and a1.user_id not in updated["participants"]
    await b1.ok("conversation_update", {"id": cid, "participants": {"remove": [carol.user_id]}})
    await carol.wait_for(_system_x("conversation_kicked"))
    await b1.ok("conversation_delete", {"id": cid})
    assert await b1.error("message_list", {"cid": cid}) == 404
    assert await a1.error("conversation_update", {"id": cid, "name": "back"}) == 404
