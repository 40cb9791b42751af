"""sockchat over Socket.IO with the stock python-socketio client: alice and bob in a DM."""

import pytest
import trio

from .client import create_channel, new_user, sio_client


async def pair(http):
    alice, bob = await new_user(http, "alice"), await new_user(http, "bob")
    return alice, bob, await create_channel(http, alice, bob)


@pytest.mark.parametrize("transports", [None, ["websocket"]], ids=["upgrade", "websocket"])
async def test_message_both_ways(server, http, transports):
    with trio.fail_after(15):
        alice, bob, cid = await pair(http)
        async with sio_client(server, alice, [cid], transports=transports) as a, \
                sio_client(server, bob, [cid], transports=transports) as b:
            ack = await a.call("message", {"content": "hello bob", "channel": cid})
            assert ack["ok"] is True
            sent = ack["data"]
            assert sent["content"] == "hello bob" and sent["channel_id"] == cid
            assert sent["author"] == {"avatarURL": "", "id": alice.id, "username": "alice"}
            got = await b.wait_for("message")
            assert got == sent
            await b.emit("message", {"content": "hi alice", "channel": cid})
            got = await a.wait_for("message")
            assert got["content"] == "hi alice" and got["author"]["id"] == bob.id
            # the sender's socket does not get its own message back (the ack carries it)
            await a.nothing()
            if transports is None:
                with trio.fail_after(3):
                    while a.transport != "websocket":
                        await trio.sleep(0.05)
                await b.emit("message", {"content": "after upgrade", "channel": cid})
                assert (await a.wait_for("message"))["content"] == "after upgrade"
        r = await http.get("/messages", params={"channel_id": cid}, headers=alice.auth)
        assert [m["content"] for m in r.json()["messages"]][:2] == ["hello bob", "hi alice"]


async def test_credentials_from_auth_payload_and_query(server, http):
    with trio.fail_after(10):
        alice, bob, cid = await pair(http)
        async with sio_client(server, alice, [cid], via="auth", transports=["websocket"]) as a, \
                sio_client(server, bob, [cid], via="query", transports=["websocket"]) as b:
            await a.emit("message", {"content": "via auth", "channel": cid})
            assert (await b.wait_for("message"))["content"] == "via auth"
            await b.emit("message", {"content": "via query", "channel": cid})
            assert (await a.wait_for("message"))["content"] == "via query"


async def test_message_deleted(server, http):
    with trio.fail_after(10):
        alice, bob, cid = await pair(http)
        async with sio_client(server, alice, [cid]) as a, sio_client(server, bob, [cid]) as b:
            mid = (await a.call("message", {"content": "oops", "channel": cid}))["data"]["id"]
            await b.wait_for("message")
            refused = await b.call("messageDeleted", {"channel": cid, "id": mid})
            assert refused["ok"] is False and refused["status"] == 403
            ack = await a.call("messageDeleted", {"channel": cid, "id": mid})
            assert ack == {"ok": True, "data": {"channel": cid, "id": mid}}
            assert await b.wait_for("messageDeleted") == {"channel": cid, "id": mid}
            await a.nothing()
        r = await http.get("/messages", params={"channel_id": cid}, headers=bob.auth)
        assert r.json()["messages"] == []


async def test_channel_create_reaches_the_other_user(server, http):
    with trio.fail_after(10):
        alice, bob = await new_user(http, "alice"), await new_user(http, "bob")
        async with sio_client(server, alice) as a, sio_client(server, bob) as b:
            cid = await create_channel(http, alice, bob)
            assert await b.wait_for("channelCreate") == {"channel_id": cid}
            # the new channel is heard without reconnecting
            await a.emit("message", {"content": "first", "channel": cid})
            assert (await b.wait_for("message"))["content"] == "first"
            await a.nothing()


async def test_no_valid_token_receives_nothing(server, http):
    with trio.fail_after(10):
        alice, bob, cid = await pair(http)
        async with sio_client(server, alice, [cid]) as a, \
                sio_client(server, None, [cid], token="not-a-token") as stranger, \
                sio_client(server, None, [cid]) as anonymous:
            await a.emit("message", {"content": "private", "channel": cid})
            ack = await stranger.call("message", {"content": "let me in", "channel": cid})
            assert ack["ok"] is False and ack["status"] == 401
            await stranger.nothing()
            await anonymous.nothing(0.1)


async def test_only_member_channels_are_heard(server, http):
    with trio.fail_after(10):
        alice, bob, cid = await pair(http)
        carol = await new_user(http, "carol")
        async with sio_client(server, carol, [cid]) as c, sio_client(server, bob, [cid]) as b:
            ack = await b.call("message", {"content": "not for carol", "channel": cid})
            assert ack["ok"] is True
            await c.nothing()
            ack = await c.call("message", {"content": "intrude", "channel": cid})
            assert ack["ok"] is False and ack["status"] == 404
            await b.nothing(0.1)


async def test_bad_events_are_not_emitted(server, http):
    with trio.fail_after(10):
        alice, bob, cid = await pair(http)
        async with sio_client(server, alice, [cid]) as a, sio_client(server, bob, [cid]) as b:
            for payload in ({"content": "no channel"}, {"content": 5, "channel": cid}, "text",
                            {"content": "", "channel": cid}, {"content": "x", "channel": "abc"}):
                ack = await a.call("message", payload)
                assert ack["ok"] is False and ack["status"] == 400, (payload, ack)
            ack = await a.call("messageDeleted", {"channel": cid})
            assert ack["ok"] is False and ack["status"] == 400
            ack = await a.call("typing", {"channel": cid})
            assert ack["ok"] is False and ack["status"] == 400
            ack = await a.call("message", {"content": "x" * 5000, "channel": cid})
            assert ack["ok"] is False and ack["status"] == 400
            await b.nothing()
