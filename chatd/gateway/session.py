"""One client connection, whatever carries it: a reader, a writer and a heartbeat in one nursery.

A transport (raw WebSocket, Quart WebSocket, Engine.IO session) adapts to
`Transport`; a dialect supplies a `Handler` per connection. Everything sent
to the client — replies and bus events alike — goes through one bounded
outbound queue drained by the writer task, so frames never interleave and a
client that stops reading is disconnected instead of growing memory.
"""

import logging
from typing import Protocol

import trio

from ..config import LimitsConfig
from ..core.bus import Bus, Envelope, Subscription
from ..core.errors import RateLimited
from ..core.ratelimit import TokenBucket

log = logging.getLogger("chatd.gateway")

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013


class TransportClosed(Exception):
    pass


def contained(handler, what: str):
    """`handler(stream)` for `trio.serve_listeners`, wrapped so that nothing a connection raises
    (short of cancellation and KeyboardInterrupt, which are not per-connection) leaves it: an
    exception escaping a listener's handler would end the whole process. Counts and logs each."""

    async def serve(stream) -> None:
        try:
            await handler(stream)
        except Exception:
            contained.failures += 1
            log.exception("%s connection failed", what)
            try:
                with trio.move_on_after(1) as scope:
                    scope.shield = True
                    await stream.aclose()
            except Exception:
                pass

    return serve


contained.failures = 0  # connections whose failure was contained, all listeners together


class Transport(Protocol):
    async def receive(self) -> str | bytes: ...  # raises TransportClosed
    async def send(self, frames: list[str | bytes]) -> None: ...
    async def ping(self) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


class Handler(Protocol):
    """A dialect's side of one connection. Frames it queues are text: `str`, or `bytes` that are
    already UTF-8."""

    async def on_message(self, data: str | bytes) -> None: ...
    def render(self, envelope: Envelope) -> str | bytes | None: ...
    async def on_close(self) -> None: ...


class Connection:
    def __init__(self, transport: Transport, bus: Bus, limits: LimitsConfig, stats: "GatewayStats"):
        self.transport = transport
        self.bus = bus
        self.limits = limits
        self.stats = stats
        self.rate = TokenBucket(limits.rate_per_second, limits.rate_burst)
        self.subscription: Subscription | None = None
        self.close_code: int | None = None
        self._out_send, self._out_recv = trio.open_memory_channel(limits.outbound_queue)
        self._cancel = trio.CancelScope()
        self._last_seen = trio.current_time()

    # -- used by dialect handlers ---------------------------------------------------------

    def send(self, frame: str | bytes) -> None:
        """Queue one frame for the client (never blocks)."""
        try:
            self._out_send.send_nowait(frame)
        except trio.WouldBlock:
            self.close_soon(CLOSE_TRY_AGAIN, "slow consumer: outbound queue full")
        except trio.ClosedResourceError:
            pass

    def subscribe(self, user_id: int) -> Subscription:
        """Feed the user's bus events into this connection's outbound queue (the writer renders
        them); events this connection caused (`origin=` the connection) are not fed back."""
        if self.subscription is not None:
            self.subscription.close()
        self.subscription = self.bus.subscribe(
            user_id, into=self._out_send.clone(), on_drop=self._dropped, origin=self
        )
        return self.subscription

    def _dropped(self, reason: str) -> None:
        """The bus dropped our feed: a slow consumer may retry later; an ended session may not."""
        self.close_soon(CLOSE_TRY_AGAIN if reason.startswith("slow consumer") else CLOSE_POLICY, reason)

    def unsubscribe(self) -> None:
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None

    def check_rate(self) -> None:
        self.rate.take()

    def close_soon(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            if reason.startswith("slow consumer"):
                self.stats.slow_consumers += 1
        self._cancel.cancel()

    # -- the loop -----------------------------------------------------------------------------

    async def run(self, handler: Handler) -> None:
        self.stats.open += 1
        self.close_reason = ""
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, handler)
                    nursery.start_soon(self._heartbeat)
                    await self._reader(handler)
                    nursery.cancel_scope.cancel()
        except* TransportClosed:
            pass
        except* RateLimited:
            self.close_code = self.close_code or CLOSE_POLICY
            self.close_reason = self.close_reason or "rate limit exceeded"
        except* Exception:
            log.exception("connection failed")
            self.close_code = self.close_code or CLOSE_INTERNAL
            self.close_reason = self.close_reason or "internal error"
        finally:
            self.stats.open -= 1
            self.unsubscribe()
            self._out_send.close()
            with trio.CancelScope(shield=True):
                try:
                    await handler.on_close()
                except Exception:
                    log.exception("connection close handler failed")
                with trio.move_on_after(2):
                    await self.transport.close(self.close_code or CLOSE_NORMAL, self.close_reason)

    async def _reader(self, handler: Handler) -> None:
        while True:
            data = await self.transport.receive()
            self._last_seen = trio.current_time()
            await handler.on_message(data)

    async def _writer(self, handler: Handler) -> None:
        recv = self._out_recv
        while True:
            item = await recv.receive()
            batch = []
            while True:
                if isinstance(item, Envelope):
                    frame = handler.render(item)
                    if frame is not None:
                        batch.append(frame)
                else:
                    batch.append(item)
                if len(batch) >= 64:
                    break
                try:
                    item = recv.receive_nowait()
                except trio.WouldBlock:
                    break
            if batch:
                await self.transport.send(batch)
                self.stats.frames_sent += len(batch)

    async def _heartbeat(self) -> None:
        interval = self.limits.heartbeat_interval
        idle = self.limits.idle_timeout
        while True:
            await trio.sleep(min(interval, idle))
            if trio.current_time() - self._last_seen >= idle:
                self.close_soon(CLOSE_GOING_AWAY, "idle timeout")
                return
            with trio.move_on_after(idle):
                await self.transport.ping()
                self._last_seen = trio.current_time()


class GatewayStats:
    def __init__(self):
        self.open = 0
        self.accepted = 0
        self.frames_sent = 0
        self.slow_consumers = 0
