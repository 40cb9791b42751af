"""The one message writer: a message and every index of it, in the caller's write transaction.

Users' messages (`messages.py`) and system messages (member added, removed,
left: `channels.py`) are both written here, so the history, the id index, file
shares, the op log of offline members and their push notifications are always
written together, once, by one function.
"""

from ..store import tables as T
from ..store.lmdb import Txn
from .events import MessageCreated
from .ids import Snowflakes
from .models import Channel, Message
from .oplog import Delivery, OpLog
from .push import Push

HISTORY = T.chanidmsgid_msg
WHERE = T.msgid_chanid


class MessageWriter:
    def __init__(self, ids: Snowflakes, oplog: OpLog, push: Push):
        self.ids = ids
        self.oplog = oplog
        self.push = push

    def write_txn(self, txn: Txn, msg: Message, audience, *, notify: bool = True) -> Delivery:
        """Store `msg` with its indexes and log it for the offline part of `audience`; queue push
        notifications for those of them who are not its author (when `notify`)."""
        cid = msg.cid
        txn.put(HISTORY, HISTORY.key(cid, msg.id), msg)
        txn.put(WHERE, WHERE.key(msg.id), cid)
        for att in msg.attachments:
            txn.put(T.fileidchanid_, T.fileidchanid_.key(int(att.file_id), cid))
        delivery = self.oplog.record_txn(txn, msg.id, MessageCreated(message=msg), audience)
        if notify and delivery.logged:
            self.push.queue_message_txn(txn, msg, [u for u in delivery.logged if u != msg.author_id])
        return delivery

    def system_txn(self, txn: Txn, channel: Channel, actor: int, what: str, subject: int, body: str,
                   now: int, audience) -> Delivery:
        """A stored system message (`data` = {"type": what, "user_id": subject})."""
        msg = Message(id=self.ids.next(), cid=channel.id, author_id=actor, body=body, created_at=now,
                      updated_at=now, kind="system", data={"type": what, "user_id": subject})
        return self.write_txn(txn, msg, audience, notify=False)

    @staticmethod
    def erase_txn(txn: Txn, cid: int, mid: int) -> None:
        txn.delete(HISTORY, HISTORY.key(cid, mid))
        txn.delete(WHERE, WHERE.key(mid))
