"""One core, two dialects: sock (sockchat, stock Socket.IO client) and sam (SAMA, raw WebSocket)
share a direct conversation, live both ways, with one history."""

import itertools
import json

import trio
from trio_websocket import open_websocket_url

from .client import Account, create_channel, new_user, sio_client

_ids = itertools.count(1)


class Sam:
    """A raw SAMA client: requests by id, every other packet kept for `wait_for`."""

    def __init__(self, ws):
        self.ws = ws
        self.events: list[dict] = []
        self.id: str | None = None

    async def send(self, packet: dict) -> None:
        await self.ws.send_message(json.dumps(packet))

    async def request(self, op: str, body: dict) -> dict:
        rid = str(next(_ids))
        await self.send({"request": {op: body, "id": rid}})
        while True:
            packet = json.loads(await self.ws.get_message())
            if packet.get("response", {}).get("id") == rid:
                assert "error" not in packet["response"], packet
                return packet["response"]
            self.events.append(packet)

    async def wait_for(self, key: str) -> dict:
        while True:
            for i, packet in enumerate(self.events):
                if key in packet:
                    return self.events.pop(i)[key]
            self.events.append(json.loads(await self.ws.get_message()))

    async def sign_up(self, login: str) -> None:
        user = (await self.request("user_create", {"login": login, "password": "pw"}))["user"]
        await self.request("user_login", {"login": login, "password": "pw", "device_id": "d1"})
        self.id = user["_id"]


async def test_sockchat_and_sama_share_a_direct_conversation(server, http):
    with trio.fail_after(15):
        sock = await new_user(http, "sock")
        async with open_websocket_url(server.ws_url + "/") as ws:
            sam = Sam(ws)
            await sam.sign_up("Sam")
            cid = await create_channel(http, sock, Account(sam.id, "", "Sam"))
            created = await sam.wait_for("system_message")
            conv = created["x"]["conversation_created"]
            assert conv["_id"] == cid and conv["type"] == "u" and conv["opponent_id"] == sock.id

            async with sio_client(server, sock, [cid]) as s:
                # sam (SAMA) → sock (sockchat)
                await sam.send({"message": {"id": "c1", "cid": cid, "body": "hello from sama"}})
                got = await s.wait_for("message")
                assert got["content"] == "hello from sama" and got["channel_id"] == cid
                assert got["author"] == {"avatarURL": "", "id": sam.id, "username": "Sam"}
                assert (await sam.wait_for("ack"))["mid"] == "c1"
                # sock (sockchat) → sam (SAMA)
                ack = await s.call("message", {"content": "hello from sockchat", "channel": cid})
                message = await sam.wait_for("message")
                assert message["_id"] == ack["data"]["id"] and message["from"] == sock.id
                assert message["body"] == "hello from sockchat" and message["cid"] == cid and "t" in message

                # one history, in order, in either dialect
                r = await http.get("/messages", params={"channel_id": cid}, headers=sock.auth)
                assert [(m["content"], m["author"]["id"]) for m in r.json()["messages"]] == [
                    ("hello from sama", sam.id), ("hello from sockchat", sock.id)]
                assert r.json()["channel"] == {"name": "Sam", "id": cid} and r.json()["other_user"] == sam.id
                listed = (await sam.request("message_list", {"cid": cid, "limit": 50}))["messages"]
                assert [m["body"] for m in listed] == ["hello from sockchat", "hello from sama"]  # SAMA: newest first

                # a delete in sockchat reaches SAMA
                ack = await s.call("messageDeleted", {"channel": cid, "id": ack["data"]["id"]})
                assert ack["ok"] is True
                deleted = await sam.wait_for("message_delete")
                assert deleted == {"cid": cid, "ids": [ack["data"]["id"]], "type": "all", "from": sock.id}

                # a delete in SAMA reaches sockchat
                await sam.request("message_delete", {"cid": cid, "ids": [got["id"]], "type": "all"})
                assert await s.wait_for("messageDeleted") == {"channel": cid, "id": got["id"]}


async def test_sama_user_opens_the_dm_and_logs_in_to_sockchat(server, http):
    with trio.fail_after(15):
        sock = await new_user(http, "sock")
        async with open_websocket_url(server.ws_url + "/") as ws, sio_client(server, sock) as s:
            sam = Sam(ws)
            await sam.sign_up("Sam")
            conv = (await sam.request("conversation_create", {"type": "u", "participants": [sock.id]}))["conversation"]
            assert await s.wait_for("channelCreate") == {"channel_id": conv["_id"]}
            await sam.send({"message": {"id": "c2", "cid": conv["_id"], "body": "found you"}})
            assert (await s.wait_for("message"))["content"] == "found you"
            # the same DM cannot be created again from sockchat
            r = await http.post("/create-channel", json={"to": sam.id, "type": 1}, headers=sock.auth)
            assert r.status_code == 409
        # the SAMA account logs in here with its id and login (case-insensitive), as documented, and
        # with its password: an account that has one always needs it, whichever dialect set it
        r = await http.post("/new", json={"accountID": sam.id, "username": "sam"})
        assert r.status_code == 401
        r = await http.post("/new", json={"accountID": sam.id, "username": "sam", "password": "pw"})
        assert r.status_code == 202 and r.json()["dms"] == [conv["_id"]]
