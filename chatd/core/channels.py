"""Channels and their membership changes: create (one DM per pair of users), rename, add and
remove members, leave, delete.

What a member may do is the channel's data (`default_allow`, set from the
creating dialect's preset) checked by `access.require`; what is a wire choice
rather than a permission (does ownership pass on when the owner leaves?) is an
argument the dialect passes. People who block the actor are not added by the
actor. Joins, removals and leaves are written as system messages by the one
message writer.
"""

import msgspec

from ..store import tables as T
from ..store.lmdb import Store, Txn
from . import access, validate
from .accounts import Accounts
from .clock import now_ms
from .errors import Conflict, Forbidden, Invalid
from .events import ChannelCreated, ChannelKicked, ChannelUpdated
from .ids import Snowflakes
from .members import Members
from .models import Channel
from .oplog import Delivery, OpLog
from .permissions import Perm
from .relationships import Relationships
from .writer import MessageWriter

CHANNEL = T.chanid_chan
PAIR = T.userpair_chanid
MAX_PARTICIPANTS = 1000
KINDS = ("dm", "group")  # what dialects create today; "text" and "saved" come with spaces


def _name(name):
    return None if name is None else validate.text(name, "name", max_len=255, allow_newlines=False)


def _description(description):
    return None if description is None else validate.text(description, "description", max_len=4096, min_len=0)


class Channels:
    def __init__(self, store: Store, ids: Snowflakes, oplog: OpLog, members: Members, writer: MessageWriter):
        self.store = store
        self.ids = ids
        self.oplog = oplog
        self.members = members
        self.writer = writer

    # -- reads ---------------------------------------------------------------------------------

    def get_for(self, viewer: int, cid: int) -> Channel:
        with self.store.read() as txn:
            return access.require(txn, viewer, cid).channel

    def participants_of_many(self, viewer: int, cids: list[int]) -> list[int]:
        """Distinct participants of those of `cids` the viewer may see."""
        out: dict[int, None] = {}
        with self.store.read() as txn:
            for cid in cids:
                try:
                    access.require(txn, viewer, cid)
                except access.NotFound:
                    continue
                out.update(dict.fromkeys(self.members.audience_txn(txn, cid)))
        return list(out)

    # -- writes --------------------------------------------------------------------------------

    async def create(self, actor: int, kind: str, participants: list[int], *, name: str | None = None,
                     description: str | None = None, extra: dict | None = None, preset: int = 0,
                     if_exists: str = "reuse") -> tuple[Channel, list[int], bool]:
        """Create a DM or a group; a DM between two people exists once. Returns the channel, its
        members, and whether it was created now.

        `preset`: the creating dialect's rules for members (`default_allow`). For a DM that
        exists, `if_exists="reuse"` brings back whoever had left it; "conflict" refuses (Conflict)
        when the actor still has it.
        """
        if kind not in KINDS:
            raise Invalid("kind must be 'dm' or 'group'", field="type")
        others = list(dict.fromkeys(uid for uid in participants if uid != actor))
        if kind == "dm" and len(others) != 1:
            raise Invalid("a private conversation has exactly one other participant", field="participants")
        if kind == "group" and not others:
            raise Invalid("a group needs at least one other participant", field="participants")
        if len(others) + 1 > MAX_PARTICIPANTS:
            raise Invalid(f"at most {MAX_PARTICIPANTS} participants", field="participants")
        name, description = _name(name), _description(description)
        cid, op_id, now = self.ids.next(), self.ids.next(), now_ms()

        def create_txn(txn: Txn):
            for uid in others:
                Accounts.get_txn(txn, uid)
            if kind == "dm":
                low, high = min(actor, others[0]), max(actor, others[0])
                existing = txn.get(PAIR, PAIR.key(low, high))
                if existing is not None:
                    channel = access.get_channel_txn(txn, existing)
                    rejoined = [uid for uid in (actor, others[0]) if self.members.member_txn(txn, existing, uid) is None]
                    if if_exists == "conflict" and actor not in rejoined:
                        raise Conflict("a channel between these users already exists")
                    for uid in rejoined:
                        self.members.add_txn(txn, existing, uid, now)
                    return channel, list(self.members.audience_txn(txn, existing)), False, rejoined
                channel = Channel(id=cid, kind="dm", owner_id=actor, created_at=now, updated_at=now, pair=(low, high),
                                  name=name, description=description, extra=extra or {}, default_allow=preset)
                txn.put(PAIR, PAIR.key(low, high), cid)
                members = [actor, others[0]]
            else:
                members = [actor] + [uid for uid in others if not Relationships.blocks_txn(txn, uid, actor)]
                channel = Channel(id=cid, kind="group", owner_id=actor, created_at=now, updated_at=now, name=name,
                                  description=description, extra=extra or {}, default_allow=preset)
            txn.put(CHANNEL, CHANNEL.key(cid), channel)
            for uid in members:
                self.members.add_txn(txn, cid, uid, now)
            event = ChannelCreated(channel=channel, participants=tuple(members), actor_id=actor)
            return channel, members, True, self.oplog.record_txn(txn, op_id, event, members)

        channel, members, created, outcome = await self.store.write(create_txn)
        if created:
            self.oplog.publish(outcome)
        elif outcome:
            # A DM brought back for whoever had left it: they (only) see it again.
            event = ChannelCreated(channel=channel, participants=tuple(members), actor_id=actor)
            self.oplog.publish(Delivery(event, outcome, op_id, frozenset()))
        return channel, members, created

    async def update(self, actor: int, cid: int, *, name=None, description=None,
                     add: list[int] = (), remove: list[int] = ()) -> tuple[Channel, tuple[int, ...]]:
        """Rename (ManageChannel), add members (InviteOthers), remove members (KickMembers)."""
        name, description = _name(name), _description(description)
        ids = [self.ids.next() for _ in range(2)]
        now = now_ms()

        def update_txn(txn: Txn):
            granted = access.require(txn, actor, cid)
            channel = granted.channel
            if channel.kind == "dm" and (add or remove):
                raise Invalid("participants of a private conversation cannot change", field="participants")
            if name is not None or description is not None:
                _demand(granted, Perm.ManageChannel, "you cannot rename this conversation")
            if add:
                _demand(granted, Perm.InviteOthers, "you cannot add participants")
            if remove:
                _demand(granted, Perm.KickMembers, "only the owner can remove participants")
            before = set(self.members.audience_txn(txn, cid))
            added, removed, notices = [], [], []
            for uid in dict.fromkeys(add):
                user = Accounts.get_txn(txn, uid)
                if uid in before or Relationships.blocks_txn(txn, uid, actor):
                    continue
                self.members.add_txn(txn, cid, uid, now)
                added.append(uid)
                notices.append(("added_participant", uid, f"{user.display_name} has been added to the group"))
            for uid in dict.fromkeys(remove):
                if uid not in before or uid == actor:
                    continue
                user = Accounts.get_txn(txn, uid)
                self.members.remove_txn(txn, cid, uid)
                removed.append(uid)
                notices.append(("removed_participant", uid, f"{user.display_name} has been removed from the group"))
            after = self.members.audience_txn(txn, cid)
            if len(after) > MAX_PARTICIPANTS:
                raise Invalid(f"at most {MAX_PARTICIPANTS} participants", field="participants")
            deliveries = [self.writer.system_txn(txn, channel, actor, what, uid, body, now, after)
                          for what, uid, body in notices]
            if deliveries:
                # The actor wrote these notices: they are not unread for the actor (as when sending).
                last = deliveries[-1].event.message.id
                if last > self.members.read_mark_txn(txn, cid, actor):
                    self.members.set_read_mark_txn(txn, cid, actor, last)
            changes = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
            channel = msgspec.structs.replace(channel, updated_at=max(now, channel.updated_at + 1), **changes)
            txn.put(CHANNEL, CHANNEL.key(cid), channel)
            updated = ChannelUpdated(channel=channel, participants=after, actor_id=actor,
                                     added=tuple(added), removed=tuple(removed))
            deliveries.insert(0, self.oplog.record_txn(txn, ids[0], updated, after))
            if removed:
                kicked = ChannelKicked(channel=channel, participants=after, actor_id=actor)
                deliveries.insert(1, self.oplog.record_txn(txn, ids[1], kicked, removed))
            return channel, after, deliveries

        channel, after, deliveries = await self.store.write(update_txn)
        for delivery in deliveries:
            self.oplog.publish(delivery)
        return channel, after

    async def leave(self, actor: int, cid: int, *, owner_leaves: str = "transfer") -> None:
        """Leave a channel (a DM is hidden until either side writes again). When the owner leaves
        a group, `owner_leaves="transfer"` makes the longest-standing member owner, "refuse"
        refuses (Forbidden). The last member to leave deletes the group."""
        op_id, now = self.ids.next(), now_ms()

        def leave_txn(txn: Txn):
            channel = access.require(txn, actor, cid).channel
            if channel.kind == "group" and channel.owner_id == actor and owner_leaves == "refuse":
                raise Forbidden("the owner cannot leave the group")
            self.members.remove_txn(txn, cid, actor)
            rest = self.members.audience_txn(txn, cid)
            if channel.kind == "dm":
                return []
            if not rest:
                self._delete_txn(txn, channel)
                return []
            if channel.owner_id == actor:
                oldest = min(rest, key=lambda uid: (self.members.member_txn(txn, cid, uid).joined_at, uid))
                channel = msgspec.structs.replace(channel, owner_id=oldest, updated_at=max(now, channel.updated_at + 1))
                txn.put(CHANNEL, CHANNEL.key(cid), channel)
            user = Accounts.get_txn(txn, actor)
            notice = self.writer.system_txn(txn, channel, actor, "left_participants", actor,
                                            f"{user.login} has left the group", now, rest)
            updated = ChannelUpdated(channel=channel, participants=rest, actor_id=actor, removed=(actor,))
            return [notice, self.oplog.record_txn(txn, op_id, updated, rest)]

        for delivery in await self.store.write(leave_txn):
            self.oplog.publish(delivery)

    def _delete_txn(self, txn: Txn, channel: Channel) -> None:
        for key, _ in list(txn.scan_raw(T.chanidmsgid_msg, prefix=T.chanidmsgid_msg.prefix(channel.id))):
            self.writer.erase_txn(txn, *T.chanidmsgid_msg.parts(key))
        for uid in self.members.scan_txn(txn, channel.id):
            self.members.remove_txn(txn, channel.id, uid)
        if channel.pair:
            txn.delete(PAIR, PAIR.key(*channel.pair))
        txn.delete(CHANNEL, CHANNEL.key(channel.id))

    def forget_user_txn(self, txn: Txn, user_id: int) -> None:
        """On account deletion: leave every channel (deleting groups left empty)."""
        for cid in self.members.channel_ids_txn(txn, user_id):
            self.members.remove_txn(txn, cid, user_id)
            channel = txn.get(CHANNEL, CHANNEL.key(cid))
            if channel is None:
                continue
            rest = self.members.scan_txn(txn, cid)
            if not rest:
                self._delete_txn(txn, channel)
            elif channel.owner_id == user_id:
                txn.put(CHANNEL, CHANNEL.key(cid), msgspec.structs.replace(channel, owner_id=rest[0]))


def _demand(granted: access.Granted, bit: int, refusal: str) -> None:
    if not granted.has(bit):
        raise Forbidden(refusal)
