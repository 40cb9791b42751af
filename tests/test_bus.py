"""The event bus (chatd/core/bus.py): bounded fan-out, slow-consumer drops, positions, presence."""

import pytest
import trio

from chatd.core.bus import Bus, Dropped, Envelope


async def test_slow_subscriber_is_dropped_and_others_get_everything():
    bus = Bus()
    drops = []
    slow = bus.subscribe(1, maxlen=4, on_drop=drops.append)
    fast = bus.subscribe(2, maxlen=4)
    also_fast = bus.subscribe(1, maxlen=100)  # the same user on another device, reading
    got_fast, got_other = [], []
    for i in range(50):
        bus.publish({"i": i}, [1, 2])
        got_fast.append(fast.receive_nowait())
        got_other.append(also_fast.receive_nowait())

    assert slow.dropped is not None and slow.dropped.startswith("slow consumer")
    assert drops == [slow.dropped]
    assert bus.dropped_slow == 1
    assert [e.event["i"] for e in got_fast] == list(range(50))
    assert [e.event["i"] for e in got_other] == list(range(50))
    # The dropped subscriber still reads what was queued before the drop, then learns why.
    queued = [await slow.receive() for _ in range(4)]
    assert [e.event["i"] for e in queued] == [0, 1, 2, 3]
    with pytest.raises(Dropped) as e:
        await slow.receive()
    assert e.value.reason.startswith("slow consumer")
    assert bus.connections(1) == 1 and bus.subscriber_count == 2
    # 50 to `fast`, 50 to `also_fast`, 4 to `slow` before it overflowed.
    assert bus.delivered == 104


async def test_positions_increase_and_audience_is_respected():
    bus = Bus()
    a = bus.subscribe(1)
    b = bus.subscribe(2)
    envs = [bus.publish(n, [1] if n % 2 else [1, 2]) for n in range(10)]
    assert [e.position for e in envs] == list(range(1, 11))
    assert bus.position == 10
    got_a = [a.receive_nowait() for _ in range(10)]
    assert [e.position for e in got_a] == list(range(1, 11))
    assert a.receive_nowait() is None
    got_b = []
    while (env := b.receive_nowait()) is not None:
        got_b.append(env.event)
    assert got_b == [0, 2, 4, 6, 8]
    # Nobody subscribed: still a new position, delivered nowhere.
    assert bus.publish("x", [99]).position == 11


async def test_receive_waits_for_a_publish():
    bus = Bus()
    sub = bus.subscribe(7)
    out = []

    async def reader():
        out.append(await sub.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.sleep(0.01)
        bus.publish("hello", [7], origin="conn-1")
    assert out[0].event == "hello" and out[0].origin == "conn-1"


async def test_presence_hooks_on_first_subscribe_and_last_unsubscribe():
    bus = Bus()
    seen = []
    bus.presence_hooks.append(lambda uid, online: seen.append((uid, online)))
    s1 = bus.subscribe(5)
    s2 = bus.subscribe(5)
    assert seen == [(5, True)] and bus.online(5) and bus.connections(5) == 2
    s1.close()
    assert seen == [(5, True)]
    s1.close()  # closing twice changes nothing
    with s2:
        pass
    assert seen == [(5, True), (5, False)] and not bus.online(5)
    bus.subscribe(5)
    bus.subscribe(5)
    bus.drop_user(5, "logged out everywhere")
    assert seen == [(5, True), (5, False), (5, True), (5, False)]
    assert bus.dropped_slow == 0


async def test_drop_user_closes_every_subscription_with_reason():
    bus = Bus()
    subs = [bus.subscribe(3) for _ in range(3)]
    bus.drop_user(3, "account deleted")
    for s in subs:
        with pytest.raises(Dropped) as e:
            await s.receive()
        assert e.value.reason == "account deleted"
    assert bus.subscriber_count == 0


async def test_into_channel_subscription_reports_drop():
    bus = Bus()
    send, recv = trio.open_memory_channel(2)
    drops = []
    sub = bus.subscribe(1, into=send, on_drop=drops.append)
    for i in range(5):
        bus.publish(i, [1])
    assert drops and drops[0].startswith("slow consumer")
    assert sub.dropped == drops[0]
    assert [recv.receive_nowait().event for _ in range(2)] == [0, 1]
    assert not bus.online(1)


def test_envelope_rendered_caches_per_key():
    calls = []

    def render(tag):
        def fn(event):
            calls.append(tag)
            return f"{tag}:{event}"
        return fn

    env = Envelope(1, "ev")
    assert env.rendered("sama", render("sama")) == "sama:ev"
    assert env.rendered("sama", render("sama-again")) == "sama:ev"
    assert env.rendered("revolt", render("revolt")) == "revolt:ev"
    assert env.rendered(("revolt", "v2"), render("revolt2")) == "revolt2:ev"
    assert env.rendered("revolt", render("x")) == "revolt:ev"
    assert calls == ["sama", "revolt", "revolt2"]
