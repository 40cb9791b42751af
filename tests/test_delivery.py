"""One delivery path (DESIGN.md "Concurrency", MODEL.md "One writer, one delivery model").

Every bus subscription feeds a bounded queue of its connection; that connection's own writer
drains and renders it — Engine.IO/Socket.IO sockets too (the WebSocket pump or the long-poll GET).
So:

(a) a Socket.IO socket that stops reading (over WebSocket) or stops polling is dropped by the bus
    as a slow consumer, like a SAMA WebSocket, while another user's sends keep being acknowledged
    promptly and `Bus.publish` never waits;
(b) no event is rendered on the publisher's task (the store's commit path): each receiving
    connection renders on its own task;
(c) echo suppression lives in the bus: a subscription carries its connection's origin tag, and an
    event that connection caused is never queued to it; the user's other connections (in either
    dialect) get it.

Raw clients (hand-made frames and polling requests) where the test must control reading.
"""

import itertools
import json
import time

import httpx
import pytest
import trio

from chatd.core.bus import Bus
from chatd.dialects.sama.session import SamaSession
from chatd.gateway.frames import CLOSE, TEXT
from tests.dialects.sama.client import open_client
from tests.dialects.sockchat.client import create_channel, new_user, sio_client
from tests.gateway.test_frames import client_frame
from tests.test_front_door import EIO_WS, RawWS

BOTH = {"sockchat": {"enabled": True}, "sama": {"enabled": True}}
OPEN_LIMITS = {"rate_per_second": 10_000.0, "rate_burst": 100_000}
_ack_ids = itertools.count(1)


class RawSio:
    """Socket.IO v5 on a hand-made Engine.IO WebSocket: it reads only when asked to."""

    def __init__(self, ws: RawWS):
        self.ws = ws
        self.events: list[list] = []

    @classmethod
    async def open(cls, server, token: str, channels: list[str]) -> "RawSio":
        ws = await RawWS.open(server, EIO_WS)
        opcode, payload = await ws.frame()
        assert opcode == TEXT and payload.startswith(b"0{"), payload
        await ws.send(b"40" + json.dumps({"token": token, "channels": channels}).encode())
        opcode, payload = await ws.frame()
        assert payload.startswith(b'40{"sid"'), payload
        return cls(ws)

    async def packet(self, timeout: float = 5) -> str | None:
        """The next Engine.IO message (pings answered), or None at the end."""
        while True:
            f = await self.ws.frame(timeout)
            if f is None or f[0] == CLOSE:
                return None
            text = f[1].decode()
            if text == "2":
                await self.ws.send(b"3")
                continue
            return text

    async def call(self, event: str, data) -> dict:
        """Emit with an ack request; the ack's argument. Events read meanwhile are kept."""
        ack_id = str(next(_ack_ids))
        await self.ws.send(f"42{ack_id}{json.dumps([event, data])}".encode())
        while True:
            text = await self.packet()
            assert text is not None, "closed while waiting for an ack"
            if text.startswith("43" + ack_id + "["):
                return json.loads(text[2 + len(ack_id):])[0]
            if text.startswith("42["):
                self.events.append(json.loads(text[2:]))

    async def event(self, timeout: float = 5) -> list:
        if self.events:
            return self.events.pop(0)
        while True:
            text = await self.packet(timeout)
            assert text is not None, "closed while waiting for an event"
            if text.startswith("42["):
                return json.loads(text[2:])


class Polling:
    """Socket.IO v5 over Engine.IO long-polling, one request at a time, only when asked to."""

    def __init__(self, http: httpx.AsyncClient, sid: str):
        self.http = http
        self.sid = sid

    @property
    def params(self) -> dict:
        return {"EIO": "4", "transport": "polling", "sid": self.sid}

    @classmethod
    async def open(cls, http: httpx.AsyncClient, token: str, channels: list[str]) -> "Polling":
        r = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert r.status_code == 200 and r.text.startswith("0{"), r.text
        client = cls(http, json.loads(r.text[1:])["sid"])
        r = await http.post("/socket.io/", params=client.params,
                            content="40" + json.dumps({"token": token, "channels": channels}))
        assert r.status_code == 200, r.text
        assert any(p.startswith('40{"sid"') for p in await client.poll())
        return client

    async def poll(self) -> list[str]:
        """One long-poll GET: the packets it brings (pings answered)."""
        r = await self.http.get("/socket.io/", params=self.params, timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        packets = r.text.split("\x1e")
        if "2" in packets:
            await self.http.post("/socket.io/", params=self.params, content="3")
        return packets

    async def events(self, name: str, count: int) -> list:
        got = []
        with trio.fail_after(5):
            while len(got) < count:
                for p in await self.poll():
                    if p.startswith("42["):
                        event = json.loads(p[2:])
                        if event[0] == name:
                            got.append(event[1])
        return got


def sockchat_handler(server):
    """The sockchat namespace handler of a running server (to install test hooks on)."""
    engine = server.extra_gateway_stats["socketio"].engine
    return engine.app.__self__.handlers["/"]


def publisher_tasks(server, monkeypatch) -> set:
    """Record the task of every `Bus.publish` call (the store's commit path for messages)."""
    bus = server.core.bus
    tasks = set()
    publish = bus.publish

    def recording(*args, **kwargs):
        tasks.add(trio.lowlevel.current_task())
        return publish(*args, **kwargs)

    monkeypatch.setattr(bus, "publish", recording)
    return tasks


async def sama_login(server, nursery, login: str, password: str, device: str):
    client = await open_client(nursery, server, f"{login}/{device}")
    response = await client.ok("user_login", {"login": login, "password": password, "device_id": device})
    client.user_id = response["user"]["_id"]
    return client


async def wait_until(predicate, timeout: float = 5) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.005)


# -- (a) slow consumers ------------------------------------------------------------------------------

@pytest.mark.deadline(60)
@pytest.mark.parametrize("transport", ["websocket", "polling"])
@pytest.mark.config(dialects=BOTH, limits={
    "outbound_queue": 8, "heartbeat_interval": 30, "idle_timeout": 60, "max_message_length": 200_000,
    "max_ws_frame": 1 << 20, "max_http_body": 1 << 20, **OPEN_LIMITS})
async def test_engineio_socket_that_stops_reading_is_dropped_as_a_slow_consumer(server, http, monkeypatch,
                                                                              transport):
    bus = server.core.bus
    stuck_user, sender = await new_user(http, "stuck"), await new_user(http, "sender")
    cid = await create_channel(http, sender, stuck_user)
    if transport == "websocket":
        stuck = await RawSio.open(server, stuck_user.token, [cid])  # then never reads
        content = "x" * 60_000  # big frames fill the kernel buffers quickly
    else:
        stuck = await Polling.open(http, stuck_user.token, [cid])  # then never polls
        content = "x" * 100
    await wait_until(lambda: bus.connections(int(stuck_user.id)) == 1)
    engine = server.extra_gateway_stats["socketio"].engine
    (session,) = [s for s in engine.sessions.values()]
    writer = await RawSio.open(server, sender.token, [cid])

    # A publisher never waits: time each publish while the stuck socket's queue fills.
    publish, publish_times = bus.publish, []

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return publish(*args, **kwargs)
        finally:
            publish_times.append(time.perf_counter() - t0)

    monkeypatch.setattr(bus, "publish", timed)
    acks, sent = [], 0
    with trio.fail_after(30):
        while not session.closed and sent < 2000:
            t0 = time.perf_counter()
            ack = await writer.call("message", {"content": content, "channel": cid})
            acks.append(time.perf_counter() - t0)
            assert ack["ok"], ack
            sent += 1
        for _ in range(20):  # and afterwards, as before
            t0 = time.perf_counter()
            assert (await writer.call("message", {"content": "after", "channel": cid}))["ok"]
            acks.append(time.perf_counter() - t0)

    assert session.closed and session.close_reason == "slow consumer", (sent, session.close_reason)
    # Dropped by the bus as a slow consumer, as a SAMA WebSocket is: its feed is gone at once.
    assert bus.dropped_slow == 1, f"the bus saw {bus.dropped_slow} slow consumers after {sent} sends"
    assert bus.connections(int(stuck_user.id)) == 0
    assert max(acks) < 1.0, f"an ack took {max(acks):.3f} s"
    assert max(publish_times) < 0.05, f"a publish took {max(publish_times) * 1000:.1f} ms"
    if transport == "websocket":
        # It reads the close frame (1013: try again later) after its backlog.
        code = None
        while (f := await stuck.ws.frame()) is not None:
            if f[0] == CLOSE:
                code = int.from_bytes(f[1][:2], "big")
                break
        assert code == 1013
    else:
        r = await http.get("/socket.io/", params=stuck.params)
        assert r.text == "1" or r.status_code == 400, (r.status_code, r.text)  # close packet, or gone
    await stuck_close(stuck)
    await writer.ws.stream.aclose()


async def stuck_close(stuck) -> None:
    if isinstance(stuck, RawSio):
        await stuck.ws.stream.aclose()


# -- (b) rendering on the receiving connection's task ----------------------------------------------------

@pytest.mark.deadline(40)
@pytest.mark.config(dialects=BOTH, limits={"heartbeat_interval": 30, **OPEN_LIMITS})
async def test_events_are_rendered_on_the_receiving_connections_tasks(server, http, nursery, monkeypatch):
    published_on = publisher_tasks(server, monkeypatch)
    rendered_on: list[tuple[str, object]] = []
    handler = sockchat_handler(server)
    packets_for = handler.packets_for

    def recording_packets_for(*args):
        rendered_on.append(("sockchat", trio.lowlevel.current_task()))
        return packets_for(*args)

    monkeypatch.setattr(handler, "packets_for", recording_packets_for)
    render = SamaSession.render

    def recording_render(self, envelope):
        rendered_on.append(("sama", trio.lowlevel.current_task()))
        return render(self, envelope)

    monkeypatch.setattr(SamaSession, "render", recording_render)

    alice = await new_user(http, "alice", password="alice-pw")
    bob = await new_user(http, "bob")
    cid = await create_channel(http, bob, alice)
    ws = await RawSio.open(server, alice.token, [cid])
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as polling_http:
        polling = await Polling.open(polling_http, alice.token, [cid])
        sama = await sama_login(server, nursery, "alice", "alice-pw", "d1")
        sender = await RawSio.open(server, bob.token, [cid])
        rendered_on.clear()

        for i in range(3):
            assert (await sender.call("message", {"content": f"hi {i}", "channel": cid}))["ok"]
        for i in range(3):
            assert (await ws.event())[1]["content"] == f"hi {i}"
            assert (await sama.wait_for("message"))["message"]["body"] == f"hi {i}"
        assert [m["content"] for m in await polling.events("message", 3)] == ["hi 0", "hi 1", "hi 2"]

    assert {dialect for dialect, _ in rendered_on} == {"sockchat", "sama"}
    assert published_on, "nothing was published?"
    on_publisher = [(d, t.name) for d, t in rendered_on if t in published_on]
    assert not on_publisher, f"rendered on the publisher's task: {on_publisher}"
    # Each receiving connection renders on its own task(s): the sockchat WebSocket's pump, the
    # long-poll GETs, the SAMA connection's writer.
    assert len({t for _, t in rendered_on}) >= 3
    await ws.ws.stream.aclose()
    await sender.ws.stream.aclose()


# -- (c) echo suppression, once, in the bus -----------------------------------------------------------------

async def test_bus_skips_the_subscription_with_the_events_origin():
    bus = Bus()
    sender = bus.subscribe(1, origin="conn-a")
    other_device = bus.subscribe(1, origin="conn-b")
    untagged = bus.subscribe(1)
    peer = bus.subscribe(2, origin="conn-c")
    env = bus.publish("hello", [1, 2], origin="conn-a")
    assert sender.receive_nowait() is None
    assert other_device.receive_nowait() is env
    assert untagged.receive_nowait() is env
    assert peer.receive_nowait() is env
    assert bus.delivered == 3
    bus.publish("no origin", [1])
    assert sender.receive_nowait().event == "no origin"


@pytest.mark.deadline(40)
@pytest.mark.config(dialects=BOTH, limits={"heartbeat_interval": 30, **OPEN_LIMITS})
async def test_sender_does_not_get_its_own_event_its_other_connections_do(server, http, nursery):
    """Alice has two sockchat sockets (WebSocket, polling) and two SAMA connections; Bob one of each.
    Whichever connection sends, it alone does not get the event; and the bus never queued it there."""
    bus = server.core.bus
    alice = await new_user(http, "alice", password="alice-pw")
    bob = await new_user(http, "bob", password="bob-pw")
    cid = await create_channel(http, bob, alice)
    sama_a1 = await sama_login(server, nursery, "alice", "alice-pw", "d1")
    sama_a2 = await sama_login(server, nursery, "alice", "alice-pw", "d2")
    sama_b = await sama_login(server, nursery, "bob", "bob-pw", "d1")
    async with (sio_client(server, alice, [cid]) as sock_a1,
                sio_client(server, alice, [cid], transports=["polling"]) as sock_a2,
                sio_client(server, bob, [cid]) as sock_b):
        await wait_until(lambda: bus.connections(int(alice.id)) == 4 and bus.connections(int(bob.id)) == 2)

        # From a sockchat socket: 5 other connections get it, the sender does not.
        before = bus.delivered
        ack = await sock_a1.call("message", {"content": "from sockchat", "channel": cid})
        assert ack["ok"], ack
        assert (await sock_a2.wait_for("message"))["content"] == "from sockchat"
        assert (await sock_b.wait_for("message"))["content"] == "from sockchat"
        for sama in (sama_a1, sama_a2, sama_b):
            assert (await sama.wait_for("message"))["message"]["body"] == "from sockchat"
        await sock_a1.nothing(0.3)
        assert bus.delivered - before == 5, "the sending socket's own subscription was fed its event"

        # From a SAMA connection: the same.
        before = bus.delivered
        await sama_a1.send_message(cid, "from sama")
        assert (await sama_a2.wait_for("message"))["message"]["body"] == "from sama"
        assert (await sama_b.wait_for("message"))["message"]["body"] == "from sama"
        for sock in (sock_a1, sock_a2, sock_b):
            assert (await sock.wait_for("message"))["content"] == "from sama"
        await sama_a1.expect_no("message", 0.3)
        assert bus.delivered - before == 5, "the sending SAMA connection's own subscription was fed its event"


# -- pipelined sends ------------------------------------------------------------------------------------------

@pytest.mark.config(dialects=BOTH, limits={"heartbeat_interval": 30, **OPEN_LIMITS})
async def test_pipelined_sockchat_messages_are_acked_and_delivered_in_order(server, http):
    """A socket's `message` events do not wait for each other's commit; acks and deliveries keep
    the order the client sent them in, and so does the history."""
    alice, bob = await new_user(http, "alice"), await new_user(http, "bob")
    cid = await create_channel(http, alice, bob)
    sender = await RawSio.open(server, alice.token, [cid])
    receiver = await RawSio.open(server, bob.token, [cid])
    first = next(_ack_ids)
    ack_ids = [str(first + 1 + i) for i in range(40)]
    for _ in ack_ids:
        next(_ack_ids)
    frames = b"".join(client_frame(f'42{a}["message",{{"content":"m{i}","channel":"{cid}"}}]'.encode())
                      for i, a in enumerate(ack_ids))
    await sender.ws.stream.send_all(frames)  # all at once, without waiting for any ack
    acks = []
    while len(acks) < len(ack_ids):
        text = await sender.packet()
        assert text is not None
        if text.startswith("43"):
            acks.append(text)
    assert [a[2:2 + len(ack_ids[i])] for i, a in enumerate(acks)] == ack_ids
    data = [json.loads(a[2 + len(ack_ids[i]):])[0] for i, a in enumerate(acks)]
    assert all(d["ok"] for d in data)
    assert [d["data"]["content"] for d in data] == [f"m{i}" for i in range(40)]
    ids = [int(d["data"]["id"]) for d in data]
    assert ids == sorted(ids)
    got = [(await receiver.event())[1]["content"] for _ in range(40)]
    assert got == [f"m{i}" for i in range(40)]
    r = await http.get("/messages", params={"channel_id": cid}, headers=alice.auth)
    assert [m["content"] for m in r.json()["messages"]][-40:] == [f"m{i}" for i in range(40)]
    await sender.ws.stream.aclose()
    await receiver.ws.stream.aclose()
