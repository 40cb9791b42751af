"""Messages: send → ack → delivery (carbons, no echo), retries, system messages, message_list,
message_read, typing, message_delete, message_edit, and durability before the ack."""

import time

import trio

from .client import now_ms, open_client, private_chat, two_users


def _body(text):
    return lambda p: p.get("message", {}).get("body") == text


async def test_send_ack_delivery_and_carbons(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    for c in (a1, a2, b1, b2):
        c.drain()
    await a1.send({"message": {"id": "client-1", "cid": cid, "body": "hey how is going?", "x": {"k": "v"}}})
    packet = await a1.wait_for("ack")
    assert packet["ack"] == packet["ask"]
    ack = packet["ack"]
    assert ack["mid"] == "client-1" and ack["server_mid"]
    assert isinstance(ack["t"], int) and abs(ack["t"] - time.time()) < 5  # epoch seconds
    for c in (b1, b2, a2):
        msg = (await c.wait_for(_body("hey how is going?")))["message"]
        assert msg["_id"] == ack["server_mid"] and msg["from"] == a1.user_id and msg["cid"] == cid
        assert msg["t"] == ack["t"] and msg["x"] == {"k": "v"} and msg["created_at"].endswith("Z")
    await a1.expect_no(_body("hey how is going?"), within=0.3)


async def test_deprecated_user_login_device_gets_messages_and_carbons(server, nursery):
    """A device logged in with the deprecated user_login is a device like any other."""
    a1, a2, b1, b2 = await two_users(server, nursery)
    legacy = await open_client(nursery, server)
    await legacy.ok("user_login", {"login": "bob", "password": "secret-pw", "device_id": "legacy"})
    cid = await private_chat(a1, b1)
    await a1.send_message(cid, "to every device")
    for c in (b1, b2, legacy):
        await c.wait_for(_body("to every device"))
    await legacy.send_message(cid, "from legacy")
    for c in (a1, a2, b1, b2):
        await c.wait_for(_body("from legacy"))
    await legacy.expect_no(_body("from legacy"), within=0.1)


async def test_ack_means_durable(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    ack = await a1.send_message(cid, "durable")
    history = server.core.history.history(int(a1.user_id), int(cid))
    assert [m.id for m in history if m.body == "durable"] == [int(ack["server_mid"])]


async def test_retry_with_same_client_id_does_not_duplicate(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    first = await a1.send_message(cid, "once", mid="same-id")
    await b1.wait_for(_body("once"))
    second = await a1.send_message(cid, "once", mid="same-id")
    assert second["server_mid"] == first["server_mid"]
    await b1.expect_no(_body("once"), within=0.3)
    bodies = [m["body"] for m in (await b1.ok("message_list", {"cid": cid}))["messages"]]
    assert bodies.count("once") == 1


async def test_send_errors(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    assert await a1.send_message_error("99999999", "x") == 404
    assert await a1.send_message_error(cid, "") == 422  # no body, no attachments
    assert await a1.send_message_error(cid, "x" * 5000) == 422  # over max_message_length
    assert await a1.send_message_error([cid], "x") == 400
    await a1.send({"message": {"cid": cid, "body": "no id"}})
    packet = await a1.wait_for(lambda p: "message" in p and "error" in p["message"])
    assert packet["message"]["error"]["status"] == 400


async def test_system_message_by_uids_and_by_cid(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    await a1.send({"system_message": {"id": "sys-1", "uids": [b1.user_id], "x": {"param1": "value"}}})
    for c in (b1, b2):
        sm = (await c.wait_for(lambda p: p.get("system_message", {}).get("_id") == "sys-1"))["system_message"]
        assert sm["from"] == a1.user_id and sm["x"] == {"param1": "value"} and isinstance(sm["t"], int)
        assert "cid" not in sm
    await a1.send({"system_message": {"id": "sys-2", "cid": cid, "x": {"p": 2}}})
    for c in (b1, b2, a2):
        sm = (await c.wait_for(lambda p: p.get("system_message", {}).get("_id") == "sys-2"))["system_message"]
        assert sm["cid"] == cid and sm["x"] == {"p": 2}
    await a1.expect_no(lambda p: p.get("system_message", {}).get("_id") in ("sys-1", "sys-2"), within=0.2)
    # Not stored in history.
    assert all(m.get("x") != {"p": 2} for m in (await b1.ok("message_list", {"cid": cid}))["messages"])


async def test_message_list_filters_and_status(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    acks = [await a1.send_message(cid, f"m{i}") for i in range(3)]
    await trio.sleep(0.01)
    mark = now_ms()
    await trio.sleep(0.01)
    acks += [await a1.send_message(cid, f"m{i}") for i in range(3, 5)]
    msgs = (await b1.ok("message_list", {"cid": cid}))["messages"]
    assert sorted(m["body"] for m in msgs) == [f"m{i}" for i in range(5)]
    assert all(m["status"] == "sent" for m in msgs)
    assert len((await b1.ok("message_list", {"cid": cid, "limit": 2}))["messages"]) == 2
    after = (await b1.ok("message_list", {"cid": cid, "updated_at": {"gt": mark}}))["messages"]
    assert sorted(m["body"] for m in after) == ["m3", "m4"]
    before = (await b1.ok("message_list", {"cid": cid, "updated_at": {"lt": mark}}))["messages"]
    assert sorted(m["body"] for m in before) == ["m0", "m1", "m2"]
    await b1.ok("message_read", {"cid": cid, "ids": [acks[1]["server_mid"]]})
    status = {m["body"]: m["status"] for m in (await a1.ok("message_list", {"cid": cid}))["messages"]}
    assert status == {"m0": "read", "m1": "read", "m2": "sent", "m3": "sent", "m4": "sent"}
    assert await b1.error("message_list", {}) == 400
    assert await b1.error("message_list", {"cid": cid, "limit": "2"}) == 400
    assert await b1.error("message_list", {"cid": "8888888"}) == 404


async def test_message_read_events(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    m1 = (await a1.send_message(cid, "r1"))["server_mid"]
    m2 = (await a1.send_message(cid, "r2"))["server_mid"]
    m3 = (await a1.send_message(cid, "r3"))["server_mid"]
    await b1.ok("message_read", {"cid": cid, "ids": [m1]})
    for c in (a1, a2):
        ev = (await c.wait_for("message_read"))["message_read"]
        assert ev == {"cid": cid, "ids": [m1], "from": b1.user_id}
    await b1.ok("message_read", {"cid": cid})  # without ids: everything unread
    ev = (await a1.wait_for("message_read"))["message_read"]
    assert sorted(ev["ids"]) == sorted([m2, m3]) and ev["from"] == b1.user_id
    await b1.ok("message_read", {"cid": cid})  # nothing left: no event
    await a1.expect_no("message_read", within=0.2)
    assert await b1.error("message_read", {"cid": cid, "ids": "x"}) == 400
    assert await b1.error("message_read", {"ids": [m1]}) == 400


async def test_typing_is_relayed_to_others(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    await a1.send({"typing": {"cid": cid}})
    for c in (b1, b2):
        t = (await c.wait_for("typing"))["typing"]
        assert t["cid"] == cid and t["from"] == a1.user_id
    await a1.send({"typing": {"cid": cid, "status": "stop"}})
    assert (await b1.wait_for("typing"))["typing"]["status"] == "stop"
    await a1.expect_no("typing", within=0.2)


async def test_message_delete_myself_and_all(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    m1 = (await a1.send_message(cid, "d1"))["server_mid"]
    m2 = (await a1.send_message(cid, "d2"))["server_mid"]
    await b1.ok("message_delete", {"cid": cid, "ids": [m1], "type": "myself"})
    assert m1 not in {m["_id"] for m in (await b1.ok("message_list", {"cid": cid}))["messages"]}
    assert m1 in {m["_id"] for m in (await a1.ok("message_list", {"cid": cid}))["messages"]}
    await a1.expect_no("message_delete", within=0.1)

    assert await b1.error("message_delete", {"cid": cid, "ids": [m2], "type": "all"}) == 403
    assert await b1.error("message_delete", {"cid": cid, "ids": [m2], "type": "everyone"}) == 400
    assert await b1.error("message_delete", {"cid": cid, "ids": ["77777777"], "type": "myself"}) == 404
    await a1.ok("message_delete", {"cid": cid, "ids": [m2], "type": "all"})
    for c in (b1, b2, a2):
        ev = (await c.wait_for("message_delete"))["message_delete"]
        assert ev == {"cid": cid, "ids": [m2], "type": "all", "from": a1.user_id}
    await a1.expect_no("message_delete", within=0.1)
    for c in (a1, b1):
        assert m2 not in {m["_id"] for m in (await c.ok("message_list", {"cid": cid}))["messages"]}


async def test_message_edit(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    mid = (await a1.send_message(cid, "draft"))["server_mid"]
    assert await b1.error("message_edit", {"id": mid, "body": "hacked"}) == 403
    assert await a1.error("message_edit", {"id": "5555555", "body": "x"}) == 404
    assert await a1.error("message_edit", {"id": mid}) == 400
    await a1.ok("message_edit", {"id": mid, "body": "final"})
    for c in (b1, b2, a2):
        ev = (await c.wait_for("message_edit"))["message_edit"]
        assert ev["id"] == mid and ev["body"] == "final" and ev["from"] == a1.user_id
    await a1.expect_no("message_edit", within=0.1)
    msgs = (await b1.ok("message_list", {"cid": cid}))["messages"]
    assert [m["body"] for m in msgs if m["_id"] == mid] == ["final"]


async def test_message_hidden_for_myself_leaves_conversation_list(server, nursery):
    """A message the caller deleted for themself ("myself") is gone for them everywhere: not in
    message_list, not the conversation's last_message, not counted unread; the author still sees it."""
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    first = (await a1.send_message(cid, "first"))["server_mid"]
    hidden = (await a1.send_message(cid, "hide me"))["server_mid"]
    await b1.ok("message_delete", {"cid": cid, "ids": [hidden], "type": "myself"})
    (conv,) = (await b1.ok("conversation_list", {}))["conversations"]
    assert conv["last_message"]["_id"] == first and conv["last_message"]["body"] == "first"
    assert conv["unread_messages_count"] == 1
    (conv,) = (await a1.ok("conversation_list", {}))["conversations"]
    assert conv["last_message"]["_id"] == hidden


async def test_message_read_unknown_ids_are_404(server, nursery):
    """Unknown ids in message_read are refused whether or not anything is left unread."""
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    mid = (await a1.send_message(cid, "x"))["server_mid"]
    assert await b1.error("message_read", {"cid": cid, "ids": ["123"]}) == 404
    await b1.ok("message_read", {"cid": cid, "ids": [mid]})
    assert await b1.error("message_read", {"cid": cid, "ids": ["123"]}) == 404
    assert await b1.error("message_read", {"cid": cid, "ids": [mid, "123"]}) == 404
    await b1.ok("message_read", {"cid": cid, "ids": [mid]})  # already read: fine, no event
    await a1.wait_for("message_read")
    await a1.expect_no("message_read", within=0.2)


async def test_pipelined_sends_are_acked_in_order_and_share_commits(server, nursery):
    """A client may send without waiting for acks: the writes share group commits, every ack
    (and the error of a bad message in the middle) comes back in the order sent, and the
    partner receives every message."""
    a1, _, b1, _ = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    commits_before = server.core.store.stats.commits
    mids = [f"p{i}" for i in range(40)]
    for i, mid in enumerate(mids):
        body = "" if i == 20 else f"n{i}"  # an empty message is refused, in its place in the order
        await a1.send({"message": {"id": mid, "cid": cid, "body": body}})
    answered = []
    with trio.fail_after(10):
        while len(answered) < len(mids):
            packet = await a1.receive()
            if "ack" in packet:
                answered.append(packet["ack"]["mid"])
            elif "message" in packet and "error" in packet["message"]:
                answered.append(("error", packet["message"]["id"]))
    assert answered == [("error", m) if i == 20 else m for i, m in enumerate(mids)]
    assert server.core.store.stats.commits - commits_before < len(mids) - 1
    bodies = []
    with trio.fail_after(10):
        while len(bodies) < len(mids) - 1:
            packet = await b1.wait_for("message")
            bodies.append(packet["message"]["body"])
    assert bodies == [f"n{i}" for i in range(40) if i != 20]  # published in commit order
