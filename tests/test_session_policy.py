"""Session policy in the core, once (chatd/core/sessions.py), whatever the dialect:

- the per-user connection cap (`limits.max_connections_per_user`) counts SAMA connections and
  Socket.IO sockets of a user together (`Sessions.admit`);
- the device check (`Sessions.authenticate(token, device_id=…)`, and the refresh token's) answers
  in each place as that dialect always did: SAMA `connect` 422 "The token has expired.", SAMA
  POST /login with a Bearer token or the refresh cookie 401;
- a global refusal hook (`Sessions.admission_checks`, a ban) refuses the user's connections in both
  dialects, each in its own error shape, and every use of the user's tokens.
"""

import json

import httpx
import pytest
import trio

from chatd.core.errors import Forbidden, Unauthorized
from chatd.gateway.frames import TEXT
from tests.dialects.sama.client import connect, login_http, open_client
from tests.dialects.sockchat.client import new_user
from tests.test_front_door import EIO_WS, RawWS

BOTH = {"sockchat": {"enabled": True}, "sama": {"enabled": True}}


async def sio_connect(server, token: str) -> tuple[RawWS, str]:
    """A Socket.IO socket on the Engine.IO WebSocket, the token in the CONNECT payload: the
    socket and the server's answer to CONNECT (`40{...}` or `44{...}`)."""
    ws = await RawWS.open(server, EIO_WS)
    opcode, payload = await ws.frame()
    assert opcode == TEXT and payload.startswith(b"0{"), payload
    await ws.send(b"40" + json.dumps({"token": token}).encode())
    opcode, payload = await ws.frame()
    return ws, payload.decode()


async def sama_login(server, nursery, login: str, password: str, device: str):
    """A SAMA socket after user_login: (client, response)."""
    client = await open_client(nursery, server, f"{login}/{device}")
    response = await client.request("user_login", {"login": login, "password": password, "device_id": device})
    return client, response


async def wait_until(predicate, timeout: float = 5) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.005)


# -- the connection cap ------------------------------------------------------------------------------------

@pytest.mark.config(dialects=BOTH, limits={"max_connections_per_user": 3})
async def test_connection_cap_counts_both_dialects_together(server, http, nursery):
    bus = server.core.bus
    alice = await new_user(http, "alice", password="alice-pw")
    uid = int(alice.id)
    sama1, r = await sama_login(server, nursery, "alice", "alice-pw", "d1")
    assert "error" not in r, r
    sock1, answer = await sio_connect(server, alice.token)
    assert answer.startswith('40{"sid"'), answer
    sama2, r = await sama_login(server, nursery, "alice", "alice-pw", "d2")
    assert "error" not in r, r
    await wait_until(lambda: bus.connections(uid) == 3)

    # Full: a fourth is refused in either dialect, each in its own shape.
    sock2, answer = await sio_connect(server, alice.token)
    assert answer.startswith("44"), answer
    assert json.loads(answer[2:]) == {"message": "at most 3 connections per user"}
    sama3, r = await sama_login(server, nursery, "alice", "alice-pw", "d3")
    assert r["error"] == {"status": 429, "message": "at most 3 connections per user"}
    token = (await login_http(server, "alice", "alice-pw", "d4")).json()["access_token"]
    r = await sama3.request("connect", {"token": token, "device_id": "d4"})
    assert r["error"]["status"] == 429
    # Logging in again on a connection already counted is no new connection.
    r = await sama1.request("user_login", {"login": "alice", "password": "alice-pw", "device_id": "d1"})
    assert "error" not in r, r
    assert bus.connections(uid) == 3
    # Another user is not affected.
    bob = await new_user(http, "bob")
    sock_b, answer = await sio_connect(server, bob.token)
    assert answer.startswith('40{"sid"'), answer

    # One goes (a Socket.IO socket): a SAMA connection fits again, and then the cap holds again.
    await sock1.stream.aclose()
    await wait_until(lambda: bus.connections(uid) == 2)
    await sama3.ok("connect", {"token": token, "device_id": "d4"})
    sock3, answer = await sio_connect(server, alice.token)
    assert answer.startswith("44"), answer
    for ws in (sock2, sock3, sock_b):
        await ws.stream.aclose()


# -- the device check -------------------------------------------------------------------------------------

@pytest.mark.config(dialects=BOTH)
async def test_device_check_in_core_and_each_place_keeps_its_answer(server, nursery):
    await (await open_client(nursery, server)).ok("user_create", {"login": "dora", "password": "dora-pw"})
    async with httpx.AsyncClient(base_url=server.http_url) as c:
        r = await c.post("/login", json={"login": "dora", "password": "dora-pw", "device_id": "Phone"})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        refresh_cookie = r.cookies["refresh_token"]

    # The core: once.
    sessions = server.core.sessions
    assert sessions.authenticate(token).device_id == "Phone"
    assert sessions.authenticate(token, device_id="phone").device_id == "Phone"  # case-insensitive
    with pytest.raises(Unauthorized, match="the token belongs to another device"):
        sessions.authenticate(token, device_id="laptop")

    # SAMA connect: another device's token is 422 "The token has expired.", as the vendor answers.
    other = await open_client(nursery, server)
    r = await other.request("connect", {"token": token, "device_id": "laptop"})
    assert r["error"] == {"status": 422, "message": "The token has expired."}
    same = await connect(server, nursery, token, "PHONE")
    await same.ok("ping")

    # SAMA POST /login with the Bearer token: 401 for another device, 200 for its own.
    async with httpx.AsyncClient(base_url=server.http_url) as c:
        r = await c.post("/login", json={"device_id": "laptop"}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json() == {"status": 401, "message": "the token belongs to another device"}
        r = await c.post("/login", json={"device_id": "phone"}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["access_token"] == token

    # SAMA POST /login with the refresh cookie: 401 for another device (the token is not spent), then 200.
    async with httpx.AsyncClient(base_url=server.http_url, cookies={"refresh_token": refresh_cookie}) as c:
        r = await c.post("/login", json={"device_id": "laptop"})
        assert r.status_code == 401, r.text
        assert r.json()["message"] == "the refresh token belongs to another device"
        r = await c.post("/login", json={"device_id": "phone"})
        assert r.status_code == 200, r.text


# -- the global refusal hook (a ban) ------------------------------------------------------------------------------

@pytest.mark.config(dialects=BOTH)
async def test_admission_check_refuses_a_user_in_both_dialects(server, http, nursery):
    alice = await new_user(http, "alice", password="alice-pw")
    bob = await new_user(http, "bob", password="bob-pw")
    sama_token = (await login_http(server, "alice", "alice-pw", "d1")).json()["access_token"]
    banned = {int(alice.id)}

    def no_banned_users(user_id: int) -> None:
        if user_id in banned:
            raise Forbidden("this account is banned")

    server.core.sessions.admission_checks.append(no_banned_users)

    # Socket.IO: CONNECT_ERROR with the reason.
    ws, answer = await sio_connect(server, alice.token)
    assert answer.startswith("44"), answer
    assert json.loads(answer[2:]) == {"message": "this account is banned"}
    await ws.stream.aclose()
    # SAMA: connect, user_login (password or token): 403 in SAMA's error shape.
    client = await open_client(nursery, server)
    r = await client.request("connect", {"token": sama_token, "device_id": "d1"})
    assert r["error"] == {"status": 403, "message": "this account is banned"}
    r = await client.request("user_login", {"login": "alice", "password": "alice-pw", "device_id": "d2"})
    assert r["error"] == {"status": 403, "message": "this account is banned"}
    r = await client.request("user_login", {"token": sama_token})
    assert r["error"]["status"] == 403
    assert not server.core.bus.online(int(alice.id))
    # Every other use of the user's tokens, over HTTP in both dialects.
    r = await http.post("/login", json={"device_id": "d1"}, headers={"Authorization": f"Bearer {sama_token}"})
    assert r.status_code == 403 and r.json() == {"status": 403, "message": "this account is banned"}
    r = await http.get("/dmchannels", params={"channels": "0"}, headers=alice.auth)
    assert r.status_code == 403
    # Others are not refused.
    ws, answer = await sio_connect(server, bob.token)
    assert answer.startswith('40{"sid"'), answer
    await ws.stream.aclose()
    _, r = await sama_login(server, nursery, "bob", "bob-pw", "d1")
    assert "error" not in r, r

    # Lifted: admitted again.
    banned.clear()
    ws, answer = await sio_connect(server, alice.token)
    assert answer.startswith('40{"sid"'), answer
    await ws.stream.aclose()
    await client.ok("connect", {"token": sama_token, "device_id": "d1"})
