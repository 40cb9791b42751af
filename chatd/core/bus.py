"""Fan-out of domain events to connected sessions.

A session subscribes for one user id and gets a bounded queue. `publish`
never blocks: a subscriber whose queue is full is dropped with a reason (its
connection closes and the client catches up from storage on reconnect), so a
slow consumer can never hold up a sender. Every published event carries a
monotonically increasing stream position.

Each subscription feeds one connection's bounded queue, drained by that
connection's own writer, which renders what it takes: nothing is rendered on
the publisher's task (the store's commit path). A subscription may carry its
connection's `origin` tag; an event published with that origin is not queued
to it (no echo to the connection that caused it) — the one place that rule lives.

The bus is an interface with one in-process implementation; a cross-process
backend would carry the same envelopes between chatd processes.
"""

from collections.abc import Callable, Iterable
from typing import Any

import trio


class Dropped(Exception):
    """The subscription was closed by the bus; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Envelope:
    """One published event. Dialects cache their rendering in it so that an
    event is encoded once per dialect, not once per recipient."""

    __slots__ = ("position", "event", "origin", "_rendered")

    def __init__(self, position: int, event: Any, origin: Any = None):
        self.position = position
        self.event = event
        self.origin = origin
        self._rendered: dict = {}

    def rendered(self, key, render: Callable[[Any], Any]):
        try:
            return self._rendered[key]
        except KeyError:
            value = self._rendered[key] = render(self.event)
            return value


class Subscription:
    """A user's feed. By default it owns a bounded queue; a connection may instead pass the
    send side of its own bounded outbound queue (`into`: anything with trio's `send_nowait`, raising
    `trio.WouldBlock` when full) and an `on_drop` callback to learn it was dropped. `send_nowait`
    runs on the publisher's task: it must only queue, never render. `origin` is the connection's
    tag: events published with that origin are skipped."""

    __slots__ = ("bus", "user_id", "origin", "_send", "_recv", "dropped", "on_drop")

    def __init__(self, bus: "Bus", user_id: int, maxlen: int, into=None, on_drop=None, origin=None):
        self.bus = bus
        self.user_id = user_id
        self.origin = origin
        if into is None:
            self._send, self._recv = trio.open_memory_channel(maxlen)
        else:
            self._send, self._recv = into, None
        self.dropped: str | None = None
        self.on_drop: Callable[[str], None] | None = on_drop

    async def receive(self) -> Envelope:
        try:
            return await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise Dropped(self.dropped or "closed") from None

    def receive_nowait(self) -> Envelope | None:
        """The next queued envelope, or None when the queue is empty."""
        try:
            return self._recv.receive_nowait()
        except trio.WouldBlock:
            return None
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise Dropped(self.dropped or "closed") from None

    def close(self) -> None:
        self.bus._remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Bus:
    def __init__(self):
        self.position = 0
        self.delivered = 0
        self.dropped_slow = 0
        self._subs: dict[int, list[Subscription]] = {}
        # Called with (user_id, online) when a user's first subscription opens or last one closes.
        self.presence_hooks: list[Callable[[int, bool], None]] = []

    def subscribe(self, user_id: int, *, maxlen: int = 1024, into=None, on_drop=None,
                  origin: Any = None) -> Subscription:
        """A feed of the user's events; `origin` tags the connection (see `publish`)."""
        sub = Subscription(self, user_id, maxlen, into, on_drop, origin)
        subs = self._subs.setdefault(user_id, [])
        subs.append(sub)
        if len(subs) == 1:
            for hook in self.presence_hooks:
                hook(user_id, True)
        return sub

    def online(self, user_id: int) -> bool:
        return user_id in self._subs

    def connections(self, user_id: int) -> int:
        return len(self._subs.get(user_id, ()))

    @property
    def subscriber_count(self) -> int:
        return sum(len(v) for v in self._subs.values())

    def publish(self, event: Any, audience: Iterable[int], *, origin: Any = None) -> Envelope:
        """Queue `event` for every subscription of every user in `audience`.

        `origin` is an opaque tag of the sending connection: a subscription subscribed with the
        same tag (compared by identity) does not get the event — no echo to its own sender.
        """
        self.position += 1
        env = Envelope(self.position, event, origin)
        for user_id in audience:
            subs = self._subs.get(user_id)
            if not subs:
                continue
            for sub in list(subs) if len(subs) > 1 else subs:
                if origin is not None and sub.origin is origin:
                    continue
                try:
                    sub._send.send_nowait(env)
                    self.delivered += 1
                except trio.WouldBlock:
                    self.drop(sub, "slow consumer: outbound queue full")
                except trio.ClosedResourceError:
                    pass
        return env

    def drop(self, sub: Subscription, reason: str) -> None:
        if sub.dropped is None:
            sub.dropped = reason
            if reason.startswith("slow consumer"):
                self.dropped_slow += 1
        self._remove(sub)
        if sub.on_drop is not None:
            sub.on_drop(reason)

    def _remove(self, sub: Subscription) -> None:
        if sub._recv is not None:
            sub._send.close()
        subs = self._subs.get(sub.user_id)
        if subs and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._subs[sub.user_id]
                for hook in self.presence_hooks:
                    hook(sub.user_id, False)

    def drop_user(self, user_id: int, reason: str) -> None:
        """Close every subscription of a user (logged out everywhere, deleted)."""
        for sub in list(self._subs.get(user_id, ())):
            self.drop(sub, reason)
