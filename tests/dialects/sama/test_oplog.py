"""The operations log: what an offline user missed, read back with op_log_list on reconnect."""

import trio

from .client import device, now_ms, private_chat, two_users


async def test_offline_user_catches_up(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    kept = (await a1.send_message(cid, "seen live"))["server_mid"]
    await b1.wait_for("message")
    await trio.sleep(0.01)
    mark = now_ms()
    await b1.close()
    await b2.close()
    await trio.sleep(0.05)  # let the server notice both sockets closed
    missed = [(await a1.send_message(cid, f"missed {i}"))["server_mid"] for i in range(3)]
    await a1.ok("message_edit", {"id": missed[0], "body": "missed 0 (edited)"})
    await a1.ok("message_delete", {"cid": cid, "ids": [missed[2]], "type": "all"})
    group = (await a1.ok("conversation_create", {"type": "g", "name": "While away",
                                                 "participants": [b1.user_id]}))["conversation"]["_id"]

    b3 = await device(server, nursery, "bob", "d1")
    logs = (await b3.ok("op_log_list", {"created_at": {"gt": mark}}))["logs"]
    assert all(e["user_id"] == b3.user_id and e["_id"] for e in logs)
    packets = [e["packet"] for e in logs]
    messages = [p["message"] for p in packets if "message" in p]
    assert [m["_id"] for m in messages] == missed
    assert [m["body"] for m in messages] == ["missed 0", "missed 1", "missed 2"]
    edits = [p["message_edit"] for p in packets if "message_edit" in p]
    assert edits == [{"id": missed[0], "cid": cid, "body": "missed 0 (edited)", "from": a1.user_id,
                      "t": edits[0]["t"]}]
    deletes = [p["message_delete"] for p in packets if "message_delete" in p]
    assert deletes == [{"cid": cid, "ids": [missed[2]], "type": "all", "from": a1.user_id}]
    created = [p for p in packets if "conversation_created" in p.get("system_message", {}).get("x", {})]
    assert [p["system_message"]["cid"] for p in created] == [group]
    assert kept not in [m["_id"] for m in messages]  # delivered live, not logged
    # Oldest first, by _id.
    assert [int(e["_id"]) for e in logs] == sorted(int(e["_id"]) for e in logs)

    history = (await b3.ok("message_list", {"cid": cid}))["messages"]
    bodies = {m["_id"]: m["body"] for m in history}
    assert bodies == {kept: "seen live", missed[0]: "missed 0 (edited)", missed[1]: "missed 1"}

    # `lt`: the entries before a time, newest first.
    before = (await b3.ok("op_log_list", {"created_at": {"lt": now_ms() + 1000}}))["logs"]
    assert {e["_id"] for e in before} == {e["_id"] for e in logs}
    assert (await b3.ok("op_log_list", {"created_at": {"lt": mark}}))["logs"] == []


async def test_op_log_list_needs_exactly_one_bound(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    assert await a1.error("op_log_list", {"created_at": {"gt": 1, "lt": now_ms()}}) == 422
    assert await a1.error("op_log_list", {"created_at": {}}) == 422
    assert await a1.error("op_log_list", {}) == 422
    assert await a1.error("op_log_list", {"created_at": {"gt": None}}) == 422  # the vendor server's status
    assert await a1.error("op_log_list", {"created_at": {"gt": "yesterday"}}) == 400
    assert (await a1.ok("op_log_list", {"created_at": {"gt": 0}}))["logs"] == []


async def test_read_receipt_reaches_the_offline_author(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    mid = (await a1.send_message(cid, "read me"))["server_mid"]
    mark = now_ms() - 1
    await a1.close()
    await a2.close()
    await trio.sleep(0.05)
    await b1.ok("message_read", {"cid": cid})
    a3 = await device(server, nursery, "alice", "d3")
    logs = (await a3.ok("op_log_list", {"created_at": {"gt": mark}}))["logs"]
    reads = [e["packet"]["message_read"] for e in logs if "message_read" in e["packet"]]
    assert reads == [{"cid": cid, "ids": [mid], "from": b1.user_id}]
