"""The permission engine: what an actor may do in a channel, as an int of Revolt 0.5.5's bits.

Pure: no store, no I/O, the standard library only. It reads facts gathered by the caller; any
object with the attribute names of `ChannelFacts`, `MemberFacts`, `SpaceFacts`, `SpaceMemberFacts`
and `Role` will do (the core's own structs have them). Times are Unix milliseconds.

`compute(facts)`, in order:

1. Privileged actor (CLI, admin token): `ALL`. Globally banned actor, or a closed channel
   (any nonzero `closed_at`): 0.
2. `saved`: its owner `ALL`, anyone else 0.
3. `dm`: the two people of `pair` get `DM_DEFAULT`, or view and read only when either blocked
   the other; anyone else 0. Sockchat's DMs are plain dms: they need no preset.
4. `group`: owner `ALL`; member `DEFAULT_PERMISSION_VIEW_ONLY | default_allow` (so 0 means view
   and read only; `default_deny` is unused, Revolt's groups have allows only); anyone else 0.
5. `text` in a space (Revolt's calculation): space owner `ALL`; no space member, or banned from
   the space, 0; else `space_permissions()` (space default, then the member's roles, then the
   timeout limit), then the channel's default override, then the channel's overrides for the
   member's roles, then the timeout limit again.
6. `text` without a space (admin): member `(TEXT_DEFAULT | default_allow) & ~default_deny`;
   anyone else 0.
7. Overlays: channel ban, 0; channel or member mute, view and read only; no ViewChannel, 0.

An override (allow, deny) applies as `(p | allow) & ~deny`. Roles apply lowest priority first,
so the highest wins: a lower rank number is a higher role (Revolt sorts by rank, descending, and
applies in that order); equal ranks apply in descending role id. Roles the space doesn't define
are skipped. "Everything" is `ALL`, the defined bits, where Revolt returns `GRANT_ALL_SAFE`.

Where chatd differs from 0.5.5 (crates/quark/src/permissions/impl/permission.rs of
revoltchat/backend), it follows later Revolt: React is in the DM default (4a7917e9); group members
get view and read plus the group's allows, not the DM default when unset, and no ViewChannel
means nothing (crates/core/permissions/src/impl.rs). A DM's send needs no friendship, only no block.

Presets, set by the dialect that creates a group into its `default_allow`: `SAMA_GROUP` (any member
may add people and rename), `GROUPS_GROUP` (management is the owner's).
"""

import enum
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

__all__ = [
    "ALL",
    "ALLOW_IN_TIMEOUT",
    "DEFAULT_PERMISSION",
    "DEFAULT_PERMISSION_DIRECT_MESSAGE",
    "DEFAULT_PERMISSION_SAVED_MESSAGES",
    "DEFAULT_PERMISSION_SERVER",
    "DEFAULT_PERMISSION_VIEW_ONLY",
    "DM_DEFAULT",
    "GRANT_ALL",
    "GRANT_ALL_SAFE",
    "GROUPS_GROUP",
    "I64_MAX",
    "I64_MIN",
    "SAMA_GROUP",
    "TEXT_DEFAULT",
    "ChannelFacts",
    "Facts",
    "MemberFacts",
    "Perm",
    "Role",
    "SpaceFacts",
    "SpaceMemberFacts",
    "can_act_on",
    "compute",
    "has",
    "may_manage_message",
    "member_rank",
    "outranks",
    "space_permissions",
]

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1


class Perm(enum.IntFlag):
    """Revolt 0.5.5's `Permission` (crates/quark/src/permissions/defn/permission.rs)."""

    ManageChannel = 1 << 0
    ManageServer = 1 << 1
    ManagePermissions = 1 << 2
    ManageRole = 1 << 3
    ManageCustomisation = 1 << 4
    KickMembers = 1 << 6
    BanMembers = 1 << 7
    TimeoutMembers = 1 << 8
    AssignRoles = 1 << 9
    ChangeNickname = 1 << 10
    ManageNicknames = 1 << 11
    ChangeAvatar = 1 << 12
    RemoveAvatars = 1 << 13
    ViewChannel = 1 << 20
    ReadMessageHistory = 1 << 21
    SendMessage = 1 << 22
    ManageMessages = 1 << 23
    ManageWebhooks = 1 << 24
    InviteOthers = 1 << 25
    SendEmbeds = 1 << 26
    UploadFiles = 1 << 27
    Masquerade = 1 << 28
    React = 1 << 29
    Connect = 1 << 30
    Speak = 1 << 31
    Video = 1 << 32
    MuteMembers = 1 << 33
    DeafenMembers = 1 << 34
    MoveMembers = 1 << 35


ALL = int(sum(Perm))
GRANT_ALL_SAFE = 0x000F_FFFF_FFFF_FFFF
GRANT_ALL = (1 << 64) - 1

ALLOW_IN_TIMEOUT = Perm.ViewChannel | Perm.ReadMessageHistory
DEFAULT_PERMISSION_VIEW_ONLY = Perm.ViewChannel | Perm.ReadMessageHistory
DEFAULT_PERMISSION = (
    DEFAULT_PERMISSION_VIEW_ONLY
    | Perm.SendMessage
    | Perm.InviteOthers
    | Perm.SendEmbeds
    | Perm.UploadFiles
    | Perm.Connect
    | Perm.Speak
)
DEFAULT_PERMISSION_SAVED_MESSAGES = GRANT_ALL_SAFE
DEFAULT_PERMISSION_DIRECT_MESSAGE = DEFAULT_PERMISSION | Perm.ManageChannel
DEFAULT_PERMISSION_SERVER = DEFAULT_PERMISSION | Perm.ChangeNickname | Perm.ChangeAvatar

DM_DEFAULT = DEFAULT_PERMISSION_DIRECT_MESSAGE | Perm.React
TEXT_DEFAULT = (
    DEFAULT_PERMISSION_VIEW_ONLY
    | Perm.SendMessage
    | Perm.InviteOthers
    | Perm.SendEmbeds
    | Perm.UploadFiles
    | Perm.React
)

SAMA_GROUP = (
    Perm.ViewChannel
    | Perm.ReadMessageHistory
    | Perm.SendMessage
    | Perm.React
    | Perm.UploadFiles
    | Perm.InviteOthers
    | Perm.ManageChannel
)
GROUPS_GROUP = Perm.ViewChannel | Perm.ReadMessageHistory | Perm.SendMessage | Perm.React

# The constants as plain ints: IntFlag arithmetic costs microseconds, and compute() runs per request.
(ALLOW_IN_TIMEOUT, DEFAULT_PERMISSION_VIEW_ONLY, DEFAULT_PERMISSION, DEFAULT_PERMISSION_DIRECT_MESSAGE,
 DEFAULT_PERMISSION_SERVER, DM_DEFAULT, TEXT_DEFAULT, SAMA_GROUP, GROUPS_GROUP) = map(int, (
    ALLOW_IN_TIMEOUT, DEFAULT_PERMISSION_VIEW_ONLY, DEFAULT_PERMISSION, DEFAULT_PERMISSION_DIRECT_MESSAGE,
    DEFAULT_PERMISSION_SERVER, DM_DEFAULT, TEXT_DEFAULT, SAMA_GROUP, GROUPS_GROUP))
_VIEW = int(Perm.ViewChannel)


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    """A channel as the engine reads it; `kind` is "dm", "group", "text" or "saved"."""

    kind: str
    owner_id: int
    space_id: int = 0
    default_allow: int = 0
    default_deny: int = 0
    role_overrides: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    muted_until: int = 0
    closed_at: int = 0
    pair: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class MemberFacts:
    """The actor's membership row of the channel."""

    muted_until: int = 0


@dataclass(frozen=True, slots=True)
class Role:
    allow: int
    deny: int
    rank: int


@dataclass(frozen=True, slots=True)
class SpaceFacts:
    owner_id: int
    default_permissions: int
    roles: Mapping[int, Role] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpaceMemberFacts:
    roles: tuple[int, ...] = ()
    timeout_until: int = 0


@dataclass(slots=True)
class Facts:
    """Everything `compute` needs. `member` is None when the actor is not a member of the channel;
    `blocked`: in a dm, either side blocked the other."""

    actor: int
    channel: Any
    member: Any = None
    _: KW_ONLY
    privileged: bool = False
    globally_banned: bool = False
    channel_banned: bool = False
    blocked: bool = False
    space: Any = None
    space_member: Any = None
    space_banned: bool = False
    now: int = 0


def has(perms: int, need: int) -> bool:
    """Whether every bit of `need` is in `perms`."""
    return perms & need == need


def may_manage_message(perms: int, actor: int, author_id: int) -> bool:
    """Edit or delete a message: its author or a ManageMessages holder, who can see the channel."""
    return has(perms, Perm.ViewChannel) and (actor == author_id or has(perms, Perm.ManageMessages))


def _apply(perms: int, allow: int, deny: int) -> int:
    return (perms | allow) & ~deny


def _by_rank(space: Any, role_ids: Iterable[int]) -> list[int]:
    roles = space.roles
    defined = {r for r in role_ids if r in roles}
    return sorted(defined, key=lambda r: (roles[r].rank, r), reverse=True)


def space_permissions(
    actor: int,
    space: Any,
    space_member: Any,
    *,
    space_banned: bool = False,
    now: int = 0,
    privileged: bool = False,
) -> int:
    """Revolt's server-level permissions: owner `ALL`; no member row or banned 0; else the space's
    default, then the member's roles by rank, then the timeout limit."""
    if privileged or actor == space.owner_id:
        return int(ALL)
    if space_member is None or space_banned:
        return 0
    perms = space.default_permissions
    for role_id in _by_rank(space, space_member.roles):
        role = space.roles[role_id]
        perms = _apply(perms, role.allow, role.deny)
    if space_member.timeout_until > now:
        perms &= ALLOW_IN_TIMEOUT
    return int(perms & ALL)


def _saved(f: Facts) -> int:
    return ALL if f.actor == f.channel.owner_id else 0


def _dm(f: Facts) -> int:
    pair = f.channel.pair
    if pair is None or f.actor not in pair:
        return 0
    return DEFAULT_PERMISSION_VIEW_ONLY if f.blocked else DM_DEFAULT


def _group(f: Facts) -> int:
    if f.actor == f.channel.owner_id:
        return ALL
    if f.member is None:
        return 0
    return DEFAULT_PERMISSION_VIEW_ONLY | f.channel.default_allow


def _text(f: Facts) -> int:
    channel = f.channel
    if not channel.space_id:
        if f.member is None:
            return 0
        return _apply(TEXT_DEFAULT, channel.default_allow, channel.default_deny)
    space, space_member = f.space, f.space_member
    if space is None:
        return 0
    if f.actor == space.owner_id:
        return ALL
    if space_member is None or f.space_banned:
        return 0
    perms = space_permissions(f.actor, space, space_member, now=f.now)
    perms = _apply(perms, channel.default_allow, channel.default_deny)
    for role_id in _by_rank(space, space_member.roles):
        override = channel.role_overrides.get(role_id)
        if override is not None:
            perms = _apply(perms, *override)
    if space_member.timeout_until > f.now:
        perms &= ALLOW_IN_TIMEOUT
    return perms


_KINDS = {"saved": _saved, "dm": _dm, "group": _group, "text": _text}


def compute(facts: Facts) -> int:
    """The actor's permissions in `facts.channel` (see the module docstring for the order)."""
    if facts.privileged:
        return int(ALL)
    channel = facts.channel
    if facts.globally_banned or channel.closed_at:
        return 0
    kind = _KINDS.get(channel.kind)
    perms = kind(facts) & ALL if kind is not None else 0
    if facts.channel_banned:
        return 0
    member = facts.member
    if channel.muted_until > facts.now or (member is not None and member.muted_until > facts.now):
        perms &= DEFAULT_PERMISSION_VIEW_ONLY
    return int(perms) if perms & _VIEW else 0


def member_rank(space: Any, actor: int, space_member: Any) -> int:
    """Revolt's ranking: the owner `I64_MIN`; a member the lowest rank number among their roles;
    no roles, or no member row, `I64_MAX`. A lower number is a higher rank."""
    if actor == space.owner_id:
        return I64_MIN
    if space_member is None:
        return I64_MAX
    ranks = (space.roles[r].rank for r in space_member.roles if r in space.roles)
    return min(ranks, default=I64_MAX)


def outranks(space: Any, actor: int, space_member: Any, rank: int) -> bool:
    """Whether the actor ranks strictly above `rank`: Revolt's test for assigning, editing or
    overriding a role of that rank, and (with a member's rank) for acting on that member."""
    return member_rank(space, actor, space_member) < rank


def can_act_on(
    space: Any,
    actor: int,
    actor_member: Any,
    target: int,
    target_member: Any,
    *,
    privileged: bool = False,
) -> bool:
    """Kick, ban, time out or manage `target`: never the space owner (nor, unprivileged, oneself or
    an equal); a privileged actor anyone else; otherwise only members ranked strictly below."""
    if target == space.owner_id:
        return False
    target_rank = member_rank(space, target, target_member)
    return privileged or outranks(space, actor, actor_member, target_rank)
