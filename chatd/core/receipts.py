"""Read state: each member's read watermark, marking messages read, and who has read what.

Reading a message also reads the ones before it. Authors hear (MessagesRead)
which of their messages a member read.
"""


from ..store import tables as T
from ..store.lmdb import Store, Txn
from . import access
from .cache import ByteLRU
from .errors import Invalid, NotFound
from .events import MessagesRead
from .ids import Snowflakes
from .oplog import OpLog

HISTORY = T.chanidmsgid_msg
READ = T.chanuserid_read
MAX_BATCH_IDS = 100
MARK_BYTES = 120  # one member's read mark in a cached dict


class Receipts:
    def __init__(self, store: Store, ids: Snowflakes, oplog: OpLog, cache_bytes: int):
        self.store = store
        self.ids = ids
        self.oplog = oplog
        self._marks = ByteLRU(cache_bytes)  # cid → (generation, marks)
        store.watch(READ, 8)

    def read_marks(self, cid: int) -> dict[int, int]:
        """Each member's read watermark: the highest message id they have read."""
        prefix = READ.prefix(cid)
        hit = self._marks.get(cid)
        # Unchanged since cached: no acknowledged write is missing (acks follow the generation's bump).
        if hit is not None and hit[0] == self.store.generation(READ, prefix):
            return dict(hit[1])
        with self.store.read() as txn:
            generation = self.store.generation(READ, prefix)
            marks = {READ.parts(key)[1]: mark for key, mark in txn.scan(READ, prefix=prefix)}
        self._marks.put(cid, (generation, marks), MARK_BYTES * len(marks))
        return dict(marks)

    def read_flags(self, cid: int, msgs) -> list[bool]:
        """For each message, whether someone other than its author has read it."""
        marks = self.read_marks(cid)
        best: dict[int, int] = {}  # author → the furthest anyone else has read
        flags = []
        for msg in msgs:
            upto = best.get(msg.author_id)
            if upto is None:
                upto = best[msg.author_id] = max((v for u, v in marks.items() if u != msg.author_id), default=0)
            flags.append(msg.id <= upto)
        return flags

    async def mark_read(self, actor: int, cid: int, ids: list[int] | None = None) -> list[int]:
        """Mark messages read (all unread ones when `ids` is None); tell their authors."""
        if ids is not None and len(ids) > MAX_BATCH_IDS:
            raise Invalid(f"at most {MAX_BATCH_IDS} ids", field="ids")
        op_id = self.ids.next()

        def read_txn(txn: Txn):
            if access.require(txn, actor, cid, access.READ).member is None:
                return []  # not a member (e.g. a space channel): no read mark to move
            last_read = txn.get(READ, READ.key(cid, actor)) or 0
            for mid in ids or ():
                if not txn.exists(HISTORY, HISTORY.key(cid, mid)):
                    raise NotFound("message not found", kind="message", id=mid)
            start = HISTORY.key(cid, last_read + 1)
            if ids is None:
                rows = txn.scan(HISTORY, prefix=HISTORY.prefix(cid), start=start)
            else:
                wanted = [m for m in ids if m > last_read]
                if not wanted:
                    return []
                rows = txn.scan(HISTORY, prefix=HISTORY.prefix(cid), start=start,
                                stop=HISTORY.key(cid, max(wanted) + 1))
            newly = [(m.id, m.author_id) for _, m in rows if m.author_id != actor]
            if not newly:
                return []
            top = max(mid for mid, _ in newly)
            txn.put(READ, READ.key(cid, actor), top)
            by_author: dict[int, list[int]] = {}
            for mid, author in newly:
                by_author.setdefault(author, []).append(mid)
            return [self.oplog.record_txn(txn, op_id, MessagesRead(cid=cid, ids=tuple(mids), reader_id=actor),
                                          (author,))
                    for author, mids in by_author.items()]

        deliveries = await self.store.write(read_txn)
        for delivery in deliveries:
            self.oplog.publish(delivery)
        return [mid for d in deliveries for mid in d.event.ids]
