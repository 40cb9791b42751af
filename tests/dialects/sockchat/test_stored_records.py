"""A stored message that cannot be decoded (nested past cbor2's 400 levels, as chatd before the
input bound acknowledged) breaks no read of either dialect, and its author can still delete it.
Deeply nested input is refused at every edge, with nothing stored."""

import pytest

from chatd.core import messages as messages_module
from chatd.core.errors import Invalid
from tests.dialects.sama.client import connect, now_ms


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def _users(core, nursery, server):
    """alice and bob (sockchat-compatible logins), their DM, and a SAMA socket for alice."""
    alice = await core.accounts.create("alice")
    bob = await core.accounts.create("bob")
    conv, _, _ = await core.channels.create(alice.id, "dm", [bob.id])
    a_token = (await core.sessions.create(alice.id, "d1")).access_token
    b_token = (await core.sessions.create(bob.id, "d1")).access_token
    a = await connect(server, nursery, a_token, "d1", "alice")
    return alice, bob, str(conv.id), a, a_token, b_token


async def test_an_undecodable_stored_message_breaks_no_read(server, nursery, http, monkeypatch):
    core = server.core
    alice, bob, cid, a, a_token, b_token = await _users(core, nursery, server)
    before = await a.send_message(cid, "readable before")
    # What chatd did before free-form values were bounded: acknowledge and store it (bob is
    # offline, so it lands in his op log too).
    monkeypatch.setattr(messages_module, "check_data", lambda data: data)
    stored, _ = await core.messages.send(alice.id, int(cid), body="too deep", data=nested(401))
    monkeypatch.undo()
    bad = {"server_mid": str(stored.id)}
    after = await a.send_message(cid, "readable after")

    b = await connect(server, nursery, b_token, "d1", "bob")
    for client in (a, b):
        views = (await client.ok("conversation_list"))["conversations"]
        assert [v["_id"] for v in views] == [cid]
        listed = [m["_id"] for m in (await client.ok("message_list", {"cid": cid}))["messages"]]
        assert listed == [after["server_mid"], before["server_mid"]]
        assert bad["server_mid"] not in listed
    await b.ok("message_read", {"cid": cid})
    logs = (await b.ok("op_log_list", {"created_at": {"gt": now_ms() - 60_000}}))["logs"]
    bodies = [entry["packet"]["message"]["body"] for entry in logs if "message" in entry["packet"]]
    assert bodies == ["readable before", "readable after"]

    r = await http.get("/messages", params={"channel_id": cid}, headers={"Authorisation": b_token})
    assert r.status_code == 200
    assert [m["content"] for m in r.json()["messages"]] == ["readable before", "readable after"]

    # the author can still delete it for everyone; nobody else can
    assert await b.error("message_delete", {"cid": cid, "ids": [bad["server_mid"]], "type": "all"}) == 403
    await a.ok("message_delete", {"cid": cid, "ids": [bad["server_mid"]], "type": "all"})
    assert await a.error("message_delete", {"cid": cid, "ids": [bad["server_mid"]], "type": "all"}) == 404


async def test_deep_free_form_values_are_refused_and_not_stored(server, nursery, http):
    core = server.core
    alice, bob, cid, a, a_token, b_token = await _users(core, nursery, server)
    with pytest.raises(Invalid):
        await core.messages.send(alice.id, int(cid), body="deep", data=nested(33))
    await core.messages.send(alice.id, int(cid), body="ok", data=nested(32))
    assert [m.body for m in core.history.history(alice.id, int(cid))] == ["ok"]

    # REST bodies and array parameters nested past the bound are a 400, never a 500
    deep = "[" * 1000 + "]" * 1000
    for body in (deep, '{"username": ' + "[" * 40 + "]" * 40 + "}"):
        r = await http.post("/new", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, body[:50]
        r = await http.post("/login", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, body[:50]
    r = await http.get("/dmchannels", params={"channels": deep}, headers={"Authorisation": a_token})
    assert r.status_code == 400
    assert (await http.get("/health")).status_code == 200
