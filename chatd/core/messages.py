"""Messages: send, history, edit, delete, read state, typing, transient system messages.

A message is committed (with the op-log entries and push notifications of the
participants who are offline) before anything about it leaves the server:
the caller's ack, the bus event, the HTTP response.
"""

import hashlib

import msgspec

from ..config import LimitsConfig
from ..store import keys
from ..store.lmdb import DECODE_ERRORS, Pending, Store, Txn, decode, undecodable
from . import validate
from .bus import Bus
from .cache import ByteLRU
from .clock import now_ms
from .conversations import Conversations, hidden_check_txn, hides_any_txn
from .errors import Forbidden, Invalid, NotFound
from .events import (
    MessageCreated,
    MessageEdited,
    MessagesDeleted,
    MessagesRead,
    SystemMessage,
    Typing,
)
from .ids import Snowflakes, lowest_id_at
from .models import Attachment, File, Member, Message
from .oplog import OpLog
from .push import Push

MAX_X_BYTES = 8192
MAX_ATTACHMENTS = 10
MAX_BATCH_IDS = 100
# History caches, bounded in bytes by `limits.history_cache_mb` (shares of it below):
# - decoded messages kept by their stored bytes: a history page is mostly the same messages
#   again, and decoding (cbor2 + convert) was a quarter of a page's cost. Keyed by the bytes, an
#   entry can never be stale: an edited message is different bytes;
# - each conversation's latest page and read marks, under the store generation of its rows
#   (see Store.generation): any durable write to them makes the entry stale.
# The rest of the budget is the dialects' (rendered JSON).
DECODED_SHARE, LATEST_SHARE, MARKS_SHARE = 0.35, 0.25, 0.1
# A decoded message costs about three times its stored bytes, plus the objects of its fields.
DECODED_FACTOR, DECODED_BASE = 3, 400
MARK_BYTES = 120  # one member's read mark in a cached dict


def decoded_size(raw: bytes) -> int:
    return DECODED_FACTOR * len(raw) + DECODED_BASE


def check_x(x) -> dict | None:
    return None if x is None else validate.free_json(x, "x", max_bytes=MAX_X_BYTES)


class Messages:
    def __init__(self, store: Store, bus: Bus, ids: Snowflakes, oplog: OpLog, conversations: Conversations,
                 push: Push, limits: LimitsConfig):
        self.store = store
        self.bus = bus
        self.ids = ids
        self.oplog = oplog
        self.conversations = conversations
        self.push = push
        self.limits = limits
        budget = limits.history_cache_mb << 20
        self._decoded = ByteLRU(int(budget * DECODED_SHARE))  # stored bytes → Message
        store.watch("convidmsgid_msg", 8)
        store.watch("convuserid_member", 8)
        self._latest = ByteLRU(int(budget * LATEST_SHARE))  # cid → (generation, limit, page)
        self._marks = ByteLRU(int(budget * MARKS_SHARE))  # cid → (generation, marks)

    def _check_body(self, body) -> str:
        if not isinstance(body, str):
            raise Invalid("body must be a string", field="body")
        if len(body) > self.limits.max_message_length:
            raise Invalid(f"body must be at most {self.limits.max_message_length} characters", field="body")
        return body

    async def send(self, actor: int, cid: int, *, body: str, x: dict | None = None,
                   attachments: tuple[Attachment, ...] = (), client_id: str | None = None,
                   origin=None) -> tuple[Message, bool]:
        """Store and deliver a message. Returns it and whether it is a retry of an earlier send
        (same `client_id` from the same user), in which case nothing new is stored or delivered."""
        stored, _, duplicate = await self.submit(actor, cid, body=body, x=x, attachments=attachments,
                                                 client_id=client_id, origin=origin).wait()
        return stored, duplicate

    def submit(self, actor: int, cid: int, *, body: str, x: dict | None = None,
               attachments: tuple[Attachment, ...] = (), client_id: str | None = None,
               origin=None, on_done=None) -> Pending:
        """`send` without waiting: validate, queue the write, and return the pending write, whose
        `wait()` gives `(message, participants, duplicate)` once durable. The message is published
        right after its commit whether or not anyone waits, so a connection can pipeline sends."""
        body = self._check_body(body)
        x = check_x(x)
        if len(attachments) > MAX_ATTACHMENTS:
            raise Invalid(f"at most {MAX_ATTACHMENTS} attachments", field="attachments")
        if not body and not attachments:
            raise Invalid("a message needs a body or attachments", field="body")
        if client_id is not None:
            client_id = validate.text(client_id, "id", max_len=128, allow_newlines=False)
        now = now_ms()
        msg = Message(id=self.ids.next(), cid=cid, author_id=actor, body=body, created_at=now, updated_at=now,
                      x=x, attachments=tuple(attachments), client_id=client_id)
        dedupe_key = (keys.u64(actor) + hashlib.sha256(client_id.encode()).digest()[:16]) if client_id else None

        def send_txn(txn: Txn):
            conv, member = self.conversations.require_member_txn(txn, cid, actor)
            if dedupe_key is not None:
                seen = txn.get_raw("useridclientid_msgid", dedupe_key)
                if seen is not None:
                    earlier = txn.get("convidmsgid_msg", keys.pair(cid, keys.read_u64(seen)), Message)
                    if earlier is not None:
                        return earlier, None, True
            participants = self.conversations.participants_txn(txn, cid)
            if conv.type == "u" and conv.pair:
                other = conv.pair[0] if conv.pair[1] == actor else conv.pair[1]
                if txn.exists("useridblockedid_", keys.pair(other, actor)):
                    raise Forbidden("you cannot message this user")
                if other not in participants and txn.exists("userid_user", keys.u64(other)):
                    # The partner had left the private conversation: a new message brings it back.
                    self.conversations._add_member_txn(txn, cid, other, now)
                    participants.append(other)
            for att in attachments:
                self._check_attachment_txn(txn, actor, att)
                txn.put_raw("fileidconvid_", keys.pair(int(att.file_id), cid))
            txn.put("convidmsgid_msg", keys.pair(cid, msg.id), msg)
            txn.put_raw("msgid_convid", keys.u64(msg.id), keys.u64(cid))
            if dedupe_key is not None:
                txn.put_raw("useridclientid_msgid", dedupe_key, keys.u64(msg.id))
            txn.put("convuserid_member", keys.pair(cid, actor), msgspec.structs.replace(member, last_read=msg.id))
            offline = self.oplog.log_offline_txn(txn, msg.id, MessageCreated(message=msg), participants)
            if offline:
                self.push.queue_message_txn(txn, msg, [u for u in offline if u != actor])
            return msg, participants, False

        def publish(result) -> None:
            stored, participants, duplicate = result
            if not duplicate:
                self.oplog.publish(MessageCreated(message=stored), participants, stored.id, origin=origin)

        return self.store.submit(send_txn, after=publish, on_done=on_done)

    @staticmethod
    def _check_attachment_txn(txn: Txn, actor: int, att: Attachment) -> None:
        try:
            file_id = int(att.file_id)
        except ValueError:
            raise Invalid("attachment file_id is not a file id", field="attachments") from None
        file = txn.get("fileid_file", keys.u64(file_id), File) if 0 < file_id < keys.MAX_U64 else None
        # Another user's file is answered as an unknown one: ids of others' files are not revealed.
        if file is None or file.owner_id != actor:
            raise Invalid(f"attachment {att.file_id} is not a known file", field="attachments")
        if file.sha256 is None:
            raise Invalid(f"attachment {att.file_id} has not been uploaded yet", field="attachments")

    def history(self, viewer: int, cid: int, *, limit: int = 50, after_ms: int | None = None,
                before_ms: int | None = None, before_id: int | None = None) -> list[Message]:
        """Up to `limit` messages, newest first, skipping those the viewer deleted for themself.

        With `after_ms`, the oldest `limit` messages after that time, oldest first.
        """
        prefix = keys.u64(cid)
        out = []
        with self.store.read() as txn:
            self.conversations.require_member_txn(txn, cid, viewer)
            if after_ms is None and before_ms is None and before_id is None and not hides_any_txn(txn, viewer):
                return self._latest_txn(txn, cid, limit)
            if after_ms is not None:
                rows = txn.scan_raw("convidmsgid_msg", prefix=prefix,
                                    start=keys.pair(cid, lowest_id_at(after_ms + 1)))
            else:
                stop = None
                if before_ms is not None:
                    stop = keys.pair(cid, lowest_id_at(before_ms))
                if before_id is not None:
                    stop = min(stop or keys.pair(cid, keys.MAX_U64), keys.pair(cid, before_id))
                rows = txn.scan_raw("convidmsgid_msg", prefix=prefix, stop=stop, reverse=True)
            hidden = hidden_check_txn(txn, viewer)
            for key, raw in rows:
                if hidden(key):
                    continue
                msg = self._decode(key, raw)
                if msg is None:
                    continue
                out.append(msg)
                if len(out) >= limit:
                    break
        return out

    def _latest_txn(self, txn: Txn, cid: int, limit: int) -> list[Message]:
        """The newest `limit` messages, served from the cache while the conversation is unchanged.

        The generation is read inside the read transaction, so the page read with it is at
        least as new as it."""
        prefix = keys.u64(cid)
        generation = self.store.generation("convidmsgid_msg", prefix)
        hit = self._latest.get(cid)
        # a cached page shorter than its limit holds the whole conversation
        if hit is not None and hit[0] == generation and (limit <= hit[1] or len(hit[2]) < hit[1]):
            return hit[2][:limit]
        page, size = [], 0
        for key, raw in txn.scan_raw("convidmsgid_msg", prefix=prefix, reverse=True):
            msg = self._decode(key, raw)
            if msg is not None:
                page.append(msg)
                size += decoded_size(raw)
                if len(page) >= limit:
                    break
        self._latest.put(cid, (generation, limit, page), size)
        return page[:]

    def _decode(self, key: bytes, raw: bytes) -> Message | None:
        """The stored message, or None (logged) if it cannot be decoded: one bad record never
        fails a whole page."""
        msg = self._decoded.get(raw)
        if msg is None:
            try:
                msg = decode(raw, Message)
            except DECODE_ERRORS as e:
                undecodable("convidmsgid_msg", key, e)
                return None
            self._decoded.put(raw, msg, decoded_size(raw))
        return msg

    def read_marks(self, cid: int) -> dict[int, int]:
        """Each participant's read watermark: the highest message id they have read."""
        prefix = keys.u64(cid)
        hit = self._marks.get(cid)
        # Unchanged since cached: no acknowledged write is missing (acks follow the generation's bump).
        if hit is not None and hit[0] == self.store.generation("convuserid_member", prefix):
            return dict(hit[1])
        with self.store.read() as txn:
            generation = self.store.generation("convuserid_member", prefix)
            marks = {keys.read_pair(key)[1]: member.last_read
                     for key, member in txn.scan("convuserid_member", Member, prefix=prefix)}
        self._marks.put(cid, (generation, marks), MARK_BYTES * len(marks))
        return dict(marks)

    def read_flags(self, cid: int, msgs: list[Message]) -> list[bool]:
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

    def get(self, viewer: int, mid: int) -> Message:
        with self.store.read() as txn:
            return self._get_txn(txn, viewer, mid)

    def _get_txn(self, txn: Txn, viewer: int, mid: int) -> Message:
        raw = txn.get_raw("msgid_convid", keys.u64(mid))
        if raw is None:
            raise NotFound("message not found", kind="message", id=mid)
        cid = keys.read_u64(raw)
        self.conversations.require_member_txn(txn, cid, viewer)
        msg = txn.get("convidmsgid_msg", keys.pair(cid, mid), Message)
        if msg is None:
            raise NotFound("message not found", kind="message", id=mid)
        return msg

    async def edit(self, actor: int, mid: int, *, body: str, origin=None) -> Message:
        body = self._check_body(body)
        if not body:
            raise Invalid("body must not be empty", field="body")
        op_id = self.ids.next()

        def edit_txn(txn: Txn):
            msg = self._get_txn(txn, actor, mid)
            if msg.author_id != actor or msg.system:
                raise Forbidden("only the author can edit a message")
            msg = msgspec.structs.replace(msg, body=body, updated_at=max(now_ms(), msg.updated_at + 1))
            txn.put("convidmsgid_msg", keys.pair(msg.cid, mid), msg)
            participants = self.conversations.participants_txn(txn, msg.cid)
            self.oplog.log_offline_txn(txn, op_id, MessageEdited(message=msg, editor_id=actor), participants)
            return msg, participants

        msg, participants = await self.store.write(edit_txn)
        self.oplog.publish(MessageEdited(message=msg, editor_id=actor), participants, op_id, origin=origin)
        return msg

    async def delete(self, actor: int, cid: int, ids: list[int], *, for_all: bool, origin=None) -> list[int]:
        """Delete messages for everyone (author only) or hide them for the actor alone."""
        if not ids or len(ids) > MAX_BATCH_IDS:
            raise Invalid(f"ids must list 1 to {MAX_BATCH_IDS} messages", field="ids")
        op_id = self.ids.next()

        def delete_txn(txn: Txn):
            self.conversations.require_member_txn(txn, cid, actor)
            found = []
            for mid in dict.fromkeys(ids):
                # Salvaged: a message stored before input nesting was bounded can still be deleted.
                msg = txn.get_salvaged("convidmsgid_msg", keys.pair(cid, mid), Message)
                if msg is None:
                    raise NotFound("message not found", kind="message", id=mid)
                if for_all and msg.author_id != actor:
                    raise Forbidden("only the author can delete a message for everyone")
                found.append(mid)
            participants = []
            if for_all:
                for mid in found:
                    txn.delete("convidmsgid_msg", keys.pair(cid, mid))
                    txn.delete("msgid_convid", keys.u64(mid))
                participants = self.conversations.participants_txn(txn, cid)
                event = MessagesDeleted(cid=cid, ids=tuple(found), actor_id=actor)
                self.oplog.log_offline_txn(txn, op_id, event, participants)
            else:
                for mid in found:
                    txn.put_raw("useridmsgid_", keys.pair(actor, mid))
            return found, participants

        found, participants = await self.store.write(delete_txn)
        if for_all:
            self.oplog.publish(MessagesDeleted(cid=cid, ids=tuple(found), actor_id=actor), participants, op_id,
                               origin=origin)
        return found

    async def mark_read(self, actor: int, cid: int, ids: list[int] | None = None) -> list[int]:
        """Mark messages read (all unread ones when `ids` is None); tell their authors.

        Read state is a per-member watermark: reading a message also reads the ones before it.
        """
        if ids is not None and len(ids) > MAX_BATCH_IDS:
            raise Invalid(f"at most {MAX_BATCH_IDS} ids", field="ids")
        op_id = self.ids.next()

        def read_txn(txn: Txn):
            _, member = self.conversations.require_member_txn(txn, cid, actor)
            for mid in ids or ():
                if not txn.exists("convidmsgid_msg", keys.pair(cid, mid)):
                    raise NotFound("message not found", kind="message", id=mid)
            start = keys.pair(cid, member.last_read + 1)
            if ids is None:
                rows = txn.scan("convidmsgid_msg", Message, prefix=keys.u64(cid), start=start)
            else:
                wanted = [m for m in ids if m > member.last_read]
                if not wanted:
                    return []
                rows = txn.scan("convidmsgid_msg", Message, prefix=keys.u64(cid), start=start,
                                stop=keys.pair(cid, max(wanted) + 1))
            newly = [(m.id, m.author_id) for _, m in rows if m.author_id != actor]
            if not newly:
                return []
            top = max(mid for mid, _ in newly)
            txn.put("convuserid_member", keys.pair(cid, actor), msgspec.structs.replace(member, last_read=top))
            by_author: dict[int, list[int]] = {}
            for mid, author in newly:
                by_author.setdefault(author, []).append(mid)
            events = []
            for author, mids in by_author.items():
                event = MessagesRead(cid=cid, ids=tuple(mids), reader_id=actor)
                self.oplog.log_offline_txn(txn, op_id, event, [author])
                events.append((event, author))
            return events

        events = await self.store.write(read_txn)
        for event, author in events:
            self.oplog.publish(event, [author], op_id)
        return [mid for event, _ in events for mid in event.ids]

    def typing(self, actor: int, cid: int, status: str | None = None, origin=None) -> None:
        """Relay a typing signal; in a private conversation, not to a partner who blocked the actor
        (who cannot message them there either)."""
        with self.store.read() as txn:
            conv, _ = self.conversations.require_member_txn(txn, cid, actor)
            audience = [u for u in self.conversations.participants_txn(txn, cid) if u != actor
                        and not (conv.type == "u" and txn.exists("useridblockedid_", keys.pair(u, actor)))]
        self.bus.publish(Typing(cid=cid, user_id=actor, status=status), audience, origin=origin)

    async def system_message(self, actor: int, *, client_id: str, x: dict | None, uids: list[int] | None = None,
                             cid: int | None = None, origin=None) -> SystemMessage:
        """A transient signal to some users or to a conversation; offline recipients find it in their op log."""
        x = check_x(x)
        client_id = validate.text(client_id, "id", max_len=128, allow_newlines=False)
        if (uids is None) == (cid is None):
            raise Invalid("give either uids or cid", field="uids")
        op_id = self.ids.next()
        event = SystemMessage(id=client_id, from_id=actor, created_at=now_ms(), cid=cid, x=x)

        def system_txn(txn: Txn):
            if cid is not None:
                self.conversations.require_member_txn(txn, cid, actor)
                audience = self.conversations.participants_txn(txn, cid)
            else:
                if not uids or len(uids) > MAX_BATCH_IDS:
                    raise Invalid(f"uids must list 1 to {MAX_BATCH_IDS} users", field="uids")
                audience = [u for u in dict.fromkeys(uids)
                            if txn.exists("userid_user", keys.u64(u))
                            and not txn.exists("useridblockedid_", keys.pair(u, actor))]
            audience = [u for u in audience if u != actor] + [actor]
            self.oplog.log_offline_txn(txn, op_id, event, [u for u in audience if u != actor])
            return audience

        audience = await self.store.write(system_txn)
        self.oplog.publish(event, audience, op_id, origin=origin)
        return event

