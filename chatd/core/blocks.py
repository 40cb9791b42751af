"""Block lists: a blocked user cannot message you privately, add you to conversations,
or see your activity."""

from ..store import keys
from ..store.lmdb import Store, Txn
from .errors import Invalid, NotFound


class Blocks:
    def __init__(self, store: Store):
        self.store = store

    @staticmethod
    def blocks_txn(txn: Txn, blocker: int, blocked: int) -> bool:
        return txn.exists("useridblockedid_", keys.pair(blocker, blocked))

    def blocks(self, blocker: int, blocked: int) -> bool:
        with self.store.read() as txn:
            return self.blocks_txn(txn, blocker, blocked)

    def blocked_by(self, user_id: int) -> list[int]:
        with self.store.read() as txn:
            return [keys.read_pair(k)[1] for k, _ in txn.scan_raw("useridblockedid_", prefix=keys.u64(user_id))]

    async def block(self, user_id: int, ids: list[int]) -> None:
        if user_id in ids:
            raise Invalid("you cannot block yourself", field="ids")

        def block_txn(txn: Txn) -> None:
            for uid in ids:
                if not txn.exists("userid_user", keys.u64(uid)):
                    raise NotFound("user not found", kind="user", id=uid)
                txn.put_raw("useridblockedid_", keys.pair(user_id, uid))

        await self.store.write(block_txn)

    async def unblock(self, user_id: int, ids: list[int]) -> None:
        await self.store.write(lambda txn: [txn.delete("useridblockedid_", keys.pair(user_id, uid)) for uid in ids])

    def forget_user_txn(self, txn: Txn, user_id: int) -> None:
        for k, _ in list(txn.scan_raw("useridblockedid_", prefix=keys.u64(user_id))):
            txn.delete("useridblockedid_", k)
