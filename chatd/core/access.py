"""`require`: the one place where the core decides whether an actor may do something in a channel.

It gathers the facts (the channel, the actor's member row, a DM's block state)
inside the caller's transaction and asks the permission engine
(`permissions.compute`). A channel the actor cannot view is answered exactly as
one that does not exist (NotFound), so a stranger learns nothing; one they can
view but not act in is Forbidden.
"""

from ..store import tables as T
from ..store.lmdb import DECODE_ERRORS, Txn, decode, undecodable
from . import permissions as P
from .cache import ByteLRU
from .clock import now_ms
from .errors import Forbidden, NotFound
from .models import Channel, Member
from .relationships import Relationships

# What operations need, as plain ints (IntFlag arithmetic costs microseconds per request).
VIEW = int(P.Perm.ViewChannel)
READ = int(P.Perm.ViewChannel | P.Perm.ReadMessageHistory)
SEND = int(P.Perm.ViewChannel | P.Perm.SendMessage)
MANAGE_MESSAGES = int(P.Perm.ViewChannel | P.Perm.ManageMessages)
UPLOAD = int(P.Perm.UploadFiles)


class Granted:
    """What `require` found: the channel, the actor's member row (None if not a member) and
    the actor's permission bits there."""

    __slots__ = ("channel", "member", "perms")

    def __init__(self, channel: Channel, member: Member | None, perms: int):
        self.channel = channel
        self.member = member
        self.perms = perms

    def has(self, need: int) -> bool:
        return self.perms & need == need


def not_found(cid: int) -> NotFound:
    return NotFound("channel not found", kind="channel", id=cid)


# Decoded channel and member records, keyed by their stored bytes (so never stale): every request
# in a channel reads both, and they change rarely. Records are not to be mutated (use replace).
_CHANNELS, _MEMBERS = ByteLRU(4 << 20), ByteLRU(4 << 20)


def _record_txn(txn: Txn, table: T.Table, key: bytes, cache: ByteLRU):
    raw = txn.get_raw(table, key)
    if raw is None:
        return None
    value = cache.get(raw)
    if value is None:
        try:
            value = decode(raw, table.value)
        except DECODE_ERRORS as e:
            undecodable(table.name, key, e)
            return None
        cache.put(raw, value, 4 * len(raw) + 400)
    return value


def get_channel_txn(txn: Txn, cid: int) -> Channel:
    channel = _record_txn(txn, T.chanid_chan, T.chanid_chan.key(cid), _CHANNELS) if 0 < cid <= T.MAX_U64 else None
    if channel is None:
        raise not_found(cid)
    return channel


def member_txn(txn: Txn, cid: int, user_id: int) -> Member | None:
    return _record_txn(txn, T.chanuserid_member, T.chanuserid_member.key(cid, user_id), _MEMBERS)


def permissions_txn(txn: Txn, actor: int, channel: Channel, member: Member | None, *, now: int) -> int:
    if member is None and channel.kind in ("dm", "group"):
        # A DM or group the actor is not in (or left: a DM comes back when either side writes).
        return 0
    blocked = False
    if channel.kind == "dm" and channel.pair:
        # The partner blocked the actor: the actor may read, not write. (A blocker may still write
        # to the one they blocked, as SAMA has it; Revolt refuses both ways — see the issue notes.)
        other = channel.pair[0] if channel.pair[1] == actor else channel.pair[1]
        blocked = Relationships.blocks_txn(txn, other, actor)
    return P.compute(P.Facts(actor, channel, member, blocked=blocked, now=now))


def require(txn: Txn, actor: int, cid: int, need: int = VIEW) -> Granted:
    """The channel, the actor's member row and permissions, if the actor has every bit of `need`;
    otherwise NotFound (cannot even view it) or Forbidden."""
    channel = get_channel_txn(txn, cid)
    member = member_txn(txn, cid, actor)
    perms = permissions_txn(txn, actor, channel, member, now=now_ms())
    if not perms & VIEW:
        raise not_found(cid)
    if perms & need != need:
        raise Forbidden(_refusal(need))
    return Granted(channel, member, perms)


def require_author_or(granted: Granted, actor: int, author_id: int, what: str) -> None:
    """Author rules: the author, or someone with ManageMessages."""
    if actor != author_id and not granted.has(MANAGE_MESSAGES):
        raise Forbidden(f"only the author can {what}")


_REFUSALS = {
    P.Perm.SendMessage: "you cannot send messages here",
    P.Perm.InviteOthers: "you cannot add people to this channel",
    P.Perm.ManageChannel: "you cannot change this channel",
    P.Perm.KickMembers: "you cannot remove people from this channel",
    P.Perm.React: "you cannot react here",
    P.Perm.UploadFiles: "you cannot upload files here",
    P.Perm.ManageMessages: "you cannot manage messages here",
}


def _refusal(need: int) -> str:
    for bit, text in _REFUSALS.items():
        if need & bit:
            return text
    return "you may not do this here"


def may_txn(txn: Txn, actor: int, cid: int, need: int = VIEW) -> bool:
    """Whether `require` would let the actor through (for filters that skip rather than refuse)."""
    try:
        require(txn, actor, cid, need)
    except (NotFound, Forbidden):
        return False
    return True
