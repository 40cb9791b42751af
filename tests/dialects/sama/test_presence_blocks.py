"""Last activity (user_last_activity, user_last_activity_subscribe) and the block list."""

from .client import create_user, device, private_chat, two_users


def _activity_of(uid):
    return lambda p: uid in p.get("last_activity", {})


async def test_user_last_activity(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    await create_user(server, nursery, "offline")
    probe = await device(server, nursery, "offline", "d1")
    off_id = probe.user_id
    await probe.close()
    activity = (await a1.ok("user_last_activity", {"ids": [b1.user_id, off_id]}))["last_activity"]
    assert activity[b1.user_id] == "online"
    assert isinstance(activity[off_id], int) and 0 <= activity[off_id] < 60
    ten = (await a1.ok("user_last_activity", {"ids": [b1.user_id] * 9 + [off_id]}))["last_activity"]
    assert set(ten) == {b1.user_id, off_id}
    assert await a1.error("user_last_activity", {"ids": [b1.user_id] * 11}) == 400
    assert await a1.error("user_last_activity", {"ids": b1.user_id}) == 400
    assert await a1.error("user_last_activity", {}) == 400


async def test_last_activity_subscription_live_updates(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    response = await a1.ok("user_last_activity_subscribe", {"id": b1.user_id})
    assert response["last_activity"] == {b1.user_id: "online"}
    await b1.close()
    await a1.expect_no(_activity_of(b1.user_id), within=0.3)  # b2 is still connected
    await b2.close()
    update = await a1.wait_for(_activity_of(b1.user_id))
    assert isinstance(update["last_activity"][b1.user_id], int)
    await a2.expect_no(_activity_of(b1.user_id), within=0.1)  # a2 did not subscribe
    b3 = await device(server, nursery, "bob", "d3")
    assert (await a1.wait_for(_activity_of(b1.user_id)))["last_activity"][b1.user_id] == "online"
    await a1.ok("user_last_activity_unsubscribe", {})
    await b3.close()
    await a1.expect_no(_activity_of(b1.user_id), within=0.3)
    assert await a1.error("user_last_activity_subscribe", {"id": "31337"}) == 404
    assert await a1.error("user_last_activity_subscribe", {}) == 400


async def test_block_unblock_list(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    await b1.send_message(cid, "before the block")
    assert (await a1.ok("block_user", {"ids": [b1.user_id]}))["success"] is True
    assert (await a1.ok("list_blocked_users", {}))["users"] == [b1.user_id]
    assert await b1.send_message_error(cid, "blocked") == 403
    await a1.send_message(cid, "the blocker can still write")
    assert await a1.error("block_user", {"ids": [a1.user_id]}) == 422
    assert await a1.error("block_user", {"ids": ["123456"]}) == 404
    assert await a1.error("block_user", {"ids": b1.user_id}) == 400
    await a1.ok("unblock_user", {"ids": [b1.user_id]})
    assert (await a1.ok("list_blocked_users", {}))["users"] == []
    await b1.send_message(cid, "after the unblock")


async def test_blocked_user_cannot_add_the_blocker_to_groups(server, nursery):
    """A blocked user's group silently leaves the blocker out (create and update alike)."""
    a1, a2, b1, b2 = await two_users(server, nursery)
    await create_user(server, nursery, "carol")
    carol = await device(server, nursery, "carol", "d1")
    await a1.ok("block_user", {"ids": [b1.user_id]})
    conv = (await b1.ok("conversation_create", {"type": "g", "name": "G",
                                                "participants": [a1.user_id, carol.user_id]}))["conversation"]
    assert a1.user_id not in conv["participants"]
    conv = (await b1.ok("conversation_update", {"id": conv["_id"], "participants": {"add": [a1.user_id]}}))
    assert a1.user_id not in conv["conversation"]["participants"]
    assert await a1.error("message_list", {"cid": conv["conversation"]["_id"]}) == 404


async def test_blocked_user_does_not_see_the_blockers_activity(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    await a1.ok("block_user", {"ids": [b1.user_id]})
    activity = (await b1.ok("user_last_activity", {"ids": [a1.user_id]}))["last_activity"]
    assert a1.user_id not in activity
    sub = await b1.ok("user_last_activity_subscribe", {"id": a1.user_id})
    assert a1.user_id not in sub["last_activity"]
    # Nor in user objects (get_users_by_ids, user_search carry recent_activity).
    users = (await b1.ok("get_users_by_ids", {"ids": [a1.user_id]}))["users"]
    assert users[0]["_id"] == a1.user_id and "recent_activity" not in users[0]
    users = (await b1.ok("user_search", {"keyword": "alice"}))["users"]
    assert [u["_id"] for u in users] == [a1.user_id] and "recent_activity" not in users[0]
    assert "recent_activity" in (await b1.ok("get_users_by_ids", {"ids": [b2.user_id]}))["users"][0]
    assert "recent_activity" in (await a1.ok("get_users_by_ids", {"ids": [b1.user_id]}))["users"][0]
    # The blocker still sees the blocked user.
    assert (await a1.ok("user_last_activity", {"ids": [b1.user_id]}))["last_activity"][b1.user_id] == "online"
    await a1.close()
    await a2.close()
    await b1.expect_no(_activity_of(a1.user_id), within=0.3)


async def test_last_activity_of_unknown_or_deleted_users_is_omitted(server, nursery):
    """Ids that are no (longer a) user get no made-up activity: they are left out of `last_activity`,
    as get_users_by_ids leaves them out of `users`."""
    a1, a2, b1, b2 = await two_users(server, nursery)
    await create_user(server, nursery, "gone")
    gone = await device(server, nursery, "gone", "d1")
    gone_id = gone.user_id
    await gone.ok("user_delete")
    activity = (await a1.ok("user_last_activity", {"ids": ["12345", gone_id, b1.user_id]}))["last_activity"]
    assert activity == {b1.user_id: "online"}


async def test_blocked_user_typing_does_not_reach_the_blocker(server, nursery):
    """In the private conversation a blocked user can neither message nor show typing to the blocker;
    the blocker's typing still reaches the blocked user."""
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    await a1.ok("block_user", {"ids": [b1.user_id]})
    await b1.send({"typing": {"cid": cid}})
    await a1.expect_no("typing", within=0.3)
    await a2.expect_no("typing", within=0.05)
    await a1.send({"typing": {"cid": cid}})
    assert (await b1.wait_for("typing"))["typing"]["from"] == a1.user_id
    await a1.ok("unblock_user", {"ids": [b1.user_id]})
    await b1.send({"typing": {"cid": cid}})
    assert (await a1.wait_for("typing"))["typing"]["from"] == b1.user_id
