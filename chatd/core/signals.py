"""Transient signals, never stored in history: typing, and application system messages to users or
to a channel (offline recipients of the latter find them in their op log)."""

from ..store import tables as T
from ..store.lmdb import Store, Txn
from . import access, validate
from .bus import Bus
from .clock import now_ms
from .errors import Invalid
from .events import SystemMessage, Typing
from .ids import Snowflakes
from .members import Members
from .oplog import OpLog
from .relationships import Relationships

MAX_X_BYTES = 8192
MAX_BATCH_IDS = 100


def check_data(data, field: str = "x") -> dict | None:
    return None if data is None else validate.free_json(data, field, max_bytes=MAX_X_BYTES)


class Signals:
    def __init__(self, store: Store, bus: Bus, ids: Snowflakes, oplog: OpLog, members: Members):
        self.store = store
        self.bus = bus
        self.ids = ids
        self.oplog = oplog
        self.members = members

    def typing(self, actor: int, cid: int, status: str | None = None, origin=None) -> None:
        """Relay a typing signal to those who may see the actor write there: not in a DM where
        either side blocked the other (where the actor cannot send either)."""
        with self.store.read() as txn:
            if not access.require(txn, actor, cid).has(access.SEND):
                return
            audience = [u for u in self.members.audience_txn(txn, cid) if u != actor]
        self.bus.publish(Typing(cid=cid, user_id=actor, status=status), audience, origin=origin)

    async def system_message(self, actor: int, *, client_id: str, x: dict | None, uids: list[int] | None = None,
                             cid: int | None = None, origin=None) -> SystemMessage:
        x = check_data(x)
        client_id = validate.text(client_id, "id", max_len=128, allow_newlines=False)
        if (uids is None) == (cid is None):
            raise Invalid("give either uids or cid", field="uids")
        if uids is not None and (not uids or len(uids) > MAX_BATCH_IDS):
            raise Invalid(f"uids must list 1 to {MAX_BATCH_IDS} users", field="uids")
        op_id = self.ids.next()
        event = SystemMessage(id=client_id, from_id=actor, created_at=now_ms(), cid=cid, x=x)

        def system_txn(txn: Txn):
            if cid is not None:
                access.require(txn, actor, cid)
                audience = self.members.audience_txn(txn, cid)
            else:
                audience = [u for u in dict.fromkeys(uids)
                            if txn.exists(T.userid_user, T.userid_user.key(u))
                            and not Relationships.blocks_txn(txn, u, actor)]
            others = [u for u in audience if u != actor]
            delivery = self.oplog.record_txn(txn, op_id, event, others)
            delivery.audience = others + [actor]
            return delivery

        self.oplog.publish(await self.store.write(system_txn), origin=origin)
        return event
