"""A user's channel list: each channel with its members, last message and unread count."""

from collections.abc import Callable

import msgspec

from ..store import tables as T
from ..store.lmdb import Store, Txn
from . import access
from .members import Members
from .models import Channel, Message

HISTORY = T.chanidmsgid_msg
HIDDEN = T.useridmsgid_
# Unread counts stop here (clients show "99+"): counting is a cursor walk from the member's read
# mark, and its length is set by what others write, so it must be bounded.
UNREAD_CAP = 100


class ChannelView(msgspec.Struct):
    channel: Channel
    participants: tuple[int, ...]
    last_message: Message | None
    unread: int


def hides_any_txn(txn: Txn, viewer: int) -> bool:
    """Whether the viewer has deleted any message for themself."""
    return any(True for _ in txn.scan_raw(HIDDEN, prefix=HIDDEN.prefix(viewer), limit=1))


def hidden_check_txn(txn: Txn, viewer: int) -> Callable[[bytes], bool]:
    """`is_hidden(message key)` for the messages the viewer deleted for themself. Most users never
    hide one, and for them the check costs nothing per message."""
    if not hides_any_txn(txn, viewer):
        return lambda key: False
    prefix = HIDDEN.prefix(viewer)
    return lambda key: txn.exists(HIDDEN, prefix + key[8:])


def activity_ms(view: ChannelView) -> int:
    last = view.last_message.created_at if view.last_message else 0
    return max(view.channel.updated_at, last)


class Views:
    def __init__(self, store: Store, members: Members):
        self.store = store
        self.members = members

    def view_txn(self, txn: Txn, channel: Channel, viewer: int) -> ChannelView:
        cid = channel.id
        member = self.members.member_txn(txn, cid, viewer)
        hidden = hidden_check_txn(txn, viewer)
        last = None
        for key, msg in txn.scan(HISTORY, prefix=HISTORY.prefix(cid), reverse=True):
            if not hidden(key):
                last = msg
                break
        unread = 0
        if member is not None:
            start = HISTORY.key(cid, self.members.read_mark_txn(txn, cid, viewer) + 1)
            for key, _ in txn.scan_raw(HISTORY, prefix=HISTORY.prefix(cid), start=start):
                if not hidden(key):
                    unread += 1
                    if unread >= UNREAD_CAP:
                        break
        return ChannelView(channel, self.members.audience_txn(txn, cid), last, unread)

    def list_for(self, user_id: int, *, limit: int = 100, updated_after: int | None = None,
                 updated_before: int | None = None, ids: list[int] | None = None,
                 name: str | None = None) -> list[ChannelView]:
        """The user's channels, most recently active first."""
        views = []
        needle = name.casefold() if name else None
        with self.store.read() as txn:
            cids = ids if ids is not None else self.members.channel_ids_txn(txn, user_id)
            for cid in cids:
                try:
                    channel = access.require(txn, user_id, cid).channel
                except access.NotFound:
                    continue
                if needle and needle not in (channel.name or "").casefold():
                    continue
                view = self.view_txn(txn, channel, user_id)
                active = activity_ms(view)
                if updated_after is not None and active <= updated_after:
                    continue
                if updated_before is not None and active >= updated_before:
                    continue
                views.append(view)
        views.sort(key=activity_ms, reverse=True)
        return views[:limit]
