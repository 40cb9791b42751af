"""Users over SAMA: user_create, user_login (deprecated), connect, HTTP /login and /logout,
user_logout, user_edit, user_delete, user_search, get_users_by_ids."""

import time

import httpx
import pytest
import trio
import trio_websocket

from .client import connect, create_user, device, login_http, open_client


def _now_ms() -> int:
    return int(time.time() * 1000)


async def test_user_create_and_duplicate_login(server, nursery):
    client = await open_client(nursery, server)
    user = (await client.ok("user_create", {"login": "alice", "password": "pw1"}))["user"]
    assert user["login"] == "alice" and user["_id"]
    assert user["created_at"].endswith("Z") and user["updated_at"].endswith("Z")
    assert await client.error("user_create", {"login": "alice", "password": "other"}) == 422
    assert await client.error("user_create", {"login": "ALICE", "password": "other"}) == 422
    assert await client.error("user_create", {"password": "x"}) == 400  # login missing
    assert await client.error("user_create", {"login": ["a"], "password": "x"}) == 400


async def test_user_login_deprecated_password_and_token(server, nursery):
    await create_user(server, nursery, "bob", "pw-bob")
    client = await open_client(nursery, server)
    assert await client.error("user_login", {"login": "bob", "password": "wrong", "device_id": "x"}) == 401
    assert await client.error("user_login", {"login": "nobody", "password": "pw-bob", "device_id": "x"}) == 401
    assert await client.error("conversation_list", {}) == 401  # still not logged in
    response = await client.ok("user_login", {"login": "bob", "password": "pw-bob", "device_id": "dev-a"})
    assert response["user"]["login"] == "bob" and response["token"]
    assert "conversations" in await client.ok("conversation_list", {})

    other = await open_client(nursery, server)
    again = await other.ok("user_login", {"token": response["token"]})
    assert again["user"]["_id"] == response["user"]["_id"]
    assert "conversations" in await other.ok("conversation_list", {})
    assert await (await open_client(nursery, server)).error("user_login", {"token": "garbage"}) == 401


async def test_connect_bad_token_and_wrong_device(server, nursery):
    await create_user(server, nursery, "carol")
    client = await open_client(nursery, server)
    assert await client.error("connect", {"token": "not-a-token", "device_id": "d1"}) == 422  # the vendor's status: "The token has expired."
    data = (await login_http(server, "carol", device_id="d1")).json()
    assert await client.error("connect", {"token": data["access_token"], "device_id": "d2"}) == 422  # the vendor's status: "The token has expired."
    assert await client.error("message_list", {"cid": "1"}) == 401
    await client.ok("connect", {"token": data["access_token"], "device_id": "d1"})


async def test_http_login_response_and_errors(server, nursery, http):
    user = await create_user(server, nursery, "dave", "pw-dave")
    r = await http.post("/login", json={"login": "dave", "password": "pw-dave", "device_id": "d1"})
    assert r.status_code == 200
    data = r.json()
    assert data["user"]["_id"] == user["_id"] and data["access_token"]
    assert isinstance(data["expired_at"], int) and data["expired_at"] > _now_ms()  # ms since epoch
    assert "refresh_token" in r.cookies
    r = await http.post("/login", json={"login": "dave", "password": "nope", "device_id": "d1"})
    assert r.status_code == 401
    r = await http.post("/login", json={"login": "dave", "password": "pw-dave"})
    assert r.status_code == 422  # no device_id: the vendor server's status
    r = await http.post("/login", content=b"{not json")
    assert r.status_code == 400


async def test_http_login_with_bearer_token(server, nursery):
    await create_user(server, nursery, "erin")
    data = (await login_http(server, "erin", device_id="phone")).json()
    async with httpx.AsyncClient(base_url=server.http_url) as c:
        r = await c.post("/login", json={"device_id": "phone"},
                         headers={"Authorization": f"Bearer {data['access_token']}"})
        assert r.status_code == 200
        assert r.json()["access_token"] == data["access_token"]
        assert r.json()["user"]["login"] == "erin"
        r = await c.post("/login", json={"device_id": "phone"}, headers={"Authorization": "Bearer bogus"})
        assert r.status_code == 401


async def test_http_login_refresh_cookie_rotates(server, nursery):
    await create_user(server, nursery, "frank")
    async with httpx.AsyncClient(base_url=server.http_url) as c:
        first = await login_http(server, "frank", device_id="d1", http=c)
        old_refresh = first.cookies["refresh_token"]
        old_access = first.json()["access_token"]
        r = await c.post("/login", json={"device_id": "d1"})  # the cookie jar sends refresh_token
        assert r.status_code == 200, r.text
        new_refresh = r.cookies["refresh_token"]
        assert new_refresh != old_refresh
        assert r.json()["access_token"] != old_access
    async with httpx.AsyncClient(base_url=server.http_url, cookies={"refresh_token": old_refresh}) as c:
        assert (await c.post("/login", json={"device_id": "d1"})).status_code == 401
    # The access token the refresh replaced is refused; the new one works.
    client = await open_client(nursery, server)
    assert await client.error("connect", {"token": old_access, "device_id": "d1"}) == 422  # the vendor's status: "The token has expired."
    await client.ok("connect", {"token": r.json()["access_token"], "device_id": "d1"})


async def test_login_replaces_the_devices_tokens(server, nursery):
    await create_user(server, nursery, "gina")
    first = (await login_http(server, "gina", device_id="d1")).json()["access_token"]
    other_device = (await login_http(server, "gina", device_id="d2")).json()["access_token"]
    live = await connect(server, nursery, first, "d1")
    second = (await login_http(server, "gina", device_id="d1")).json()["access_token"]
    assert second != first
    # The socket that used the replaced token is closed; the old token is refused.
    with trio.fail_after(5):
        while True:
            try:
                await live.ws.get_message()
            except Exception:
                break
    client = await open_client(nursery, server)
    assert await client.error("connect", {"token": first, "device_id": "d1"}) == 422  # the vendor's status: "The token has expired."
    await client.ok("connect", {"token": second, "device_id": "d1"})
    await (await open_client(nursery, server)).ok("connect", {"token": other_device, "device_id": "d2"})


async def test_http_logout_only_that_device(server, nursery):
    await create_user(server, nursery, "hank")
    async with httpx.AsyncClient(base_url=server.http_url) as c:
        d1 = (await login_http(server, "hank", device_id="d1", http=c)).json()["access_token"]
        d2 = (await login_http(server, "hank", device_id="d2")).json()["access_token"]
        assert (await c.post("/logout")).status_code == 401  # no bearer token
        r = await c.post("/logout", headers={"Authorization": f"Bearer {d1}"})
        assert r.status_code == 200 and r.json() == {"success": True}
        set_cookie = r.headers.get("set-cookie", "")
        assert "refresh_token=" in set_cookie and ("Max-Age=0" in set_cookie or "expires=" in set_cookie.lower())
        assert "refresh_token" not in c.cookies
        # The refresh token of the logged-out session is dead too.
        assert (await c.post("/login", json={"device_id": "d1"})).status_code == 401
    client = await open_client(nursery, server)
    assert await client.error("connect", {"token": d1, "device_id": "d1"}) == 422  # the vendor's status: "The token has expired."
    await client.ok("connect", {"token": d2, "device_id": "d2"})


async def test_user_logout_over_websocket(server, nursery):
    await create_user(server, nursery, "ivan")
    c = await device(server, nursery, "ivan", "d1")
    assert (await c.ok("user_logout"))["success"] is True
    assert await c.error("conversation_list", {}) == 401
    assert await (await open_client(nursery, server)).error("connect", {"token": c.token, "device_id": "d1"}) == 422  # the vendor's status: "The token has expired."


async def test_user_edit_password_and_profile(server, nursery):
    await create_user(server, nursery, "judy", "old-pw")
    c = await device(server, nursery, "judy", "d1", password="old-pw")
    assert await c.error("user_edit", {"new_password": "new-pw"}) == 422  # current_password missing
    assert await c.error("user_edit", {"current_password": "wrong", "new_password": "new-pw"}) == 401
    user = (await c.ok("user_edit", {"current_password": "old-pw", "new_password": "new-pw",
                                     "email": "judy@example.com", "phone": "+1 555 0100"}))["user"]
    assert user["email"] == "judy@example.com" and user["phone"] == "+15550100"
    assert (await login_http(server, "judy", "old-pw")).status_code == 401
    assert (await login_http(server, "judy", "new-pw", device_id="d9")).status_code == 200
    assert await c.error("user_edit", {"email": ["x"]}) == 400
    await create_user(server, nursery, "kim", email="kim@example.com")
    assert await c.error("user_edit", {"email": "kim@example.com"}) == 422  # taken


async def test_user_delete(server, nursery):
    await create_user(server, nursery, "leo")
    c = await device(server, nursery, "leo", "d1")
    other = await device(server, nursery, "leo", "d2")
    token = c.token
    await c.ok("user_delete")
    # The account's other sockets close with "policy" (1008): their session is gone, not worth retrying.
    with trio.fail_after(5), pytest.raises(trio_websocket.ConnectionClosed) as closed:
        while True:
            await other.ws.get_message()
    assert closed.value.reason.code == 1008
    assert await c.error("conversation_list", {}) == 401
    assert (await login_http(server, "leo")).status_code == 401
    probe = await open_client(nursery, server)
    assert await probe.error("connect", {"token": token, "device_id": "d1"}) == 422  # the vendor's status: "The token has expired."
    await probe.ok("user_create", {"login": "leo", "password": "again"})  # the login is free again


async def test_user_search(server, nursery):
    me = (await create_user(server, nursery, "searcher"))["_id"]
    ids = {}
    for name in ("sam1", "sam2", "sam3", "other"):
        ids[name] = (await create_user(server, nursery, name))["_id"]
    c = await device(server, nursery, "searcher", "d1")
    users = (await c.ok("user_search", {"keyword": "sam"}))["users"]
    assert {u["login"] for u in users} == {"sam1", "sam2", "sam3"}
    assert me not in {u["_id"] for u in users}
    assert len((await c.ok("user_search", {"keyword": "sam", "limit": 2}))["users"]) == 2
    users = (await c.ok("user_search", {"keyword": "sam", "ignore_ids": [ids["sam1"], ids["sam3"]]}))["users"]
    assert [u["login"] for u in users] == ["sam2"]
    # updated_at.gt: only users changed after that moment.
    await trio.sleep(0.01)
    c2 = await device(server, nursery, "sam2", "d1")
    mark = _now_ms()
    await trio.sleep(0.01)
    await c2.ok("user_edit", {"first_name": "Samuel"})
    users = (await c.ok("user_search", {"keyword": "sam", "updated_at": {"gt": mark}}))["users"]
    assert [u["login"] for u in users] == ["sam2"]
    assert await c.error("user_search", {"keyword": "sam", "limit": "5"}) == 400
    assert await c.error("user_search", {"keyword": "sam", "ignore_ids": "x"}) == 400


async def test_get_users_by_ids(server, nursery):
    a = (await create_user(server, nursery, "u_one", email="one@example.com"))["_id"]
    b = (await create_user(server, nursery, "u_two"))["_id"]
    c = await device(server, nursery, "u_two", "d1")
    users = (await c.ok("get_users_by_ids", {"ids": [a, b, "999999"]}))["users"]
    assert {u["_id"] for u in users} == {a, b}
    other = next(u for u in users if u["_id"] == a)
    assert "email" not in other  # another user's email is private
    assert await c.error("get_users_by_ids", {"ids": a}) == 400
    assert await c.error("get_users_by_ids", {}) == 400


async def _closed_with(client, timeout: float = 5) -> int:
    """Read until the server closes the socket; the close code."""
    with trio.fail_after(timeout):
        try:
            while True:
                await client.ws.get_message()
        except trio_websocket.ConnectionClosed as closed:
            return closed.reason.code


async def test_http_logout_closes_the_sockets_of_that_session(server, nursery):
    """POST /logout ends the session, so the socket that `connect`ed with it closes (policy, 1008);
    the same user's other device keeps working."""
    await create_user(server, nursery, "mona")
    d1 = await device(server, nursery, "mona", "d1")
    d2 = await device(server, nursery, "mona", "d2")
    async with httpx.AsyncClient(base_url=server.http_url) as c:
        r = await c.post("/logout", headers={"Authorization": f"Bearer {d1.token}"})
        assert r.status_code == 200
        assert await _closed_with(d1) == 1008
        assert (await c.post("/logout", headers={"Authorization": f"Bearer {d1.token}"})).status_code == 401
    assert "conversations" in await d2.ok("conversation_list", {})


async def test_expired_access_token_is_refused(server, nursery):
    """Past `expired_at` the access token no longer connects or logs in by Bearer; the refresh cookie
    still gets a new one. (The TTL is shortened on the running server: the config minimum is 10 s.)"""
    await create_user(server, nursery, "nina")
    server.core.sessions.access_ttl_ms = 300
    async with httpx.AsyncClient(base_url=server.http_url) as c:
        first = await login_http(server, "nina", device_id="d1", http=c)
        token = first.json()["access_token"]
        assert first.json()["expired_at"] - _now_ms() <= 300
        await trio.sleep(0.4)
        probe = await open_client(nursery, server)
        assert await probe.error("connect", {"token": token, "device_id": "d1"}) == 422  # the vendor's status: "The token has expired."
        r = await c.post("/login", json={"device_id": "d1"}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        server.core.sessions.access_ttl_ms = 3_600_000
        r = await c.post("/login", json={"device_id": "d1"})  # the refresh cookie
        assert r.status_code == 200, r.text
        await probe.ok("connect", {"token": r.json()["access_token"], "device_id": "d1"})
