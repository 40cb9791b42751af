"""Attachments over signed URLs (create_files, PUT upload, get_file_urls, GET download) and push
(subscriptions, push events, notifications queued for offline participants)."""

import time
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx

from .client import create_user, device, private_chat, two_users

PNG = bytes(range(256)) * 4  # 1024 bytes
PNG_SIZE = len(PNG)


def _with_query(url: str, **changes) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update({k: str(v) for k, v in changes.items()})
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _declare(client, name="1.png", size=PNG_SIZE, content_type="image/png") -> dict:
    files = (await client.ok("create_files", [{"name": name, "size": size, "content_type": content_type}]))["files"]
    assert len(files) == 1
    return files[0]


async def test_upload_and_download(server, nursery):
    await create_user(server, nursery, "uploader")
    c = await device(server, nursery, "uploader", "d1")
    files = (await c.ok("create_files", [
        {"name": "1.png", "size": len(PNG), "content_type": "image/png"},
        {"name": "2.jpeg", "size": 10, "content_type": "image/jpeg"},
    ]))["files"]
    assert [f["name"] for f in files] == ["1.png", "2.jpeg"]
    assert files[0]["size"] == len(PNG) and files[0]["content_type"] == "image/png"
    assert files[0]["upload_url"].startswith(server.http_url)
    async with httpx.AsyncClient() as http:
        r = await http.put(files[0]["upload_url"], content=PNG, headers={"Content-Type": "image/png"})
        assert r.status_code == 200, r.text
        urls = (await c.ok("get_file_urls", {"file_ids": [files[0]["_id"]]}))["file_urls"]
        assert len(urls) == 1
        r = await http.get(urls[0])
        assert r.status_code == 200 and r.content == PNG
        assert r.headers["content-type"] == "image/png"
        assert r.headers["content-length"] == str(len(PNG))
        r = await http.get(urls[0], headers={"Range": "bytes=0-3"})
        assert r.status_code == 206 and r.content == PNG[:4]
        assert r.headers["content-range"] == f"bytes 0-3/{len(PNG)}"
        assert r.headers["content-length"] == "4"
        # A second upload to the same file is refused.
        r = await http.put(files[0]["upload_url"], content=PNG, headers={"Content-Type": "image/png"})
        assert r.status_code in (400, 409, 422)
        # The not-yet-uploaded file has no bytes to download.
        url2 = (await c.ok("get_file_urls", {"file_ids": [files[1]["_id"]]}))["file_urls"][0]
        assert (await http.get(url2)).status_code == 404


async def test_upload_size_and_type_are_enforced(server, nursery):
    await create_user(server, nursery, "uploader")
    c = await device(server, nursery, "uploader", "d1")
    async with httpx.AsyncClient() as http:
        f = await _declare(c)
        r = await http.put(f["upload_url"], content=PNG + b"extra", headers={"Content-Type": "image/png"})
        assert r.status_code in (400, 413)
        r = await http.put(f["upload_url"], content=PNG[:-1], headers={"Content-Type": "image/png"})
        assert r.status_code in (400, 413)

        async def too_much():  # no Content-Length: streamed, cut off at the declared size
            yield PNG
            yield b"more bytes than declared"

        r = await http.put(f["upload_url"], content=too_much(), headers={"Content-Type": "image/png"})
        assert r.status_code in (400, 413)

        async def too_little():
            yield PNG[:100]

        r = await http.put(f["upload_url"], content=too_little(), headers={"Content-Type": "image/png"})
        assert r.status_code in (400, 413)
        r = await http.put(f["upload_url"], content=PNG, headers={"Content-Type": "text/plain"})
        assert r.status_code in (400, 415, 422)
        # After all the refusals the right upload still works.
        r = await http.put(f["upload_url"], content=PNG, headers={"Content-Type": "image/png"})
        assert r.status_code == 200, r.text
    assert await c.error("create_files", {"name": "x"}) == 400
    assert await c.error("create_files", [{"name": "x", "size": -1, "content_type": "a/b"}]) == 422
    assert await c.error("create_files", [{"name": "x", "size": 1 << 40, "content_type": "a/b"}]) == 413


async def test_signed_urls_refuse_tampering_and_expiry(server, nursery):
    await create_user(server, nursery, "uploader")
    c = await device(server, nursery, "uploader", "d1")
    f = await _declare(c)
    files = server.core.files
    async with httpx.AsyncClient() as http:
        sig = parse_qs(urlsplit(f["upload_url"]).query)["sig"][0]
        bad = _with_query(f["upload_url"], sig=("0" if sig[0] != "0" else "1") + sig[1:])
        assert (await http.put(bad, content=PNG, headers={"Content-Type": "image/png"})).status_code == 403
        later = _with_query(f["upload_url"], expires=int(time.time()) + 99999)  # expiry changed, old signature
        assert (await http.put(later, content=PNG, headers={"Content-Type": "image/png"})).status_code == 403
        past = int(time.time()) - 10
        expired = _with_query(f["upload_url"], expires=past, sig=files._sign("upload", int(f["_id"]), past))
        assert (await http.put(expired, content=PNG, headers={"Content-Type": "image/png"})).status_code == 403
        # An upload URL is not a download URL.
        as_download = _with_query(f["upload_url"], action="download")
        assert (await http.put(f["upload_url"], content=PNG, headers={"Content-Type": "image/png"})).status_code == 200
        assert (await http.get(as_download)).status_code == 403
        url = (await c.ok("get_file_urls", {"file_ids": [f["_id"]]}))["file_urls"][0]
        expired = _with_query(url, expires=past, sig=files._sign("download", int(f["_id"]), past))
        assert (await http.get(expired)).status_code == 403
        assert (await http.get(_with_query(url, sig="deadbeef"))).status_code == 403
        assert (await http.get(url)).status_code == 200


async def test_file_access_follows_conversations(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    await create_user(server, nursery, "stranger")
    stranger = await device(server, nursery, "stranger", "d1")
    f = await _declare(a1)
    async with httpx.AsyncClient() as http:
        r = await http.put(f["upload_url"], content=PNG, headers={"Content-Type": "image/png"})
        assert r.status_code == 200
        assert await b1.error("get_file_urls", {"file_ids": [f["_id"]]}) == 404  # not shared yet: as if it did not exist
        cid = await private_chat(a1, b1)
        await a1.send_message(cid, "a picture", attachments=[{"file_id": f["_id"], "file_name": "1.png"}])
        msg = (await b1.wait_for(lambda p: p.get("message", {}).get("body") == "a picture"))["message"]
        assert msg["attachments"] == [{"file_id": f["_id"], "file_name": "1.png"}]
        url = (await b1.ok("get_file_urls", {"file_ids": [f["_id"]]}))["file_urls"][0]
        r = await http.get(url)
        assert r.status_code == 200 and r.content == PNG
        assert await stranger.error("get_file_urls", {"file_ids": [f["_id"]]}) == 404
        assert await stranger.error("get_file_urls", {"file_ids": ["4242424242"]}) == 404
        assert await stranger.error("get_file_urls", {"file_ids": f["_id"]}) == 400
    # Someone else's file cannot be attached.
    assert await b1.send_message_error(cid, "mine now", attachments=[{"file_id": f["_id"]}]) == 422  # as an unknown file


async def test_push_subscriptions(server, nursery):
    await create_user(server, nursery, "pusher")
    c = await device(server, nursery, "pusher", "d1")
    web = {"platform": "web", "web_endpoint": "https://push.example/1", "web_key_auth": "auth",
           "web_key_p256dh": "p256dh", "device_udid": "browser-1"}
    sub = (await c.ok("push_subscription_create", web))["subscription"]
    assert sub["_id"] and sub["platform"] == "web" and sub["device_udid"] == "browser-1"
    assert sub["user_id"] == c.user_id and sub["web_endpoint"] == "https://push.example/1"
    ios = (await c.ok("push_subscription_create", {"platform": "ios", "device_token": "tok",
                                                    "device_udid": "phone-1"}))["subscription"]
    subs = (await c.ok("push_subscription_list", {"user_id": c.user_id}))["subscriptions"]
    assert {s["_id"] for s in subs} == {sub["_id"], ios["_id"]}
    # The same device again updates its subscription.
    again = (await c.ok("push_subscription_create", {**web, "web_endpoint": "https://push.example/2"}))
    assert again["subscription"]["_id"] == sub["_id"]
    assert len((await c.ok("push_subscription_list", {}))["subscriptions"]) == 2
    assert await c.error("push_subscription_create", {"platform": "fax", "device_udid": "x"}) == 422
    assert await c.error("push_subscription_create", {"platform": "web", "device_udid": "x"}) == 422
    assert await c.error("push_subscription_create", {"platform": "ios", "device_udid": "x"}) == 422
    assert await c.error("push_subscription_create", {"platform": "ios", "device_token": 5,
                                                      "device_udid": "x"}) == 400
    assert (await c.ok("push_subscription_delete", {"device_udid": "browser-1"}))["success"] is True
    assert await c.error("push_subscription_delete", {"device_udid": "browser-1"}) == 404
    assert await c.error("push_subscription_delete", {}) == 400
    assert [s["_id"] for s in (await c.ok("push_subscription_list", {}))["subscriptions"]] == [ios["_id"]]


async def test_push_event_create(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    await private_chat(a1, b1)
    await b1.ok("push_subscription_create", {"platform": "android", "device_token": "t", "device_udid": "b-phone"})
    event = (await a1.ok("push_event_create", {"recipients_ids": [b1.user_id],
                                               "message": {"title": "Title", "body": "Message body"}}))["event"]
    assert event["_id"] and event["user_id"] == a1.user_id and event["recipients_ids"] == [b1.user_id]
    assert event["message"] == '{"title":"Title","body":"Message body"}'
    queued = server.core.push.queued(int(b1.user_id))
    assert [q.payload for q in queued] == [{"title": "Title", "body": "Message body"}]
    assert await a1.error("push_event_create", {"recipients_ids": [], "message": {"title": "t"}}) == 422
    assert await a1.error("push_event_create", {"recipients_ids": ["9191919"], "message": {"title": "t"}}) == 404
    assert await a1.error("push_event_create", {"recipients_ids": [b1.user_id], "message": "hi"}) == 400
    assert await a1.error("push_event_create", {"recipients_ids": [b1.user_id], "message": {"title": 1}}) == 422
    assert await a1.error("push_event_create", {"message": {"title": "t"}}) == 400


async def test_offline_participant_gets_a_push(server, nursery):
    a1, a2, b1, b2 = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    await b1.ok("push_subscription_create", {"platform": "ios", "device_token": "t", "device_udid": "b-phone"})
    await a1.send_message(cid, "while you are here")
    assert server.core.push.queued(int(b1.user_id)) == []  # online: no push
    await b1.close()
    await b2.close()
    await a1.send_message(cid, "hey how is going?")
    queued = server.core.push.queued(int(b1.user_id))
    assert len(queued) == 1
    assert queued[0].payload == {"title": "alice", "body": "hey how is going?", "cid": cid}

    f = await _declare(a1)
    async with httpx.AsyncClient() as http:
        r = await http.put(f["upload_url"], content=PNG, headers={"Content-Type": "image/png"})
        assert r.status_code == 200
        await a1.send_message(cid, "a picture", attachments=[{"file_id": f["_id"], "file_name": "1.png"}])
        queued = server.core.push.queued(int(b1.user_id))
        assert len(queued) == 2
        payload = queued[-1].payload
        assert payload["body"] == "a picture" and payload["cid"] == cid
        r = await http.get(payload["firstAttachmentUrl"])
        assert r.status_code == 200 and r.content == PNG
    assert server.core.push.queued(int(a1.user_id)) == []  # never to the sender


async def test_upload_larger_than_the_http_body_limit(server, nursery):
    """The declared file size, not limits.max_http_body, bounds an upload."""
    await create_user(server, nursery, "uploader")
    c = await device(server, nursery, "uploader", "d1")
    data = bytes(range(251)) * (server.config.limits.max_http_body // 251 + 100)
    f = await _declare(c, "big.bin", len(data), "application/octet-stream")
    async with httpx.AsyncClient() as http:
        r = await http.put(f["upload_url"], content=data, headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        url = (await c.ok("get_file_urls", {"file_ids": [f["_id"]]}))["file_urls"][0]
        r = await http.get(url)
        assert r.status_code == 200 and r.content == data
        r = await http.get(url, headers={"Range": f"bytes={len(data) - 4}-"})
        assert r.status_code == 206 and r.content == data[-4:]


async def test_attachments_must_be_uploaded_with_their_declared_type(server, nursery):
    a1, _, b1, _ = await two_users(server, nursery)
    cid = await private_chat(a1, b1)
    f = await _declare(a1)
    # Declared but not uploaded: the recipient would only get 404s, so the send is refused.
    assert await a1.send_message_error(cid, "too soon", attachments=[{"file_id": f["_id"]}]) == 422
    async with httpx.AsyncClient() as http:
        r = await http.put(f["upload_url"], content=PNG)  # no Content-Type at all
        assert r.status_code == 400
        r = await http.put(f["upload_url"], content=PNG, headers={"Content-Type": "image/png"})
        assert r.status_code == 200
    await a1.send_message(cid, "now", attachments=[{"file_id": f["_id"]}])


async def test_an_unsatisfiable_range_is_ignored(server, nursery):
    await create_user(server, nursery, "ranger")
    c = await device(server, nursery, "ranger", "d1")
    f = await _declare(c)
    async with httpx.AsyncClient() as http:
        assert (await http.put(f["upload_url"], content=PNG, headers={"Content-Type": "image/png"})).status_code == 200
        url = (await c.ok("get_file_urls", {"file_ids": [f["_id"]]}))["file_urls"][0]
        r = await http.get(url, headers={"Range": "bytes=3-1"})
        assert r.status_code == 200 and r.content == PNG
        r = await http.get(url, headers={"Range": f"bytes={PNG_SIZE}-"})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{PNG_SIZE}"
