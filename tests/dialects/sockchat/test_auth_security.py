"""sockchat auth hardening: an account with a password always needs it, failed logins are
throttled, and Socket.IO sockets are disconnected when their session ends."""

import pytest
import trio

from tests.helpers import count_hashes

from .client import Account, new_user, sio_client


async def disconnected(client, timeout: float = 5) -> None:
    with trio.fail_after(timeout):
        while client.client.connected:
            await trio.sleep(0.05)


async def test_an_account_with_a_password_needs_it_to_log_in_by_id(server, http):
    """With the default `require_password = false`, accountID + username logs in only accounts that have
    no password; one that set a password (here through the core, as SAMA or the CLI would) needs it."""
    sam = await server.core.accounts.create("sam", password="sam-pw")
    for body in ({}, {"password": ""}, {"password": "wrong"}):
        r = await http.post("/new", json={"accountID": str(sam.id), "username": "sam", **body})
        assert r.status_code == 401, body
    r = await http.post("/new", json={"accountID": str(sam.id), "username": "SAM", "password": "sam-pw"})
    assert r.status_code == 202 and r.json()["id"] == str(sam.id)
    # The documented login without a password still works for an account that has none ...
    nopw = await new_user(http, "nopw")
    r = await http.post("/new", json={"accountID": nopw.id, "username": "nopw"})
    assert r.status_code == 202
    # ... until it sets one.
    r = await http.post("/update-account", headers=nopw.auth,
                        json={"username": "nopw", "avatarURL": "", "password": "now-set"})
    assert r.status_code == 202
    assert (await http.post("/new", json={"accountID": nopw.id, "username": "nopw"})).status_code == 401


@pytest.mark.config(auth={"login_failures_per_account": 3})
async def test_new_with_wrong_passwords_is_throttled(server, http):
    alice = await new_user(http, "alice", password="alice-pw")
    calls = count_hashes(server)
    for _ in range(3):
        r = await http.post("/new", json={"accountID": alice.id, "username": "alice", "password": "guess"})
        assert r.status_code == 401
    r = await http.post("/new", json={"accountID": alice.id, "username": "alice", "password": "guess"})
    assert r.status_code == 429
    r = await http.post("/new", json={"accountID": alice.id, "username": "alice", "password": "alice-pw"})
    assert r.status_code == 429
    assert calls[0] == 3


async def test_socket_is_disconnected_when_its_token_expires(server, http):
    server.core.sessions.access_ttl_ms = 1500
    alice = await new_user(http, "alice")
    server.core.sessions.access_ttl_ms = 3_600_000
    async with sio_client(server, alice) as s:
        assert s.client.connected
        await disconnected(s)
    r = await http.get("/users", params={"users": alice.id}, headers=alice.auth)
    assert r.status_code == 401


async def test_password_change_ends_the_other_sessions(server, http):
    first = await new_user(http, "bob", password="old-pw")
    r = await http.post("/new", json={"accountID": first.id, "username": "bob", "password": "old-pw"})
    second = Account(first.id, r.json()["token"], "bob")
    async with sio_client(server, second) as s:
        r = await http.post("/update-account", headers=first.auth, json={
            "username": "bob", "avatarURL": "", "password": "new-pw", "currentPassword": "old-pw"})
        assert r.status_code == 202
        await disconnected(s)
    assert (await http.get("/users", params={"users": first.id}, headers=second.auth)).status_code == 401
    assert (await http.get("/users", params={"users": first.id}, headers=first.auth)).status_code == 200
