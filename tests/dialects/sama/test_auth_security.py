"""SAMA auth hardening: failed-login throttling, sessions ending when their token expires or the
password changes, refused frames answered with their id, deep JSON as 400, and the vendor's statuses."""

import json

import httpx
import pytest
import trio
import trio_websocket

from tests.helpers import count_hashes

from .client import connect, create_user, device, login_http, open_client


async def closed_with(client, timeout: float = 5) -> tuple[int, str]:
    """Read until the server closes the socket: (code, reason)."""
    with trio.fail_after(timeout):
        try:
            while True:
                await client.ws.get_message()
        except trio_websocket.ConnectionClosed as closed:
            return closed.reason.code, closed.reason.reason


# -- failed-login throttling ------------------------------------------------------------------------


@pytest.mark.config(auth={"login_failures_per_account": 3})
async def test_http_login_wrong_passwords_are_throttled_per_account(server, nursery):
    await create_user(server, nursery, "tara", "right-pw")
    calls = count_hashes(server)
    for _ in range(3):
        assert (await login_http(server, "tara", "wrong")).status_code == 401
    assert calls[0] == 3
    r = await login_http(server, "tara", "wrong")
    assert r.status_code == 429
    assert r.json()["status"] == 429 and int(r.headers["Retry-After"]) >= 1
    # Over budget, even the right password is refused from this address, and nothing is hashed.
    assert (await login_http(server, "TARA", "right-pw")).status_code == 429
    assert calls[0] == 3
    # Another account is not affected.
    await create_user(server, nursery, "uma", "pw-uma")
    assert (await login_http(server, "uma", "pw-uma")).status_code == 200


@pytest.mark.config(auth={"login_failures_per_account": 1000, "login_failures_per_address": 4})
async def test_http_login_wrong_passwords_are_throttled_per_address(server, nursery):
    calls = count_hashes(server)
    for i in range(4):  # unknown logins count too: the same answer, the same cost
        assert (await login_http(server, f"nobody{i}", "guess")).status_code == 401
    assert (await login_http(server, "nobody-else", "guess")).status_code == 429
    assert calls[0] == 4


@pytest.mark.config(auth={"login_failures_per_account": 2})
async def test_user_login_wrong_passwords_are_throttled(server, nursery):
    await create_user(server, nursery, "vera", "right-pw")
    calls = count_hashes(server)
    client = await open_client(nursery, server)
    for _ in range(2):
        assert await client.error("user_login", {"login": "vera", "password": "x", "device_id": "d"}) == 401
    response = await client.request("user_login", {"login": "vera", "password": "x", "device_id": "d"})
    assert response["id"].startswith("user_login") and response["error"]["status"] == 429
    assert calls[0] == 2
    # The socket still works.
    assert "pong" in await client.ok("ping")


@pytest.mark.config(auth={"login_failures_per_account": 2})
async def test_a_successful_login_does_not_count_as_a_failure(server, nursery):
    await create_user(server, nursery, "wes", "pw-wes")
    for _ in range(5):
        assert (await login_http(server, "wes", "pw-wes")).status_code == 200
    assert (await login_http(server, "wes", "wrong")).status_code == 401
    assert (await login_http(server, "wes", "pw-wes")).status_code == 200


# -- sessions end when their token expires or the password changes ------------------------------------


async def test_open_socket_closes_when_its_token_expires(server, nursery):
    """The token is checked at `connect`, and the socket closes (1008 "token expired") when it expires;
    the refresh cookie still gets a new token."""
    await create_user(server, nursery, "xena")
    server.core.sessions.access_ttl_ms = 1500
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        first = await login_http(server, "xena", device_id="d1", http=http)
        token = first.json()["access_token"]
        server.core.sessions.access_ttl_ms = 3_600_000
        other = await device(server, nursery, "xena", "d2")  # a token that lives on
        live = await connect(server, nursery, token, "d1")
        assert "conversations" in await live.ok("conversation_list", {})
        assert await closed_with(live) == (1008, "token expired")
        assert "conversations" in await other.ok("conversation_list", {})
        r = await http.post("/login", json={"device_id": "d1"})  # the refresh cookie
        assert r.status_code == 200, r.text
    await connect(server, nursery, r.json()["access_token"], "d1")


async def test_password_change_ends_the_other_sessions(server, nursery):
    await create_user(server, nursery, "yuri", "old-pw")
    mine = await device(server, nursery, "yuri", "d1", password="old-pw")
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        other_login = await login_http(server, "yuri", "old-pw", device_id="d2", http=http)
        other = await connect(server, nursery, other_login.json()["access_token"], "d2")
        await mine.ok("user_edit", {"current_password": "old-pw", "new_password": "new-pw"})
        assert await closed_with(other) == (1008, "password changed")
        # The other device's token and refresh cookie are dead; this socket's session lives on.
        probe = await open_client(nursery, server)
        assert await probe.error("connect", {"token": other.token, "device_id": "d2"}) == 422
        assert (await http.post("/login", json={"device_id": "d2"})).status_code == 401
    assert "conversations" in await mine.ok("conversation_list", {})
    await probe.ok("connect", {"token": mine.token, "device_id": "d1"})


async def test_cli_style_set_password_ends_every_session(server, nursery):
    user = await create_user(server, nursery, "zack", "old-pw")
    live = await device(server, nursery, "zack", "d1", password="old-pw")
    await server.core.accounts.set_password(int(user["_id"]), "admin-set")
    assert (await closed_with(live))[0] == 1008
    probe = await open_client(nursery, server)
    assert await probe.error("connect", {"token": live.token, "device_id": "d1"}) == 422


# -- refused frames carry their id ----------------------------------------------------------------------


@pytest.mark.config(limits={"rate_per_second": 0.1, "rate_burst": 3})
async def test_rate_limited_request_and_message_are_answered_with_their_id(server, nursery):
    await create_user(server, nursery, "abby")
    friend = await create_user(server, nursery, "abby-friend")
    c = await device(server, nursery, "abby", "d1")  # `connect` spends one token
    conv = await c.ok("conversation_create", {"type": "u", "participants": [friend["_id"]]})
    cid = conv["conversation"]["_id"]
    await c.send_message(cid, "the last one allowed")
    response = await c.request("conversation_list", {})
    assert response["id"].startswith("conversation_list") and response["error"]["status"] == 429
    await c.send({"message": {"id": "m-over", "cid": cid, "body": "too fast"}})
    packet = await c.wait_for(lambda p: "message" in p and p["message"].get("id") == "m-over")
    assert packet["message"]["error"]["status"] == 429


# -- deep JSON is a 400 in SAMA's shape -------------------------------------------------------------------


def nested(levels: int) -> str:
    return "[" * (levels - 1) + "{}" + "]" * (levels - 1)


async def test_deeply_nested_frames_are_400_and_nothing_is_stored(server, nursery):
    await create_user(server, nursery, "bea")
    friend = await create_user(server, nursery, "bea-friend")
    c = await device(server, nursery, "bea", "d1")
    cid = (await c.ok("conversation_create", {"type": "u", "participants": [friend["_id"]]}))["conversation"]["_id"]
    # A message whose free-form `x` nests 401 levels (cbor2 could not read it back): 400 with its id.
    await c.send('{"message": {"id": "deep-x", "cid": "' + cid + '", "body": "b", "x": {"a": ' + nested(400) + "}}}")
    packet = await c.wait_for(lambda p: "message" in p and p["message"].get("id") == "deep-x")
    assert packet["message"]["error"]["status"] == 400
    # `x` one level over the bound (32) is refused too, at the bound it is accepted.
    await c.send(json.dumps({"message": {"id": "x33", "cid": cid, "body": "b", "x": {"a": json.loads(nested(32))}}}))
    packet = await c.wait_for(lambda p: "message" in p and p["message"].get("id") == "x33")
    assert packet["message"]["error"]["status"] == 400
    # A request nested 1,000 levels (past msgspec's recursion limit): 400, no id can be read.
    await c.send('{"request": {"id": "deep-r", "user_search": {"keyword": ' + nested(1000) + "}}}")
    packet = await c.wait_for("response")
    assert packet["response"]["error"]["status"] == 400
    # A request nested 100 levels: 400 with its id.
    await c.send('{"request": {"id": "r100", "user_search": {"keyword": ' + nested(100) + "}}}")
    packet = await c.wait_for(lambda p: p.get("response", {}).get("id") == "r100")
    assert packet["response"]["error"]["status"] == 400
    # The connection still works and nothing was stored.
    assert "pong" in await c.ok("ping")
    assert (await c.ok("message_list", {"cid": cid}))["messages"] == []
    ack = await c.send_message(cid, "fine", x={"a": json.loads(nested(31))})  # x: 32 levels
    messages = (await c.ok("message_list", {"cid": cid}))["messages"]
    assert [m["_id"] for m in messages] == [ack["server_mid"]]


# -- the vendor's statuses -------------------------------------------------------------------------------


async def test_vendor_statuses_for_login_and_connect(server, nursery, http):
    await create_user(server, nursery, "cleo")
    r = await http.post("/login", json={"login": "cleo", "password": "secret-pw"})
    assert r.status_code == 422  # no device_id
    client = await open_client(nursery, server)
    assert await client.error("conversation_list", {}) == 401  # before connect: still 401
    response = await client.request("connect", {"token": "not-a-token", "device_id": "d1"})
    assert response["error"] == {"status": 422, "message": "The token has expired."}
    first = (await login_http(server, "cleo", device_id="d1")).json()["access_token"]
    assert await client.error("connect", {"token": first}) == 422  # no device_id
    second = (await login_http(server, "cleo", device_id="d1")).json()["access_token"]
    response = await client.request("connect", {"token": first, "device_id": "d1"})  # replaced
    assert response["error"] == {"status": 422, "message": "The token has expired."}
    assert await client.error("connect", {"token": second, "device_id": "d2"}) == 422  # another device's
    server.core.sessions.access_ttl_ms = 200
    short = (await login_http(server, "cleo", device_id="d3")).json()["access_token"]
    await trio.sleep(0.3)
    response = await client.request("connect", {"token": short, "device_id": "d3"})  # expired
    assert response["error"] == {"status": 422, "message": "The token has expired."}
    await client.ok("connect", {"token": second, "device_id": "d1"})
