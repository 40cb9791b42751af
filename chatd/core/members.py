"""Who is in a channel: member rows, a user's channel list, and `audience(channel)`.

Every membership change goes through `add_txn`/`remove_txn`, which advance the
channel's "audience" generation with the commit. `audience_txn` answers from an
in-memory copy kept under that generation, so a send does not scan member rows:
the copy is exact for every acknowledged write (see `Store.generation`), and a
write batch that changed the channel itself reads the rows again.
"""

from ..store import tables as T
from ..store.lmdb import Store, Txn
from . import access
from .cache import ByteLRU
from .models import Member

MEMBER = T.chanuserid_member
READ = T.chanuserid_read
MINE = T.useridchanid_
AUDIENCE = "audience"  # the generation name of a channel's membership
ENTRY_BYTES, MEMBER_BYTES = 200, 36


class Members:
    def __init__(self, store: Store, cache_bytes: int):
        self.store = store
        self._audience = ByteLRU(cache_bytes)  # cid → (generation, tuple of user ids)

    member_txn = staticmethod(access.member_txn)

    @staticmethod
    def scan_txn(txn: Txn, cid: int) -> list[int]:
        return [uid for _, uid in txn.keys(MEMBER, prefix=MEMBER.prefix(cid))]

    def audience_txn(self, txn: Txn, cid: int) -> tuple[int, ...]:
        """The channel's members, in user id order."""
        prefix = MEMBER.prefix(cid)
        if txn.touched(AUDIENCE, prefix):
            return tuple(self.scan_txn(txn, cid))
        generation = self.store.generation(AUDIENCE, prefix)
        hit = self._audience.get(cid)
        if hit is not None and hit[0] == generation:
            return hit[1]
        members = tuple(self.scan_txn(txn, cid))
        self._audience.put(cid, (generation, members), ENTRY_BYTES + MEMBER_BYTES * len(members))
        return members

    def audience(self, cid: int) -> tuple[int, ...]:
        with self.store.read() as txn:
            return self.audience_txn(txn, cid)

    @staticmethod
    def channel_ids_txn(txn: Txn, user_id: int) -> list[int]:
        return [cid for _, cid in txn.keys(MINE, prefix=MINE.prefix(user_id))]

    def channel_ids(self, user_id: int) -> list[int]:
        with self.store.read() as txn:
            return self.channel_ids_txn(txn, user_id)

    def contacts_of(self, user_id: int) -> set[int]:
        """Everyone who shares a channel with the user (the audience of profile changes)."""
        out = {user_id}
        with self.store.read() as txn:
            for cid in self.channel_ids_txn(txn, user_id):
                out.update(self.audience_txn(txn, cid))
        return out

    @staticmethod
    def read_mark_txn(txn: Txn, cid: int, user_id: int) -> int:
        """The highest message id the member has read (0: none)."""
        return txn.get(READ, READ.key(cid, user_id)) or 0

    @staticmethod
    def set_read_mark_txn(txn: Txn, cid: int, user_id: int, mid: int) -> None:
        txn.put(READ, READ.key(cid, user_id), mid)

    @staticmethod
    def add_txn(txn: Txn, cid: int, user_id: int, now: int) -> None:
        txn.put(MEMBER, MEMBER.key(cid, user_id), Member(joined_at=now))
        txn.put(MINE, MINE.key(user_id, cid))
        txn.bump(AUDIENCE, MEMBER.prefix(cid))

    @staticmethod
    def remove_txn(txn: Txn, cid: int, user_id: int) -> None:
        txn.delete(MEMBER, MEMBER.key(cid, user_id))
        txn.delete(READ, READ.key(cid, user_id))
        txn.delete(MINE, MINE.key(user_id, cid))
        txn.bump(AUDIENCE, MEMBER.prefix(cid))
