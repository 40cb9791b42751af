"""Machinery for tests/dialects/test_isolation.py: worlds of members and one outsider, answers
normalised for comparison, snapshots of what the members see, and barriers that prove the
members' live connections received nothing.

Everything goes through the dialects' own wire protocols (real WebSocket, HTTP and Socket.IO
clients against the in-process server); nothing reads the core or the store.

Barriers: an outsider's refused operation publishes nothing; if it wrongly published, the
event would be queued on the members' connections before the answer reached the outsider.
So once the outsider has its answer, a member sends a harmless marker (SAMA: `typing`;
sockchat: a message in a side channel) and the other connection's next packet must be that
marker; anything before it was caused by the outsider.
"""

import itertools
import queue
from dataclasses import dataclass, field

import httpx
import trio

from tests.dialects.sama.client import SamaClient, create_user, device
from tests.dialects.sockchat.client import (
    Account,
    SyncClient,
    create_channel,
    in_thread,
    new_user,
    sio_client,
)

PNG = bytes(range(256)) * 2
STEP = 5.0  # seconds any single answer or marker may take
_seq = itertools.count(1)

# Ids that were never issued (small snowflakes from 1970): "does not exist" in every dialect.
NEVER_CID, NEVER_MID, NEVER_FILE = "4242424242", "4242424243", "4242424244"


def _strip_id(response: dict) -> dict:
    return {k: v for k, v in response.items() if k != "id"}


# -- SAMA: answers ---------------------------------------------------------------------------------


async def sama_request(c: SamaClient, op: str, body) -> dict:
    """The `response` to `{request: {op: body}}`, without its id."""
    return _strip_id(await c.request(op, body, timeout=STEP))


async def sama_message(c: SamaClient, body: dict) -> dict:
    """A `message` packet: `{"error": ...}` (the `{message: {id, error}}` answer without its id)
    or `{"accepted": ack}`."""
    mid = f"iso-{next(_seq)}"
    await c.send({"message": {"id": mid, **body}})
    packet = await c.wait_for(lambda p: ("ack" in p and p["ack"].get("mid") == mid)
                              or ("message" in p and p["message"].get("id") == mid and "error" in p["message"]),
                              timeout=STEP)
    if "ack" in packet:
        return {"accepted": packet["ack"]}
    return {"error": packet["message"]["error"]}


async def sama_packet(c: SamaClient, kind: str, body: dict) -> dict:
    """A `typing` or `system_message` packet, which is answered only when refused (a `response`
    without id). A `ping` follows it: frames of one connection are handled in order, so an
    error not received before the pong never comes. `{"accepted": True}` when nothing came."""
    if kind == "system_message":
        body = {"id": f"iso-sys-{next(_seq)}", **body}
    await c.send({kind: body})
    rid = f"iso-ping-{next(_seq)}"
    await c.send({"request": {"ping": {}, "id": rid}})
    answer = None
    with trio.fail_after(STEP):
        while True:
            packet = await c.receive()
            response = packet.get("response")
            if isinstance(response, dict) and response.get("id") == rid:
                break
            if isinstance(response, dict) and "id" not in response and answer is None:
                answer = response
                continue
            c.events.append(packet)
    return answer if answer is not None else {"accepted": True}


# -- SAMA: the world -------------------------------------------------------------------------------


@dataclass
class SamaWorld:
    server: object
    nursery: object
    a: SamaClient  # alice: owner of the group, partner of the private conversation
    b: SamaClient  # bob: member of both
    hal: SamaClient  # the outsider's own partner
    x: SamaClient  # the outsider
    x_login: str
    group: str
    private: str
    own: str  # the outsider's own private conversation with hal
    real: dict  # the ids the outsider goes after
    ghosts: list[dict]  # the same keys, for things that do not exist
    baseline: dict = field(default_factory=dict)


async def upload(server, client: SamaClient, name: str) -> str:
    files = (await client.ok("create_files", [{"name": name, "size": len(PNG),
                                               "content_type": "image/png"}]))["files"]
    async with httpx.AsyncClient() as http:
        r = await http.put(files[0]["upload_url"], content=PNG, headers={"Content-Type": "image/png"})
        assert r.status_code == 200, r.text
    return files[0]["_id"]


GROUP_NAME = "Isolation Team"


async def sama_world(server, nursery, actor: str, target: str) -> SamaWorld:
    """alice (owner), bob, lena and rob in a group with messages, read marks and an attachment;
    alice and bob in a private conversation; lena then leaves the group and rob is removed.
    The outsider is `actor`: "stranger" (sam, never a member), "left" (lena) or "removed" (rob);
    `target` is "group" or "private"."""
    for login in ("alice", "bob", "lena", "rob", "sam", "hal"):
        await create_user(server, nursery, login)
    a, b = await device(server, nursery, "alice", "d1"), await device(server, nursery, "bob", "d1")
    lena, rob = await device(server, nursery, "lena", "d1"), await device(server, nursery, "rob", "d1")
    sam, hal = await device(server, nursery, "sam", "d1"), await device(server, nursery, "hal", "d1")
    x, x_login = {"stranger": (sam, "sam"), "left": (lena, "lena"), "removed": (rob, "rob")}[actor]

    group = (await a.ok("conversation_create", {"type": "g", "name": GROUP_NAME, "description": "members only",
                                                "participants": [b.user_id, lena.user_id, rob.user_id]}
                        ))["conversation"]["_id"]
    private = (await a.ok("conversation_create", {"type": "u", "participants": [b.user_id]}))["conversation"]["_id"]
    own = (await x.ok("conversation_create", {"type": "u", "participants": [hal.user_id]}))["conversation"]["_id"]

    file_g, file_p = await upload(server, a, "g.png"), await upload(server, a, "p.png")
    own_file = await upload(server, x, "mine.png")
    mid_g = (await a.send_message(group, "g-alice", attachments=[{"file_id": file_g, "file_name": "g.png"}]))["server_mid"]
    old = {"left": (await lena.send_message(group, "g-lena"))["server_mid"],
           "removed": (await rob.send_message(group, "g-rob"))["server_mid"]}
    await b.send_message(group, "g-bob")
    mid_p = (await a.send_message(private, "p-alice", attachments=[{"file_id": file_p, "file_name": "p.png"}]))["server_mid"]
    await b.send_message(private, "p-bob")
    await x.send_message(own, "own-hello")
    await hal.send_message(own, "own-hi")
    # Read marks: bob has read everything, alice only the private conversation.
    await b.ok("message_read", {"cid": group})
    await b.ok("message_read", {"cid": private})
    await a.ok("message_read", {"cid": private})

    # A conversation and a message that existed and no longer do.
    ghost = (await a.ok("conversation_create", {"type": "g", "name": "Ghost",
                                                "participants": [b.user_id]}))["conversation"]["_id"]
    ghost_mid = (await a.send_message(ghost, "soon gone"))["server_mid"]
    await a.ok("conversation_delete", {"id": ghost})
    await b.ok("conversation_delete", {"id": ghost})

    await lena.ok("conversation_delete", {"id": group})
    await a.ok("conversation_update", {"id": group, "participants": {"remove": [rob.user_id]}})

    cid, mid, file = (group, mid_g, file_g) if target == "group" else (private, mid_p, file_p)
    real = {"cid": cid, "mid": mid, "file": file, "old_mid": old.get(actor), "own": own,
            "own_file": own_file, "name": GROUP_NAME, "me": x.user_id, "partner": hal.user_id,
            "member": b.user_id}
    ghosts = [
        {**real, "cid": NEVER_CID, "mid": NEVER_MID, "file": NEVER_FILE, "old_mid": NEVER_MID,
         "name": "No Such Conversation"},
        {**real, "cid": ghost, "mid": ghost_mid, "file": NEVER_FILE, "old_mid": ghost_mid, "name": "Ghost"},
    ]
    w = SamaWorld(server, nursery, a, b, hal, x, x_login, group, private, own, real, ghosts)
    await sama_settle(w)
    w.baseline = await sama_snapshot(w)
    return w


async def until_typing(c: SamaClient, cid: str, sender: str) -> list[dict]:
    """Read until `sender`'s typing in `cid`; returns what came before it."""
    before = []
    with trio.fail_after(STEP):
        while True:
            packet = await c.receive()
            t = packet.get("typing")
            if isinstance(t, dict) and t.get("cid") == cid and t.get("from") == sender:
                return before
            before.append(packet)


async def sama_barrier(w: SamaWorld) -> list[str]:
    """Problems: any packet the members or the outsider received since the last barrier."""
    problems = []
    for name, c in (("alice", w.a), ("bob", w.b), ("hal", w.hal)):
        if c.events:
            problems.append(f"{name} received {c.events}")
            c.events.clear()
    for sender, receiver, name in ((w.a, w.b, "bob"), (w.b, w.a, "alice")):
        await sender.send({"typing": {"cid": w.group, "status": "stop"}})
        before = await until_typing(receiver, w.group, sender.user_id)
        if before:
            problems.append(f"{name}'s connection received {before}")
    await w.x.ok("ping")
    if w.x.events:
        problems.append(f"the outsider received {w.x.events}")
        w.x.events.clear()
    return problems


async def sama_settle(w: SamaWorld) -> None:
    """Let everything published so far arrive, and forget it."""
    for c in (w.a, w.b, w.hal, w.x):
        c.drain()
    for sender, receiver in ((w.a, w.b), (w.b, w.a)):
        await sender.send({"typing": {"cid": w.group, "status": "stop"}})
        await until_typing(receiver, w.group, sender.user_id)
    await w.hal.ok("ping")
    await w.x.ok("ping")
    for c in (w.a, w.b, w.hal, w.x):
        c.drain()


async def sama_snapshot(w: SamaWorld) -> dict:
    """What the members (and the outsider) see: histories with read statuses, conversation lists
    (participants, unread counts, last messages, names), participants, and the outsider's file."""
    out = {}
    for name, c in (("alice", w.a), ("bob", w.b)):
        for label, cid in (("group", w.group), ("private", w.private)):
            out[name, "history", label] = await sama_request(c, "message_list", {"cid": cid, "limit": 100})
        out[name, "conversations"] = await sama_request(c, "conversation_list", {"limit": 100})
        out[name, "participants"] = await sama_request(c, "get_participants_by_cids",
                                                       {"cids": [w.group, w.private]})
        access = await sama_request(c, "get_file_urls", {"file_ids": [w.real["own_file"]]})
        if "file_urls" in access:  # signed URLs change every second: keep where they point
            access["file_urls"] = [url.partition("?")[0] for url in access["file_urls"]]
        out[name, "outsider's file"] = access
    out["hal", "history", "own"] = await sama_request(w.hal, "message_list", {"cid": w.own, "limit": 100})
    out["outsider", "conversations"] = await sama_request(w.x, "conversation_list", {"limit": 100})
    return out


def diff(before: dict, after: dict) -> list[str]:
    return [f"{key}: {before.get(key)!r} became {after.get(key)!r}"
            for key in sorted(set(before) | set(after), key=repr) if before.get(key) != after.get(key)]


async def sama_members_act(w: SamaWorld, cid: str, tag: str) -> None:
    """Everything a member can do in a conversation that tells its participants."""
    sent = (await w.a.send_message(cid, f"{tag}-1"))["server_mid"]
    await w.a.ok("message_edit", {"id": sent, "body": f"{tag}-1 edited"})
    second = (await w.b.send_message(cid, f"{tag}-2"))["server_mid"]
    await w.b.ok("message_read", {"cid": cid})
    await w.a.ok("message_read", {"cid": cid})
    await w.b.send({"typing": {"cid": cid, "status": "start"}})
    await w.a.send({"system_message": {"id": f"{tag}-sys", "cid": cid, "x": {"note": tag}}})
    if cid == w.group:
        await w.a.ok("conversation_update", {"id": cid, "name": f"{GROUP_NAME} {tag}",
                                             "participants": {"add": [w.hal.user_id]}})
        await w.a.ok("conversation_update", {"id": cid, "participants": {"remove": [w.hal.user_id]}})
    await w.a.ok("message_delete", {"cid": cid, "ids": [sent], "type": "all"})
    await w.b.ok("message_delete", {"cid": cid, "ids": [second], "type": "myself"})


# -- sockchat --------------------------------------------------------------------------------------


async def sock_http(http: httpx.AsyncClient, path: str, params, account: Account) -> tuple[int, object]:
    r = await http.get(path, params=params, headers=account.auth)
    return r.status_code, r.json() if r.content else None


async def sock_next(c: SyncClient, timeout: float = STEP):
    """The next (event, data) this socket received."""
    try:
        return await in_thread(c.inbox.get, timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no event within {timeout} s") from None


async def sock_until(c: SyncClient, channel: str, content: str) -> list:
    """Events received before the `message` (channel, content); that message is consumed."""
    before = []
    with trio.fail_after(STEP + 1):
        while True:
            name, data = await sock_next(c)
            if name == "message" and data.get("channel_id") == channel and data.get("content") == content:
                return before
            before.append((name, data))


async def sama_until_message(c: SamaClient, cid: str, body: str) -> list[dict]:
    """Packets a SAMA connection received before the `message` (cid, body), which is consumed."""
    before, c.events = list(c.events), []
    with trio.fail_after(STEP):
        while True:
            packet = await c.receive()
            m = packet.get("message")
            if isinstance(m, dict) and m.get("cid") == cid and m.get("body") == body:
                return before
            before.append(packet)


@dataclass
class Outsider:
    http: httpx.AsyncClient
    account: Account
    socket: SyncClient


@dataclass
class SockWorld:
    server: object
    http: httpx.AsyncClient
    alice: Account
    bob: Account
    sam: Account  # the stranger
    hal: Account  # the stranger's partner
    zed: Account  # sends the markers
    a: SyncClient  # alice's socket: channels ab, za
    b: SyncClient  # bob's socket: channels ab, zb
    s: SyncClient  # sam's socket: channel sh
    h: SyncClient  # hal's socket: channel sh
    z: SyncClient  # zed's socket: channels za, zb
    a_sama: SamaClient
    b_sama: SamaClient
    s_sama: SamaClient
    ab: str
    sh: str
    za: str
    zb: str
    real: dict
    ghosts: list[dict]
    baseline: dict = field(default_factory=dict)

    @property
    def outsider(self) -> Outsider:
        return Outsider(self.http, self.sam, self.s)


async def sock_send(c: SyncClient, channel: str, content: str) -> str:
    ack = await c.call("message", {"content": content, "channel": channel})
    assert ack.get("ok") is True, ack
    return ack["data"]["id"]


async def sock_world(server, nursery, http, stack) -> SockWorld:
    """alice and bob in a DM (ab) with messages and a read mark; sam (the stranger) in a DM with
    hal (sh); zed in DMs with alice (za) and bob (zb) for the markers. Every socket is open;
    alice, bob and sam also have a SAMA connection (the same conversations, the other dialect)."""
    names = ("alice", "bob", "sam", "hal", "zed")
    alice, bob, sam, hal, zed = [await _sock_user(http, n) for n in names]
    ab, sh = await create_channel(http, alice, bob), await create_channel(http, sam, hal)
    za, zb = await create_channel(http, zed, alice), await create_channel(http, zed, bob)
    a = await stack.enter_async_context(sio_client(server, alice, [ab, za], transports=["websocket"]))
    b = await stack.enter_async_context(sio_client(server, bob, [ab, zb], transports=["websocket"]))
    s = await stack.enter_async_context(sio_client(server, sam, [sh], transports=["websocket"]))
    h = await stack.enter_async_context(sio_client(server, hal, [sh], transports=["websocket"]))
    z = await stack.enter_async_context(sio_client(server, zed, [za, zb], transports=["websocket"]))
    a_sama, b_sama = await device(server, nursery, "alice", "d1"), await device(server, nursery, "bob", "d1")
    s_sama = await device(server, nursery, "sam", "d1")

    mid = await sock_send(a, ab, "ab-alice")
    await sock_send(b, ab, "ab-bob")
    await sock_send(s, sh, "sh-sam")
    await sock_send(h, sh, "sh-hal")
    await b_sama.ok("message_read", {"cid": ab})
    gone = await sock_send(a, ab, "soon gone")
    ack = await a.call("messageDeleted", {"channel": ab, "id": gone})
    assert ack.get("ok") is True, ack
    ghost = (await a_sama.ok("conversation_create", {"type": "g", "name": "Ghost",
                                                     "participants": [b_sama.user_id]}))["conversation"]["_id"]
    await a_sama.ok("conversation_delete", {"id": ghost})
    await b_sama.ok("conversation_delete", {"id": ghost})

    real = {"cid": ab, "mid": mid, "own": sh}
    ghosts = [{**real, "cid": NEVER_CID, "mid": NEVER_MID}, {**real, "cid": ghost, "mid": gone}]
    w = SockWorld(server, http, alice, bob, sam, hal, zed, a, b, s, h, z, a_sama, b_sama, s_sama,
                  ab, sh, za, zb, real, ghosts)
    await sock_barrier(w)  # everything so far has arrived: forget it
    for c in (w.a_sama, w.b_sama, w.s_sama):
        c.drain()
    w.baseline = await sock_snapshot(w)
    return w


async def _sock_user(http, name: str) -> Account:
    return await new_user(http, name, password="secret-pw")


async def sock_barrier(w: SockWorld) -> list[str]:
    """Problems: anything the members' sockets and SAMA connections, or the stranger's, or hal's,
    received since the last barrier."""
    problems = []
    mark = f"mark-{next(_seq)}"
    for channel, socket, sama, name in ((w.za, w.a, w.a_sama, "alice"), (w.zb, w.b, w.b_sama, "bob")):
        await sock_send(w.z, channel, mark)
        before = await sock_until(socket, channel, mark)
        if before:
            problems.append(f"{name}'s socket received {before}")
        before = await sama_until_message(sama, channel, mark)
        if before:
            problems.append(f"{name}'s SAMA connection received {before}")
    await sock_send(w.h, w.sh, mark)
    before = await sock_until(w.s, w.sh, mark)
    if before:
        problems.append(f"the stranger's socket received {before}")
    before = await sama_until_message(w.s_sama, w.sh, mark)
    if before:
        problems.append(f"the stranger's SAMA connection received {before}")
    mark += "-back"
    await sock_send(w.s, w.sh, mark)
    before = await sock_until(w.h, w.sh, mark)
    if before:
        problems.append(f"hal's socket received {before}")
    await sama_until_message(w.s_sama, w.sh, mark)  # the stranger's own message, on its other connection
    while not w.z.inbox.empty():
        w.z.inbox.get_nowait()
    return problems


async def sock_snapshot(w: SockWorld) -> dict:
    """What alice and bob see of their DM in both dialects: history (with read statuses),
    the channel, the conversation (unread count, participants), its participants."""
    out = {}
    for name, account, sama in (("alice", w.alice, w.a_sama), ("bob", w.bob, w.b_sama)):
        out[name, "GET /messages"] = await sock_http(w.http, "/messages", {"channel_id": w.ab}, account)
        out[name, "GET /dmchannels"] = await sock_http(w.http, "/dmchannels", {"channels": w.ab}, account)
        out[name, "message_list"] = await sama_request(sama, "message_list", {"cid": w.ab})
        out[name, "conversation_list"] = await sama_request(sama, "conversation_list", {"ids": [w.ab]})
        out[name, "participants"] = await sama_request(sama, "get_participants_by_cids", {"cids": [w.ab]})
    out["sam", "GET /dmchannels"] = await sock_http(w.http, "/dmchannels", {"channels": w.ab}, w.sam)
    return out
