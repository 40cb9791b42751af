"""The operations log: events a user missed because none of their devices was connected.

Written in the same transaction as the change that caused the event, for
every member of the audience who is offline at that moment; read back by
clients on reconnect; pruned after `retention.oplog_days`.
"""

import logging

import msgspec

from ..store import keys
from ..store.lmdb import Store, Txn, undecodable
from .bus import Bus
from .errors import Unavailable
from .events import Event, decode_event
from .ids import lowest_id_at

log = logging.getLogger("chatd.oplog")


class OpLog:
    def __init__(self, store: Store, bus: Bus):
        self.store = store
        self.bus = bus

    def log_offline_txn(self, txn: Txn, op_id: int, event: Event, audience) -> list[int]:
        """Append `event` to the log of every user in `audience` with no live connection."""
        offline = [uid for uid in audience if not self.bus.online(uid)]
        if offline:
            value = msgspec.to_builtins(event)
            for uid in offline:
                txn.put("useridopid_op", keys.pair(uid, op_id), value)
        return offline

    def publish(self, event: Event, audience, op_id: int, *, origin=None) -> None:
        """Publish a committed event, then log it for whoever in the audience is offline by now
        and has no entry for it yet.

        `log_offline_txn` decided who was offline inside the write (in the writer thread); a
        user whose last connection closed between that moment and this publish would
        otherwise get neither the live event nor the log entry.
        """
        audience = list(audience)
        self.bus.publish(event, audience, origin=origin)
        missed = [uid for uid in audience if not self.bus.online(uid)]
        if not missed:
            return
        with self.store.read() as txn:
            missed = [uid for uid in missed if not txn.exists("useridopid_op", keys.pair(uid, op_id))]
        if missed:
            value = msgspec.to_builtins(event)
            try:
                self.store.submit(lambda txn: [txn.put("useridopid_op", keys.pair(uid, op_id), value)
                                               for uid in missed])
            except Unavailable:
                log.warning("op log entry not written: the store is closing",
                            extra={"fields": {"op_id": op_id, "users": len(missed)}})

    def entries(self, user_id: int, *, after_ms: int | None = None, before_ms: int | None = None,
             limit: int = 100) -> list[tuple[int, Event]]:
        """Entries after `after_ms` (oldest first) or before `before_ms` (newest first)."""
        prefix = keys.u64(user_id)
        out = []
        with self.store.read() as txn:
            if after_ms is not None:
                rows = txn.scan("useridopid_op", prefix=prefix, start=keys.pair(user_id, lowest_id_at(after_ms + 1)),
                                limit=limit)
            else:
                rows = txn.scan("useridopid_op", prefix=prefix, stop=keys.pair(user_id, lowest_id_at(before_ms)),
                                reverse=True, limit=limit)
            for key, value in rows:
                try:
                    event = decode_event(value)
                except msgspec.ValidationError as e:
                    undecodable("useridopid_op", key, e)
                    continue
                out.append((keys.read_pair(key)[1], event))
        return out

    async def prune(self, older_than_ms: int, *, batch: int = 5000) -> int:
        """Delete entries older than `older_than_ms`, a batch per transaction."""
        bound = lowest_id_at(older_than_ms)

        def prune_txn(txn: Txn) -> int:
            doomed = []
            for key, _ in txn.scan_raw("useridopid_op"):
                if keys.read_pair(key)[1] < bound:
                    doomed.append(key)
                    if len(doomed) >= batch:
                        break
            for key in doomed:
                txn.delete("useridopid_op", key)
            return len(doomed)

        total = 0
        while True:
            n = await self.store.write(prune_txn)
            total += n
            if n < batch:
                return total

    def forget_user_txn(self, txn: Txn, user_id: int) -> None:
        for k, _ in list(txn.scan_raw("useridopid_op", prefix=keys.u64(user_id))):
            txn.delete("useridopid_op", k)
