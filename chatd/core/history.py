"""Reading messages: history pages (the latest one cached), single messages, and the decode cache.

History caches are bounded in bytes by `limits.history_cache_mb` (shares of it):
- decoded messages kept by their stored bytes: a history page is mostly the same
  messages again, and decoding (cbor2 + convert) was a quarter of a page's cost.
  Keyed by the bytes, an entry can never be stale (an edited message is other bytes);
- each channel's latest page, under the store generation of its rows (see
  `Store.generation`): any durable write to them makes the entry stale.
"""

from ..store import tables as T
from ..store.lmdb import DECODE_ERRORS, Store, Txn, decode, undecodable
from . import access
from .cache import ByteLRU
from .errors import NotFound
from .ids import lowest_id_at
from .models import Message
from .views import hidden_check_txn, hides_any_txn

HISTORY = T.chanidmsgid_msg
WHERE = T.msgid_chanid
# A decoded message costs about three times its stored bytes, plus the objects of its fields.
DECODED_FACTOR, DECODED_BASE = 3, 400


def decoded_size(raw: bytes) -> int:
    return DECODED_FACTOR * len(raw) + DECODED_BASE


def message_not_found(mid: int) -> NotFound:
    return NotFound("message not found", kind="message", id=mid)


class History:
    def __init__(self, store: Store, decoded_bytes: int, latest_bytes: int):
        self.store = store
        self._decoded = ByteLRU(decoded_bytes)  # stored bytes → Message
        self._latest = ByteLRU(latest_bytes)  # cid → (generation, limit, page)
        store.watch(HISTORY, 8)

    def history(self, viewer: int, cid: int, *, limit: int = 50, after_ms: int | None = None,
                before_ms: int | None = None, before_id: int | None = None) -> list[Message]:
        """Up to `limit` messages, newest first, skipping those the viewer deleted for themself.

        With `after_ms`, the oldest `limit` messages after that time, oldest first.
        """
        prefix = HISTORY.prefix(cid)
        out = []
        with self.store.read() as txn:
            access.require(txn, viewer, cid, access.READ)
            if after_ms is None and before_ms is None and before_id is None and not hides_any_txn(txn, viewer):
                return self._latest_txn(txn, cid, limit)
            if after_ms is not None:
                rows = txn.scan_raw(HISTORY, prefix=prefix, start=HISTORY.key(cid, lowest_id_at(after_ms + 1)))
            else:
                stop = None
                if before_ms is not None:
                    stop = HISTORY.key(cid, lowest_id_at(before_ms))
                if before_id is not None:
                    stop = min(stop or HISTORY.key(cid, T.MAX_U64), HISTORY.key(cid, before_id))
                rows = txn.scan_raw(HISTORY, prefix=prefix, stop=stop, reverse=True)
            hidden = hidden_check_txn(txn, viewer)
            for key, raw in rows:
                if hidden(key):
                    continue
                msg = self.decode(key, raw)
                if msg is None:
                    continue
                out.append(msg)
                if len(out) >= limit:
                    break
        return out

    def _latest_txn(self, txn: Txn, cid: int, limit: int) -> list[Message]:
        """The newest `limit` messages, served from the cache while the channel is unchanged.

        The generation is read inside the read transaction, so the page read with it is at
        least as new as it."""
        prefix = HISTORY.prefix(cid)
        generation = self.store.generation(HISTORY, prefix)
        hit = self._latest.get(cid)
        # a cached page shorter than its limit holds the whole channel
        if hit is not None and hit[0] == generation and (limit <= hit[1] or len(hit[2]) < hit[1]):
            return hit[2][:limit]
        page, size = [], 0
        for key, raw in txn.scan_raw(HISTORY, prefix=prefix, reverse=True):
            msg = self.decode(key, raw)
            if msg is not None:
                page.append(msg)
                size += decoded_size(raw)
                if len(page) >= limit:
                    break
        self._latest.put(cid, (generation, limit, page), size)
        return page[:]

    def decode(self, key: bytes, raw: bytes) -> Message | None:
        """The stored message, or None (logged) if it cannot be decoded: one bad record never
        fails a whole page."""
        msg = self._decoded.get(raw)
        if msg is None:
            try:
                msg = decode(raw, Message)
            except DECODE_ERRORS as e:
                undecodable(HISTORY.name, key, e)
                return None
            self._decoded.put(raw, msg, decoded_size(raw))
        return msg

    @staticmethod
    def get_txn(txn: Txn, viewer: int, mid: int, need: int) -> tuple[Message, access.Granted]:
        """A message the viewer may see, with the viewer's access to its channel (`need`)."""
        cid = txn.get(WHERE, WHERE.key(mid)) if 0 < mid <= T.MAX_U64 else None
        if cid is None:
            raise message_not_found(mid)
        try:
            granted = access.require(txn, viewer, cid, need)
        except NotFound:
            raise message_not_found(mid) from None
        msg = txn.get(HISTORY, HISTORY.key(cid, mid))
        if msg is None:
            raise message_not_found(mid)
        return msg, granted
