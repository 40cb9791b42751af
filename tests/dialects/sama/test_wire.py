"""Wire rules: ids echoed, 400 for malformed frames and types, 404 for unknown ids, 401 before
login, and a frame over the size limit closing only its own connection."""

import trio
import trio_websocket

from .client import open_client, private_chat, two_users, user_with_devices


async def test_request_id_is_echoed(server, nursery):
    c = await open_client(nursery, server)
    await c.send({"request": {"ping": {}, "id": "421cda83-7f39-45a9-81e8-5f83cfa0733c"}})
    assert (await c.wait_for("response"))["response"]["id"] == "421cda83-7f39-45a9-81e8-5f83cfa0733c"
    await c.send({"request": {"ping": {}, "id": 7}})
    assert (await c.wait_for("response"))["response"]["id"] == 7


async def test_unknown_operation_keeps_the_connection(server, nursery):
    c = await open_client(nursery, server)
    response = await c.request("no_such_operation", {})
    assert response["error"]["status"] == 400 and response["error"]["message"]
    assert "pong" in await c.ok("ping")


async def test_not_json_gets_400_without_id(server, nursery):
    c = await open_client(nursery, server)
    for frame in ("{not json", "[1, 2]", '"a string"', "{}", '{"request": "x"}'):
        await c.send(frame)
        packet = await c.wait_for("response")
        assert "id" not in packet["response"], frame
        assert packet["response"]["error"]["status"] == 400, frame
    await c.send({"request": {"ping": {}}})  # no id
    assert (await c.wait_for("response"))["response"]["error"]["status"] == 400
    await c.send({"request": {"ping": {}, "user_search": {}, "id": "two"}})
    response = (await c.wait_for("response"))["response"]
    assert response["id"] == "two" and response["error"]["status"] == 400
    assert "pong" in await c.ok("ping")


async def test_operations_before_login_are_401(server, nursery):
    c = await open_client(nursery, server)
    for op, body in (("conversation_list", {}), ("message_list", {"cid": "1"}), ("user_search", {}),
                     ("user_logout", {}), ("op_log_list", {"created_at": {"gt": 0}}), ("create_files", [])):
        assert await c.error(op, body) == 401, op
    await c.send({"message": {"id": "m1", "cid": "1", "body": "x"}})
    packet = await c.wait_for(lambda p: p.get("message", {}).get("id") == "m1")
    assert packet["message"]["error"]["status"] == 401
    await c.send({"typing": {"cid": "1"}})
    assert (await c.wait_for("response"))["response"]["error"]["status"] == 401


async def test_wrong_types_are_400_and_unknown_ids_404(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    assert await a1.error("message_list", {"cid": [cid]}) == 400
    assert await a1.error("message_list", {"cid": cid, "limit": "5"}) == 400
    assert await a1.error("message_list", {"cid": cid, "limit": True}) == 400
    assert await a1.error("conversation_list", "not an object") == 400
    assert await a1.error("conversation_create", {"type": 5, "participants": [b1.user_id]}) == 400
    assert await a1.error("user_last_activity", {"ids": [{"x": 1}]}) == 400
    assert await a1.error("message_list", {"cid": "123"}) == 404
    assert await a1.error("message_list", {"cid": "not-an-id"}) == 404
    assert await a1.error("get_file_urls", {"file_ids": ["99999999999999999999999"]}) == 404
    assert await a1.error("message_edit", {"id": "1", "body": "x"}) == 404
    assert await a1.error("conversation_delete", {"id": "77"}) == 404
    assert await a1.error("get_participants_by_cids", {"cids": ["x"]}) == 404
    await a1.send({"typing": {"cid": ["x"]}})
    assert (await a1.wait_for("response"))["response"]["error"]["status"] == 400
    await a1.send({"system_message": {"id": "s", "uids": "everyone"}})
    assert (await a1.wait_for("response"))["response"]["error"]["status"] == 400
    assert "pong" in await a1.ok("ping")


async def test_huge_frame_closes_only_that_connection(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    limit = server.config.limits.max_ws_frame
    await a2.send({"message": {"id": "big", "cid": cid, "body": "x" * (limit + 10)}})
    with trio.fail_after(5):
        try:
            while True:
                await a2.ws.get_message()
        except trio_websocket.ConnectionClosed as closed:
            assert closed.reason.code == 1009
    # Everybody else, the same user's other device included, is fine.
    await a1.send_message(cid, "still alive")
    await b1.wait_for(lambda p: p.get("message", {}).get("body") == "still alive")
    await b2.wait_for(lambda p: p.get("message", {}).get("body") == "still alive")
    assert "pong" in await (await open_client(nursery, server)).ok("ping")


async def test_packets_to_a_conversation_of_others_are_404(server, nursery):
    """typing, system_message (cid) and message_read from a non-participant are refused with 404, as for an unknown conversation (a stranger learns nothing)."""
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    (z,) = await user_with_devices(server, nursery, "zed", ("d1",))
    await z.send({"typing": {"cid": cid}})
    assert (await z.wait_for("response"))["response"]["error"]["status"] == 404
    await z.send({"system_message": {"id": "s1", "cid": cid, "x": {"k": 1}}})
    assert (await z.wait_for("response"))["response"]["error"]["status"] == 404
    assert await z.error("message_read", {"cid": cid}) == 404
    assert await z.error("message_edit", {"id": (await a1.send_message(cid, "x"))["server_mid"], "body": "y"}) == 404
    await b1.expect_no(lambda p: "typing" in p or p.get("system_message", {}).get("_id") == "s1", within=0.2)
