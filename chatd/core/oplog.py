"""The operations log: events a user missed because none of their devices was connected.

Written in the same transaction as the change that caused the event, for
every member of the audience who is offline at that moment; read back by
clients on reconnect; pruned after `retention.oplog_days`.
"""

import logging

import msgspec

from ..store import tables as T
from ..store.lmdb import Store, Txn, encode, undecodable
from .bus import Bus
from .errors import Unavailable
from .events import Event, decode_event
from .ids import lowest_id_at

log = logging.getLogger("chatd.oplog")


OP = T.useridopid_op


class Delivery:
    """A committed event on its way out: who hears it, and whom the write already logged it for."""

    __slots__ = ("event", "audience", "op_id", "logged")

    def __init__(self, event: Event, audience, op_id: int, logged: frozenset[int]):
        self.event = event
        self.audience = audience
        self.op_id = op_id
        self.logged = logged


class OpLog:
    def __init__(self, store: Store, bus: Bus):
        self.store = store
        self.bus = bus

    def record_txn(self, txn: Txn, op_id: int, event: Event, audience) -> Delivery:
        """In the write that caused `event`: log it for every member of `audience` with no live
        connection now, durably with the write."""
        online = self.bus.online
        offline = [uid for uid in audience if not online(uid)]
        if offline:
            value = encode(msgspec.to_builtins(event))
            for uid in offline:
                txn.put_encoded(OP, OP.key(uid, op_id), value)
        return Delivery(event, audience, op_id, frozenset(offline))

    def publish(self, delivery: Delivery, *, origin=None) -> None:
        """After the commit: publish to whoever is connected, and log it for those of the audience
        whose last connection closed since the write decided (they hear it neither way otherwise).
        The write's decision stands; only the users it found online are looked at again."""
        self.bus.publish(delivery.event, delivery.audience, origin=origin)
        online, logged = self.bus.online, delivery.logged
        missed = [uid for uid in delivery.audience if uid not in logged and not online(uid)]
        if missed:
            value = encode(msgspec.to_builtins(delivery.event))
            op_id = delivery.op_id
            try:
                self.store.submit(lambda txn: [txn.put_encoded(OP, OP.key(uid, op_id), value) for uid in missed])
            except Unavailable:
                log.warning("op log entry not written: the store is closing",
                            extra={"fields": {"op_id": op_id, "users": len(missed)}})

    def entries(self, user_id: int, *, after_ms: int | None = None, before_ms: int | None = None,
             limit: int = 100) -> list[tuple[int, Event]]:
        """Entries after `after_ms` (oldest first) or before `before_ms` (newest first)."""
        prefix = OP.prefix(user_id)
        out = []
        with self.store.read() as txn:
            if after_ms is not None:
                rows = txn.scan(OP, prefix=prefix, start=OP.key(user_id, lowest_id_at(after_ms + 1)),
                                limit=limit)
            else:
                rows = txn.scan(OP, prefix=prefix, stop=OP.key(user_id, lowest_id_at(before_ms)),
                                reverse=True, limit=limit)
            for key, value in rows:
                try:
                    event = decode_event(value)
                except msgspec.ValidationError as e:
                    undecodable(OP.name, key, e)
                    continue
                out.append((OP.parts(key)[1], event))
        return out

    async def prune(self, older_than_ms: int, *, batch: int = 5000) -> int:
        """Delete entries older than `older_than_ms`, a batch per transaction."""
        bound = lowest_id_at(older_than_ms)

        def prune_txn(txn: Txn) -> int:
            doomed = []
            for key, _ in txn.scan_raw(OP):
                if OP.parts(key)[1] < bound:
                    doomed.append(key)
                    if len(doomed) >= batch:
                        break
            for key in doomed:
                txn.delete(OP, key)
            return len(doomed)

        total = 0
        while True:
            n = await self.store.write(prune_txn)
            total += n
            if n < batch:
                return total

    def forget_user_txn(self, txn: Txn, user_id: int) -> None:
        for k, _ in list(txn.scan_raw(OP, prefix=OP.prefix(user_id))):
            txn.delete(OP, k)
