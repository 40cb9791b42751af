"""Who is online, when others were last active, and live updates for those who watch.

Online means "has at least one subscribed connection" (the bus knows). When a
user's last connection closes, the time is remembered and persisted in the
background; it is not worth a durable write on the connection path.
"""

import logging
from collections import Counter

import trio

from ..store import tables as T
from ..store.lmdb import Store, Txn
from .bus import Bus
from .clock import now_ms
from .events import PresenceChanged
from .relationships import Relationships

log = logging.getLogger("chatd.presence")


class Presence:
    def __init__(self, store: Store, bus: Bus, blocks: Relationships):
        self.store = store
        self.bus = bus
        self.blocks = blocks
        self._watchers: dict[int, Counter] = {}
        self._last: dict[int, int] = {}
        self._persist_send, self._persist_recv = trio.open_memory_channel(4096)
        bus.presence_hooks.append(self._changed)

    def last_activity_ms(self, user_id: int) -> int | None:
        """When the user was last online (ms), or None if there is no such user."""
        with self.store.read() as txn:
            if not txn.exists(T.userid_user, T.userid_user.key(user_id)):
                self._last.pop(user_id, None)  # nothing is remembered for ids that are no user
                return None
            if user_id in self._last:
                return self._last[user_id]
            value = txn.get(T.userid_lastactivity, T.userid_lastactivity.key(user_id))
            if value is None:
                value = txn.get(T.userid_user, T.userid_user.key(user_id)).updated_at
        self._last[user_id] = value
        return value

    def visible_to(self, viewer: int, user_id: int) -> bool:
        return not self.blocks.blocks(user_id, viewer)

    def status(self, viewer: int, user_id: int) -> str | int | None:
        """"online", seconds since last activity, or None when the viewer may not know
        (or there is no such user)."""
        if not self.visible_to(viewer, user_id):
            return None
        if self.bus.online(user_id):
            return "online"
        last = self.last_activity_ms(user_id)
        return None if last is None else max(0, (now_ms() - last) // 1000)

    def watch(self, viewer: int, user_id: int) -> None:
        self._watchers.setdefault(user_id, Counter())[viewer] += 1

    def unwatch(self, viewer: int, user_id: int) -> None:
        watchers = self._watchers.get(user_id)
        if watchers is None:
            return
        watchers[viewer] -= 1
        if watchers[viewer] <= 0:
            del watchers[viewer]
        if not watchers:
            del self._watchers[user_id]

    def _changed(self, user_id: int, online: bool) -> None:
        now = now_ms()
        self._last[user_id] = now
        if not online:
            try:
                self._persist_send.send_nowait((user_id, now))
            except trio.WouldBlock:
                pass  # the in-memory value stays right; only a restart would forget it
        watchers = self._watchers.get(user_id)
        if watchers:
            audience = [w for w in watchers if w != user_id and not self.blocks.blocks(user_id, w)]
            self.bus.publish(PresenceChanged(user_id=user_id, online=online, last_activity=now), audience)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with self._persist_recv:
            async for first in self._persist_recv:
                batch = [first]
                while True:
                    try:
                        batch.append(self._persist_recv.receive_nowait())
                    except trio.WouldBlock:
                        break

                def persist_txn(txn: Txn, batch=batch) -> None:
                    for uid, ms in batch:
                        if txn.exists(T.userid_user, T.userid_user.key(uid)):
                            txn.put(T.userid_lastactivity, T.userid_lastactivity.key(uid), ms)

                try:
                    await self.store.write(persist_txn)
                except Exception:
                    log.exception("could not persist last activity")

    def close(self) -> None:
        self._persist_send.close()
