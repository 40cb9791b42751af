"""Users' message writes: send, edit, delete.

A message is committed (with the op-log entries and push notifications of the
members who are offline) before anything about it leaves the server: the
caller's ack, the bus event, the HTTP response.
"""

import hashlib

import msgspec

from ..config import LimitsConfig
from ..store import tables as T
from ..store.lmdb import Pending, Store, Txn
from . import access, validate
from .clock import now_ms
from .errors import Forbidden, Invalid
from .events import MessageEdited, MessagesDeleted
from .history import History, message_not_found
from .ids import Snowflakes
from .members import Members
from .models import Attachment, Message
from .oplog import OpLog
from .signals import check_data
from .writer import MessageWriter

HISTORY = T.chanidmsgid_msg
DEDUPE = T.useridclientid_msgid
MAX_ATTACHMENTS = 10
MAX_BATCH_IDS = 100


class Messages:
    def __init__(self, store: Store, ids: Snowflakes, oplog: OpLog, members: Members, writer: MessageWriter,
                 history: History, limits: LimitsConfig):
        self.store = store
        self.ids = ids
        self.oplog = oplog
        self.members = members
        self.writer = writer
        self.history = history
        self.limits = limits

    def _check_body(self, body) -> str:
        if not isinstance(body, str):
            raise Invalid("body must be a string", field="body")
        if len(body) > self.limits.max_message_length:
            raise Invalid(f"body must be at most {self.limits.max_message_length} characters", field="body")
        return body

    async def send(self, actor: int, cid: int, *, body: str, data: dict | None = None,
                   attachments: tuple[Attachment, ...] = (), client_id: str | None = None,
                   origin=None) -> tuple[Message, bool]:
        """Store and deliver a message. Returns it and whether it is a retry of an earlier send
        (same `client_id` from the same user), in which case nothing new is stored or delivered."""
        stored, _, duplicate = await self.submit(actor, cid, body=body, data=data, attachments=attachments,
                                                 client_id=client_id, origin=origin).wait()
        return stored, duplicate

    def submit(self, actor: int, cid: int, *, body: str, data: dict | None = None,
               attachments: tuple[Attachment, ...] = (), client_id: str | None = None,
               origin=None, on_done=None) -> Pending:
        """`send` without waiting: validate, queue the write, and return the pending write, whose
        `wait()` gives `(message, audience, duplicate)` once durable. The message is published
        right after its commit whether or not anyone waits, so a connection can pipeline sends."""
        body = self._check_body(body)
        data = check_data(data)
        if len(attachments) > MAX_ATTACHMENTS:
            raise Invalid(f"at most {MAX_ATTACHMENTS} attachments", field="attachments")
        if not body and not attachments:
            raise Invalid("a message needs a body or attachments", field="body")
        if client_id is not None:
            client_id = validate.text(client_id, "id", max_len=128, allow_newlines=False)
        now = now_ms()
        msg = Message(id=self.ids.next(), cid=cid, author_id=actor, body=body, created_at=now, updated_at=now,
                      data=data, attachments=tuple(attachments), client_id=client_id)
        dedupe_key = DEDUPE.key(actor, hashlib.sha256(client_id.encode()).digest()[:16]) if client_id else None
        need = access.SEND | (access.UPLOAD if attachments else 0)

        def send_txn(txn: Txn):
            if dedupe_key is not None:
                seen = txn.get(DEDUPE, dedupe_key)
                if seen is not None:
                    earlier = txn.get(HISTORY, HISTORY.key(cid, seen))
                    if earlier is not None:
                        access.require(txn, actor, cid, access.READ)
                        return earlier, None, True
            granted = _require_send(txn, actor, cid, need)
            audience = self.members.audience_txn(txn, cid)
            channel = granted.channel
            if channel.kind == "dm" and channel.pair:
                other = channel.pair[0] if channel.pair[1] == actor else channel.pair[1]
                if other not in audience and txn.exists(T.userid_user, T.userid_user.key(other)):
                    # The partner had left the DM: a new message brings it back.
                    self.members.add_txn(txn, cid, other, now)
                    audience = self.members.audience_txn(txn, cid)
            for att in attachments:
                _check_attachment_txn(txn, actor, att)
            if dedupe_key is not None:
                txn.put(DEDUPE, dedupe_key, msg.id)
            if granted.member is not None:
                self.members.set_read_mark_txn(txn, cid, actor, msg.id)
            return msg, self.writer.write_txn(txn, msg, audience), False

        def publish(result) -> None:
            stored, delivery, duplicate = result
            if not duplicate:
                self.oplog.publish(delivery, origin=origin)

        return self.store.submit(send_txn, after=publish, on_done=on_done)

    async def edit(self, actor: int, mid: int, *, body: str, origin=None) -> Message:
        body = self._check_body(body)
        if not body:
            raise Invalid("body must not be empty", field="body")
        op_id = self.ids.next()

        def edit_txn(txn: Txn):
            msg, granted = self.history.get_txn(txn, actor, mid, access.READ)
            # Editing stays the author's own: ManageMessages lets others delete, never rewrite.
            if msg.author_id != actor or msg.system:
                raise Forbidden("only the author can edit a message")
            now = now_ms()
            msg = msgspec.structs.replace(msg, body=body, updated_at=max(now, msg.updated_at + 1), edited_at=now)
            txn.put(HISTORY, HISTORY.key(msg.cid, mid), msg)
            audience = self.members.audience_txn(txn, msg.cid)
            return msg, self.oplog.record_txn(txn, op_id, MessageEdited(message=msg, editor_id=actor), audience)

        msg, delivery = await self.store.write(edit_txn)
        self.oplog.publish(delivery, origin=origin)
        return msg

    async def delete(self, actor: int, cid: int, ids: list[int], *, for_all: bool, origin=None) -> list[int]:
        """Delete messages for everyone (their author, or a member with ManageMessages) or hide them
        for the actor alone."""
        if not ids or len(ids) > MAX_BATCH_IDS:
            raise Invalid(f"ids must list 1 to {MAX_BATCH_IDS} messages", field="ids")
        op_id = self.ids.next()

        def delete_txn(txn: Txn):
            granted = access.require(txn, actor, cid, access.READ)
            found = []
            for mid in dict.fromkeys(ids):
                # Salvaged: a message stored before input nesting was bounded can still be deleted.
                msg = txn.get_salvaged(HISTORY, HISTORY.key(cid, mid)) if 0 < mid <= T.MAX_U64 else None
                if msg is None:
                    raise message_not_found(mid)
                if for_all:
                    access.require_author_or(granted, actor, msg.author_id, "delete a message for everyone")
                found.append(mid)
            if not for_all:
                for mid in found:
                    txn.put(T.useridmsgid_, T.useridmsgid_.key(actor, mid))
                return found, None
            for mid in found:
                self.writer.erase_txn(txn, cid, mid)
            audience = self.members.audience_txn(txn, cid)
            event = MessagesDeleted(cid=cid, ids=tuple(found), actor_id=actor)
            return found, self.oplog.record_txn(txn, op_id, event, audience)

        found, delivery = await self.store.write(delete_txn)
        if delivery is not None:
            self.oplog.publish(delivery, origin=origin)
        return found


def _require_send(txn: Txn, actor: int, cid: int, need: int) -> access.Granted:
    granted = access.require(txn, actor, cid, access.READ)
    if granted.has(need):
        return granted
    if granted.channel.kind == "dm":
        raise Forbidden("you cannot message this user")
    raise Forbidden("you cannot upload files here" if granted.has(access.SEND) else "you cannot send messages here")


def _check_attachment_txn(txn: Txn, actor: int, att: Attachment) -> None:
    try:
        file_id = int(att.file_id)
    except ValueError:
        raise Invalid("attachment file_id is not a file id", field="attachments") from None
    file = txn.get(T.fileid_file, T.fileid_file.key(file_id)) if 0 < file_id <= T.MAX_U64 else None
    # Another user's file is answered as an unknown one: ids of others' files are not revealed.
    if file is None or file.owner_id != actor:
        raise Invalid(f"attachment {att.file_id} is not a known file", field="attachments")
    if file.sha256 is None:
        raise Invalid(f"attachment {att.file_id} has not been uploaded yet", field="attachments")

