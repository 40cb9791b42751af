"""Conversations and their members: private ("u", exactly one per pair of users) and groups ("g").

Rules: any member of a group may rename it or add people; only the owner may
remove others; anyone may leave. When the owner leaves, the longest-standing
member becomes owner; when the last member leaves, the group is deleted.
People who blocked the actor are not added by the actor. Adding, removing and
leaving are recorded as system messages in the history.
"""

from collections.abc import Callable

import msgspec

from ..store import keys
from ..store.lmdb import Store, Txn
from . import validate
from .accounts import Accounts
from .bus import Bus
from .clock import now_ms
from .errors import Forbidden, Invalid, NotFound
from .events import ConversationCreated, ConversationKicked, ConversationUpdated, MessageCreated
from .ids import Snowflakes
from .models import Conversation, Member, Message
from .oplog import OpLog

MAX_PARTICIPANTS = 1000
# Unread counts stop here (clients show "99+"): counting is a cursor walk from the member's read
# mark, and its length is set by what others write, so it must be bounded.
UNREAD_CAP = 100


class ConversationView(msgspec.Struct):
    conversation: Conversation
    participants: list[int]
    last_message: Message | None
    unread: int


class Conversations:
    def __init__(self, store: Store, bus: Bus, ids: Snowflakes, oplog: OpLog):
        self.store = store
        self.bus = bus
        self.ids = ids
        self.oplog = oplog

    # -- reads ---------------------------------------------------------------------------------

    @staticmethod
    def get_txn(txn: Txn, cid: int) -> Conversation:
        conv = txn.get("convid_conv", keys.u64(cid), Conversation)
        if conv is None:
            raise NotFound("conversation not found", kind="conversation", id=cid)
        return conv

    @staticmethod
    def member_txn(txn: Txn, cid: int, user_id: int) -> Member | None:
        return txn.get("convuserid_member", keys.pair(cid, user_id), Member)

    @staticmethod
    def participants_txn(txn: Txn, cid: int) -> list[int]:
        return [keys.read_pair(k)[1] for k, _ in txn.scan_raw("convuserid_member", prefix=keys.u64(cid))]

    def require_member_txn(self, txn: Txn, cid: int, user_id: int) -> tuple[Conversation, Member]:
        conv = self.get_txn(txn, cid)
        member = self.member_txn(txn, cid, user_id)
        if member is None:
            # The same answer as for an id that does not exist: a stranger learns nothing.
            raise NotFound("conversation not found", kind="conversation", id=cid)
        return conv, member

    def get_for(self, viewer: int, cid: int) -> Conversation:
        with self.store.read() as txn:
            return self.require_member_txn(txn, cid, viewer)[0]

    def participants(self, viewer: int, cid: int) -> list[int]:
        with self.store.read() as txn:
            self.require_member_txn(txn, cid, viewer)
            return self.participants_txn(txn, cid)

    def participants_of_many(self, viewer: int, cids: list[int]) -> list[int]:
        """Distinct participants of those of `cids` the viewer belongs to."""
        out: dict[int, None] = {}
        with self.store.read() as txn:
            for cid in cids:
                if self.member_txn(txn, cid, viewer) is None:
                    continue
                for uid in self.participants_txn(txn, cid):
                    out[uid] = None
        return list(out)

    def ids_of(self, user_id: int) -> list[int]:
        with self.store.read() as txn:
            return [keys.read_pair(k)[1] for k, _ in txn.scan_raw("useridconvid_", prefix=keys.u64(user_id))]

    def private_between(self, a: int, b: int) -> Conversation | None:
        with self.store.read() as txn:
            raw = txn.get_raw("userpair_convid", keys.pair(min(a, b), max(a, b)))
            return txn.get("convid_conv", raw, Conversation) if raw else None

    def contacts_of(self, user_id: int) -> set[int]:
        """Everyone who shares a conversation with the user (the audience of profile changes)."""
        out = {user_id}
        with self.store.read() as txn:
            for k, _ in txn.scan_raw("useridconvid_", prefix=keys.u64(user_id)):
                out.update(self.participants_txn(txn, keys.read_pair(k)[1]))
        return out

    def view_txn(self, txn: Txn, conv: Conversation, viewer: int) -> ConversationView:
        member = self.member_txn(txn, conv.id, viewer)
        hidden = hidden_check_txn(txn, viewer)
        last = None
        for key, msg in txn.scan("convidmsgid_msg", Message, prefix=keys.u64(conv.id), reverse=True):
            if not hidden(key):
                last = msg
                break
        unread = 0
        if member is not None:
            start = keys.pair(conv.id, member.last_read + 1)
            for key, _ in txn.scan_raw("convidmsgid_msg", prefix=keys.u64(conv.id), start=start):
                if not hidden(key):
                    unread += 1
                    if unread >= UNREAD_CAP:
                        break
        return ConversationView(conv, self.participants_txn(txn, conv.id), last, unread)

    def list_for(self, user_id: int, *, limit: int = 100, updated_after: int | None = None,
                 updated_before: int | None = None, ids: list[int] | None = None,
                 name: str | None = None) -> list[ConversationView]:
        """The user's conversations, most recently active first."""
        views = []
        needle = name.casefold() if name else None
        with self.store.read() as txn:
            cids = ids if ids is not None else [
                keys.read_pair(k)[1] for k, _ in txn.scan_raw("useridconvid_", prefix=keys.u64(user_id))
            ]
            for cid in cids:
                if self.member_txn(txn, cid, user_id) is None:
                    continue
                conv = txn.get("convid_conv", keys.u64(cid), Conversation)
                if conv is None or (needle and needle not in (conv.name or "").casefold()):
                    continue
                view = self.view_txn(txn, conv, user_id)
                active = activity_ms(view)
                if updated_after is not None and active <= updated_after:
                    continue
                if updated_before is not None and active >= updated_before:
                    continue
                views.append(view)
        views.sort(key=activity_ms, reverse=True)
        return views[:limit]

    # -- writes --------------------------------------------------------------------------------

    def _add_member_txn(self, txn: Txn, cid: int, user_id: int, now: int) -> None:
        txn.put("convuserid_member", keys.pair(cid, user_id), Member(joined_at=now))
        txn.put_raw("useridconvid_", keys.pair(user_id, cid))

    def _remove_member_txn(self, txn: Txn, cid: int, user_id: int) -> None:
        txn.delete("convuserid_member", keys.pair(cid, user_id))
        txn.delete("useridconvid_", keys.pair(user_id, cid))

    def _system_message_txn(self, txn: Txn, conv: Conversation, actor: int, kind: str, subject: int,
                            body: str, now: int) -> Message:
        msg = Message(id=self.ids.next(), cid=conv.id, author_id=actor, body=body, created_at=now, updated_at=now,
                      x={"type": kind, "user_id": subject}, system=True)
        txn.put("convidmsgid_msg", keys.pair(conv.id, msg.id), msg)
        txn.put_raw("msgid_convid", keys.u64(msg.id), keys.u64(conv.id))
        return msg

    async def create(self, actor: int, type: str, participants: list[int], *, name: str | None = None,
                     description: str | None = None, extra: dict | None = None
                     ) -> tuple[Conversation, list[int], bool]:
        """Create a conversation; for a private one, return the pair's existing one if any.

        Returns the conversation, its participants, and whether it was created now.
        """
        if type not in ("u", "g"):
            raise Invalid("type must be 'u' or 'g'", field="type")
        others = list(dict.fromkeys(uid for uid in participants if uid != actor))
        if type == "u" and len(others) != 1:
            raise Invalid("a private conversation has exactly one other participant", field="participants")
        if type == "g" and not others:
            raise Invalid("a group needs at least one other participant", field="participants")
        if len(others) + 1 > MAX_PARTICIPANTS:
            raise Invalid(f"at most {MAX_PARTICIPANTS} participants", field="participants")
        if name is not None:
            name = validate.text(name, "name", max_len=255, allow_newlines=False)
        if description is not None:
            description = validate.text(description, "description", max_len=4096, min_len=0)
        cid, op_id, now = self.ids.next(), self.ids.next(), now_ms()

        def create_txn(txn: Txn):
            for uid in others:
                Accounts.get_txn(txn, uid)
            if type == "u":
                pair_key = keys.pair(min(actor, others[0]), max(actor, others[0]))
                existing = txn.get_raw("userpair_convid", pair_key)
                if existing is not None:
                    conv = self.get_txn(txn, keys.read_u64(existing))
                    rejoined = [uid for uid in (actor, others[0]) if self.member_txn(txn, conv.id, uid) is None]
                    for uid in rejoined:
                        self._add_member_txn(txn, conv.id, uid, now)
                    return conv, self.participants_txn(txn, conv.id), False, rejoined
                conv = Conversation(id=cid, type="u", owner_id=actor, created_at=now, updated_at=now,
                                    pair=(min(actor, others[0]), max(actor, others[0])), extra=extra or {},
                                    name=name, description=description)
                txn.put_raw("userpair_convid", pair_key, keys.u64(cid))
                members = [actor, others[0]]
            else:
                members = [actor] + [uid for uid in others if not txn.exists("useridblockedid_", keys.pair(uid, actor))]
                conv = Conversation(id=cid, type="g", owner_id=actor, created_at=now, updated_at=now, name=name,
                                    description=description, extra=extra or {})
            txn.put("convid_conv", keys.u64(cid), conv)
            for uid in members:
                self._add_member_txn(txn, cid, uid, now)
            event = ConversationCreated(conversation=conv, participants=tuple(members), actor_id=actor)
            self.oplog.log_offline_txn(txn, op_id, event, members)
            return conv, members, True, members

        conv, members, created, notified = await self.store.write(create_txn)
        if notified:
            self.oplog.publish(ConversationCreated(conversation=conv, participants=tuple(members), actor_id=actor),
                               notified, op_id)
        return conv, members, created

    async def update(self, actor: int, cid: int, *, name=None, description=None,
                     add: list[int] = (), remove: list[int] = ()) -> tuple[Conversation, list[int]]:
        if name is not None:
            name = validate.text(name, "name", max_len=255, allow_newlines=False)
        if description is not None:
            description = validate.text(description, "description", max_len=4096, min_len=0)
        ids = [self.ids.next() for _ in range(len(add) + len(remove) + 3)]
        now = now_ms()

        def update_txn(txn: Txn):
            conv, member = self.require_member_txn(txn, cid, actor)
            if conv.type == "u" and (add or remove):
                raise Invalid("participants of a private conversation cannot change", field="participants")
            if remove and conv.owner_id != actor:
                raise Forbidden("only the owner can remove participants")
            before = self.participants_txn(txn, cid)
            added, removed, messages = [], [], []
            for uid in dict.fromkeys(add):
                user = Accounts.get_txn(txn, uid)
                if uid in before or txn.exists("useridblockedid_", keys.pair(uid, actor)):
                    continue
                self._add_member_txn(txn, cid, uid, now)
                added.append(uid)
                messages.append(self._system_message_txn(
                    txn, conv, actor, "added_participant", uid, f"{user.display_name} has been added to the group", now))
            for uid in dict.fromkeys(remove):
                if uid not in before or uid == actor:
                    continue
                user = Accounts.get_txn(txn, uid)
                self._remove_member_txn(txn, cid, uid)
                removed.append(uid)
                messages.append(self._system_message_txn(
                    txn, conv, actor, "removed_participant", uid,
                    f"{user.display_name} has been removed from the group", now))
            if messages:
                # The actor wrote these notices: they are not unread for the actor (as when sending).
                txn.put("convuserid_member", keys.pair(cid, actor),
                        msgspec.structs.replace(member, last_read=max(member.last_read, messages[-1].id)))
            after = self.participants_txn(txn, cid)
            if len(after) > MAX_PARTICIPANTS:
                raise Invalid(f"at most {MAX_PARTICIPANTS} participants", field="participants")
            changes = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
            conv = msgspec.structs.replace(conv, updated_at=max(now, conv.updated_at + 1), **changes)
            txn.put("convid_conv", keys.u64(cid), conv)
            updated = ConversationUpdated(conversation=conv, participants=tuple(after), actor_id=actor,
                                          added=tuple(added), removed=tuple(removed))
            self.oplog.log_offline_txn(txn, ids[0], updated, after)
            kicked = ConversationKicked(conversation=conv, participants=tuple(after), actor_id=actor)
            self.oplog.log_offline_txn(txn, ids[1], kicked, removed)
            for msg in messages:
                self.oplog.log_offline_txn(txn, msg.id, MessageCreated(message=msg), after)
            return conv, after, updated, kicked, removed, messages

        conv, after, updated, kicked, removed, messages = await self.store.write(update_txn)
        self.oplog.publish(updated, after, ids[0])
        if removed:
            self.oplog.publish(kicked, removed, ids[1])
        for msg in messages:
            self.oplog.publish(MessageCreated(message=msg), after, msg.id)
        return conv, after

    async def leave(self, actor: int, cid: int) -> None:
        """Leave a conversation (a private one is hidden until either side writes again)."""
        msg_id, op_id, now = self.ids.next(), self.ids.next(), now_ms()

        def leave_txn(txn: Txn):
            conv, _ = self.require_member_txn(txn, cid, actor)
            self._remove_member_txn(txn, cid, actor)
            rest = self.participants_txn(txn, cid)
            if conv.type == "u":
                return conv, rest, None, None
            if not rest:
                self._delete_txn(txn, conv)
                return conv, rest, None, None
            if conv.owner_id == actor:
                oldest = min(rest, key=lambda uid: (self.member_txn(txn, cid, uid).joined_at, uid))
                conv = msgspec.structs.replace(conv, owner_id=oldest, updated_at=max(now, conv.updated_at + 1))
                txn.put("convid_conv", keys.u64(cid), conv)
            user = Accounts.get_txn(txn, actor)
            msg = Message(id=msg_id, cid=cid, author_id=actor, body=f"{user.login} has left the group",
                          created_at=now, updated_at=now, x={"type": "left_participants", "user_id": actor},
                          system=True)
            txn.put("convidmsgid_msg", keys.pair(cid, msg_id), msg)
            txn.put_raw("msgid_convid", keys.u64(msg_id), keys.u64(cid))
            self.oplog.log_offline_txn(txn, msg_id, MessageCreated(message=msg), rest)
            updated = ConversationUpdated(conversation=conv, participants=tuple(rest), actor_id=actor,
                                          removed=(actor,))
            self.oplog.log_offline_txn(txn, op_id, updated, rest)
            return conv, rest, msg, updated

        conv, rest, msg, updated = await self.store.write(leave_txn)
        if msg is not None:
            self.oplog.publish(MessageCreated(message=msg), rest, msg_id)
            self.oplog.publish(updated, rest, op_id)

    def _delete_txn(self, txn: Txn, conv: Conversation) -> None:
        for key, _ in list(txn.scan_raw("convidmsgid_msg", prefix=keys.u64(conv.id))):
            txn.delete("convidmsgid_msg", key)
            txn.delete("msgid_convid", key[8:])
        for uid in self.participants_txn(txn, conv.id):
            self._remove_member_txn(txn, conv.id, uid)
        if conv.pair:
            txn.delete("userpair_convid", keys.pair(*conv.pair))
        txn.delete("convid_conv", keys.u64(conv.id))

    def forget_user_txn(self, txn: Txn, user_id: int) -> None:
        """On account deletion: leave every conversation (deleting groups left empty)."""
        for key, _ in list(txn.scan_raw("useridconvid_", prefix=keys.u64(user_id))):
            cid = keys.read_pair(key)[1]
            self._remove_member_txn(txn, cid, user_id)
            conv = txn.get("convid_conv", keys.u64(cid), Conversation)
            if conv is None:
                continue
            rest = self.participants_txn(txn, cid)
            if not rest:
                self._delete_txn(txn, conv)
            elif conv.owner_id == user_id:
                txn.put("convid_conv", keys.u64(cid), msgspec.structs.replace(conv, owner_id=rest[0]))


def hides_any_txn(txn: Txn, viewer: int) -> bool:
    """Whether the viewer has deleted any message for themself."""
    return any(True for _ in txn.scan_raw("useridmsgid_", prefix=keys.u64(viewer), limit=1))


def hidden_check_txn(txn: Txn, viewer: int) -> Callable[[bytes], bool]:
    """`is_hidden(message key)` for the messages the viewer deleted for themself. Most users never
    hide one, and for them the check costs nothing per message."""
    if not hides_any_txn(txn, viewer):
        return lambda key: False
    prefix = keys.u64(viewer)
    return lambda key: txn.exists("useridmsgid_", prefix + key[8:])


def activity_ms(view: ConversationView) -> int:
    last = view.last_message.created_at if view.last_message else 0
    return max(view.conversation.updated_at, last)
