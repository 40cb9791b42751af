"""sockchat REST: every endpoint's documented statuses; bad parameters and big bodies get 400."""

import pytest
import trio

from .client import create_channel, new_user

NO_TOKEN: dict = {}
BAD_TOKEN = {"Authorisation": "not-a-token"}


async def test_new_account_and_login(http):
    with trio.fail_after(5):
        r = await http.post("/new", json={"username": "Starman"})
        assert r.status_code == 201
        body = r.json()
        assert set(body) == {"id", "dms", "token"} and body["dms"] == [] and body["id"].isdecimal()
        # login by id + username (case-insensitive, as core logins are)
        r = await http.post("/new", json={"accountID": body["id"], "username": "starman"})
        assert r.status_code == 202
        assert r.json()["id"] == body["id"] and r.json()["token"] != body["token"]
        for wrong in ({"accountID": body["id"], "username": "someone"}, {"accountID": "123", "username": "Starman"},
                      {"accountID": "x", "username": "Starman"}):
            r = await http.post("/new", json=wrong)
            assert (r.status_code, r.json()) == (401, None)
        # a taken username cannot be created again
        r = await http.post("/new", json={"username": "STARMAN"})
        assert (r.status_code, r.json()) == (409, None)
        for bad in ({}, {"username": ""}, {"username": 5}):
            r = await http.post("/new", json=bad)
            assert (r.status_code, r.json()) == (400, None)


async def test_login_lists_dms(http):
    with trio.fail_after(5):
        alice, bob = await new_user(http, "alice"), await new_user(http, "bob")
        cid = await create_channel(http, alice, bob)
        r = await http.post("/new", json={"accountID": bob.id, "username": "bob"})
        assert r.status_code == 202 and r.json()["dms"] == [cid]


@pytest.mark.config(dialects={"sockchat": {"require_password": True}})
async def test_require_password(http):
    with trio.fail_after(10):
        alice = await new_user(http, "alice")
        r = await http.post("/new", json={"accountID": alice.id, "username": "alice"})
        assert r.status_code == 401  # no password set yet: cannot log in this way
        r = await http.post("/update-account", headers=alice.auth,
                            json={"username": "alice", "avatarURL": "", "password": "s3cret"})
        assert r.status_code == 202 and "password" not in r.json()
        r = await http.post("/new", json={"accountID": alice.id, "username": "alice"})
        assert r.status_code == 401
        r = await http.post("/new", json={"accountID": alice.id, "username": "alice", "password": "wrong"})
        assert r.status_code == 401
        r = await http.post("/new", json={"accountID": alice.id, "username": "alice", "password": "s3cret"})
        assert r.status_code == 202
        # changing an existing password needs the current one
        r = await http.post("/update-account", headers=alice.auth,
                            json={"username": "alice", "avatarURL": "", "password": "other"})
        assert r.status_code == 400
        r = await http.post("/update-account", headers=alice.auth, json={
            "username": "alice", "avatarURL": "", "password": "other", "currentPassword": "nope"})
        assert r.status_code == 401
        bob = await new_user(http, "bob", password="pw")
        r = await http.post("/new", json={"accountID": bob.id, "username": "bob", "password": "pw"})
        assert r.status_code == 202


async def test_update_account(http):
    with trio.fail_after(5):
        alice = await new_user(http, "alice")
        await new_user(http, "taken")
        url = "https://example.org/a.png"
        r = await http.post("/update-account", headers=alice.auth, json={"username": "Alice", "avatarURL": url})
        assert (r.status_code, r.json()) == (202, {"id": alice.id, "username": "Alice", "avatarURL": url})
        r = await http.post("/update-account", headers=alice.auth, json={"username": "Alice", "avatarURL": url})
        assert (r.status_code, r.json()) == (406, None)
        r = await http.post("/update-account", headers=alice.auth, json={"username": "taken", "avatarURL": url})
        assert r.status_code == 409
        for headers, body, status in (
            (NO_TOKEN, {"username": "x", "avatarURL": url}, 400),
            (alice.auth, {"username": "x"}, 400),
            (alice.auth, {"avatarURL": url}, 400),
            (BAD_TOKEN, {"username": "x", "avatarURL": url}, 401),
        ):
            r = await http.post("/update-account", headers=headers, json=body)
            assert (r.status_code, r.json()) == (status, None), body
        r = await http.get("/users", params={"users": alice.id}, headers=alice.auth)
        assert r.json() == {"users": [{"avatarURL": url, "id": alice.id, "username": "Alice"}]}


async def test_create_channel(http):
    with trio.fail_after(5):
        alice, bob = await new_user(http, "alice"), await new_user(http, "bob")
        cid = await create_channel(http, alice, bob)
        for a, b in ((alice, bob), (bob, alice)):
            r = await http.post("/create-channel", headers=a.auth, json={"to": b.id, "type": 1})
            assert (r.status_code, r.json()) == (409, None)
        for headers, body, status in (
            (NO_TOKEN, {"to": bob.id, "type": 1}, 400),
            (alice.auth, {"type": 1}, 400),
            (alice.auth, {"to": bob.id}, 400),
            (alice.auth, {"to": bob.id, "type": 2}, 400),
            (alice.auth, {"to": bob.id, "type": True}, 400),
            (alice.auth, {"to": "bob", "type": 1}, 400),
            (alice.auth, {"to": alice.id, "type": 1}, 400),
            (alice.auth, {"to": "123456", "type": 1}, 404),
            (BAD_TOKEN, {"to": bob.id, "type": 1}, 401),
        ):
            r = await http.post("/create-channel", headers=headers, json=body)
            assert (r.status_code, r.json()) == (status, None), body
        assert cid.isdecimal()


async def test_users(http):
    with trio.fail_after(5):
        alice, bob = await new_user(http, "alice"), await new_user(http, "bob")
        want = {alice.id, bob.id}
        for query in (f"users={alice.id}&users={bob.id}", f"users[]={alice.id}&users[]={bob.id}",
                      f"users={alice.id},{bob.id}", f"users[0]={alice.id}&users[1]={bob.id}",
                      f'users=["{alice.id}","{bob.id}"]'):
            r = await http.get("/users?" + query, headers=alice.auth)
            assert r.status_code == 200, query
            assert {u["id"] for u in r.json()["users"]} == want
            assert {u["username"] for u in r.json()["users"]} == {"alice", "bob"}
        r = await http.get("/users", params={"users": "999"}, headers=alice.auth)
        assert (r.status_code, r.json()) == (404, {"users": []})
        r = await http.get("/users", params={"users": "1"}, headers=alice.auth)
        assert r.json()["users"][0]["id"] == "1"  # the welcome bot
        for query, headers, status in (
            ("", alice.auth, 400), ("users=", alice.auth, 400), ("users=abc", alice.auth, 400),
            ("users=-1", alice.auth, 400), ("users=99999999999999999999999", alice.auth, 400),
            ("users=[1", alice.auth, 400), ("users=" + ",".join(str(i) for i in range(2, 200)), alice.auth, 400),
            (f"users={alice.id}", NO_TOKEN, 400), (f"users={alice.id}", BAD_TOKEN, 401),
        ):
            r = await http.get("/users?" + query, headers=headers)
            assert (r.status_code, r.json()) == (status, None), query


async def test_messages_and_welcome(http):
    with trio.fail_after(5):
        alice = await new_user(http, "alice")
        for value in ("null", "undefined"):
            r = await http.get("/messages", params={"channel_id": value}, headers=alice.auth)
            assert r.status_code == 201
            body = r.json()
            [welcome] = body["messages"]
            assert welcome["id"] == "0" and "Welcome alice" in welcome["content"]
            assert welcome["author"] == {"avatarURL": "", "id": "1", "username": "chatd"}
            assert body["channel"] == {"name": "chatd", "id": "0"} and body["other_user"] == "1"
        bob = await new_user(http, "bob")
        cid = await create_channel(http, alice, bob)
        r = await http.get("/messages", params={"channel_id": cid}, headers=bob.auth)
        assert r.status_code == 200
        assert r.json() == {"messages": [], "channel": {"name": "alice", "id": cid}, "other_user": alice.id}
        carol = await new_user(http, "carol")
        for params, headers, status in (
            ({"channel_id": cid}, carol.auth, 404), ({"channel_id": "123"}, alice.auth, 404),
            ({}, alice.auth, 400), ({"channel_id": "abc"}, alice.auth, 400),
            ({"channel_id": cid}, NO_TOKEN, 400), ({"channel_id": cid}, BAD_TOKEN, 401),
        ):
            r = await http.get("/messages", params=params, headers=headers)
            assert (r.status_code, r.json()) == (status, None), params


@pytest.mark.config(dialects={"sockchat": {"welcome_username": "Dancing Lizard", "welcome_avatar_url": "x.gif",
                                           "welcome_message": "Hi {username}!", "default_avatar_url": "d.png"}})
async def test_welcome_from_config(http):
    with trio.fail_after(5):
        alice = await new_user(http, "alice")
        r = await http.get("/messages", params={"channel_id": "null"}, headers=alice.auth)
        assert r.json()["messages"][0] == {
            "content": "Hi alice!", "author": {"avatarURL": "x.gif", "id": "1", "username": "Dancing Lizard"},
            "id": "0", "channel_id": "0"}
        r = await http.get("/users", params={"users": alice.id}, headers=alice.auth)
        assert r.json()["users"][0]["avatarURL"] == "d.png"


async def test_last_50_messages_in_order(server, http):
    with trio.fail_after(10):
        alice, bob = await new_user(http, "alice"), await new_user(http, "bob")
        cid = await create_channel(http, alice, bob)
        for i in range(55):
            await server.core.messages.send(int(alice.id), int(cid), body=f"m{i}")
        r = await http.get("/messages", params={"channel_id": cid}, headers=bob.auth)
        messages = r.json()["messages"]
        assert [m["content"] for m in messages] == [f"m{i}" for i in range(5, 55)]
        assert messages[0]["author"] == {"avatarURL": "", "id": alice.id, "username": "alice"}


async def test_dmchannels(http):
    with trio.fail_after(5):
        alice, bob, carol = [await new_user(http, n) for n in ("alice", "bob", "carol")]
        ab, ac = await create_channel(http, alice, bob), await create_channel(http, carol, alice)
        r = await http.get(f"/dmchannels?channels[]={ab}&channels[]={ac}", headers=alice.auth)
        assert r.status_code == 200
        assert sorted(r.json()["dmchannels"], key=lambda c: c["channel_id"]) == sorted([
            {"channel_id": ab, "user": {"avatarURL": "", "id": bob.id, "username": "bob"}},
            {"channel_id": ac, "user": {"avatarURL": "", "id": carol.id, "username": "carol"}},
        ], key=lambda c: c["channel_id"])
        r = await http.get("/dmchannels", params={"channels": ab}, headers=carol.auth)
        assert (r.status_code, r.json()) == (404, {"dmchannels": []})
        for query, headers, status in (
            ("", alice.auth, 400), ("channels=x", alice.auth, 400),
            (f"channels={ab}", NO_TOKEN, 400), (f"channels={ab}", BAD_TOKEN, 401),
        ):
            r = await http.get("/dmchannels?" + query, headers=headers)
            assert (r.status_code, r.json()) == (status, None), query


async def test_bad_bodies_get_400(server, http):
    with trio.fail_after(5):
        alice = await new_user(http, "alice")
        big = b'{"username": "' + b"x" * (server.config.limits.max_http_body + 10) + b'"}'
        for path in ("/new", "/update-account", "/create-channel"):
            for content in (big, b"not json", b"[1,2]", b'"text"'):
                r = await http.post(path, content=content, headers={**alice.auth, "Content-Type": "application/json"})
                assert (r.status_code, r.json()) == (400, None), (path, content[:20])
        r = await http.post("/new", data={"username": "formuser"})
        assert r.status_code == 201


async def test_authorization_spellings_and_cors(http):
    with trio.fail_after(5):
        alice = await new_user(http, "alice")
        for headers in ({"Authorization": alice.token}, {"Authorisation": "Bearer " + alice.token}):
            r = await http.get("/messages", params={"channel_id": "null"}, headers=headers)
            assert r.status_code == 201
        r = await http.options("/users", headers={"Origin": "http://app.example",
                                                  "Access-Control-Request-Method": "GET",
                                                  "Access-Control-Request-Headers": "authorisation"})
        assert r.status_code == 204
        assert r.headers["Access-Control-Allow-Origin"] == "http://app.example"
        assert "authorisation" in r.headers["Access-Control-Allow-Headers"]
        r = await http.get("/users", params={"users": alice.id}, headers={**alice.auth, "Origin": "http://app.example"})
        assert r.headers["Access-Control-Allow-Origin"] == "http://app.example"
