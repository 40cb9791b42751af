"""How users stand to each other: one row per ordered pair (`useridotherid_rel`), no row = "none".

Blocking is the part every dialect uses today: `block(a, b)` makes a's row for b
"blocked" and b's row for a "blocked_by" (unless b blocks a too, which stays
"blocked"). A blocked user cannot message the blocker privately, add them to
channels, or see their activity. Friend requests (friend / outgoing / incoming)
live in the same rows.
"""

from ..store import tables as T
from ..store.lmdb import Store, Txn
from .clock import now_ms
from .errors import Invalid, NotFound
from .models import Relationship

REL = T.useridotherid_rel


class Relationships:
    def __init__(self, store: Store):
        self.store = store

    @staticmethod
    def status_txn(txn: Txn, user_id: int, other: int) -> str:
        rel = txn.get(REL, REL.key(user_id, other))
        return rel.status if rel is not None else "none"

    @staticmethod
    def blocks_txn(txn: Txn, blocker: int, blocked: int) -> bool:
        rel = txn.get(REL, REL.key(blocker, blocked))
        return rel is not None and rel.status == "blocked"

    def blocks(self, blocker: int, blocked: int) -> bool:
        with self.store.read() as txn:
            return self.blocks_txn(txn, blocker, blocked)

    def blocked_by(self, user_id: int) -> list[int]:
        """The users `user_id` blocks."""
        with self.store.read() as txn:
            return [other for (_, other), rel in
                    ((REL.parts(k), v) for k, v in txn.scan(REL, prefix=REL.prefix(user_id)))
                    if rel.status == "blocked"]

    @staticmethod
    def _set_txn(txn: Txn, a: int, b: int, status: str, now: int) -> None:
        if status == "none":
            txn.delete(REL, REL.key(a, b))
        else:
            txn.put(REL, REL.key(a, b), Relationship(status=status, updated_at=now))

    async def block(self, user_id: int, ids: list[int]) -> None:
        if user_id in ids:
            raise Invalid("you cannot block yourself", field="ids")
        now = now_ms()

        def block_txn(txn: Txn) -> None:
            for uid in ids:
                if not txn.exists(T.userid_user, T.userid_user.key(uid)):
                    raise NotFound("user not found", kind="user", id=uid)
                self._set_txn(txn, user_id, uid, "blocked", now)
                if self.status_txn(txn, uid, user_id) != "blocked":
                    self._set_txn(txn, uid, user_id, "blocked_by", now)

        await self.store.write(block_txn)

    async def unblock(self, user_id: int, ids: list[int]) -> None:
        now = now_ms()

        def unblock_txn(txn: Txn) -> None:
            for uid in ids:
                if self.status_txn(txn, user_id, uid) != "blocked":
                    continue
                theirs = self.status_txn(txn, uid, user_id)
                self._set_txn(txn, user_id, uid, "blocked_by" if theirs == "blocked" else "none", now)
                if theirs == "blocked_by":
                    self._set_txn(txn, uid, user_id, "none", now)

        await self.store.write(unblock_txn)

    def forget_user_txn(self, txn: Txn, user_id: int) -> None:
        for key, _ in list(txn.scan_raw(REL, prefix=REL.prefix(user_id))):
            other = REL.parts(key)[1]
            txn.delete(REL, key)
            txn.delete(REL, REL.key(other, user_id))
