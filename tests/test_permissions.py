"""The permission engine (chatd/core/permissions.py): pure, table-driven, no server.

"Revolt test.rs" below is revoltchat/backend crates/core/permissions/src/test.rs (2023, the
calculation 0.5.5 had, moved into its own crate); "Revolt 0.5.5" is tag 0.5.5 of the same repository.
"""

import ast
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from chatd.core import permissions
from chatd.core.permissions import (
    ALL,
    ALLOW_IN_TIMEOUT,
    DEFAULT_PERMISSION,
    DEFAULT_PERMISSION_DIRECT_MESSAGE,
    DEFAULT_PERMISSION_SAVED_MESSAGES,
    DEFAULT_PERMISSION_SERVER,
    DEFAULT_PERMISSION_VIEW_ONLY,
    DM_DEFAULT,
    GRANT_ALL,
    GRANT_ALL_SAFE,
    GROUPS_GROUP,
    I64_MAX,
    I64_MIN,
    SAMA_GROUP,
    TEXT_DEFAULT,
    ChannelFacts,
    Facts,
    MemberFacts,
    Perm,
    Role,
    SpaceFacts,
    SpaceMemberFacts,
    can_act_on,
    compute,
    has,
    may_manage_message,
    member_rank,
    outranks,
    space_permissions,
)

VIEW, READ, SEND = Perm.ViewChannel, Perm.ReadMessageHistory, Perm.SendMessage
VIEW_READ = VIEW | READ
REACT, UPLOAD, MANAGE_MSGS = Perm.React, Perm.UploadFiles, Perm.ManageMessages

NOW = 1_700_000_000_000
LATER, EARLIER = NOW + 60_000, NOW - 60_000

OWNER, ALICE, BOB, CAROL = 1, 2, 3, 4  # Carol is a stranger everywhere
SPACE_OWNER, SPACE_ID = 10, 7
HIGH, LOW, OTHER, UNDEFINED = 201, 202, 203, 999  # role ids; HIGH outranks LOW
MEMBER = MemberFacts()


def dm(**kw) -> ChannelFacts:
    return ChannelFacts("dm", owner_id=0, pair=(ALICE, BOB), **kw)


def group(allow: int = 0, **kw) -> ChannelFacts:
    return ChannelFacts("group", owner_id=OWNER, default_allow=allow, **kw)


def standalone(**kw) -> ChannelFacts:
    return ChannelFacts("text", owner_id=OWNER, **kw)


def space_text(**kw) -> ChannelFacts:
    return ChannelFacts("text", owner_id=SPACE_OWNER, space_id=SPACE_ID, **kw)


def space(default: int = VIEW_READ | SEND, roles: dict | None = None) -> SpaceFacts:
    return SpaceFacts(SPACE_OWNER, default, roles or {})


def ranked(high: Role, low: Role) -> SpaceFacts:
    return space(roles={HIGH: high, LOW: low})


def f(channel, member=MEMBER, actor=ALICE, **kw) -> Facts:
    return Facts(actor, channel, member, now=NOW, **kw)


def in_space(channel, roles=(), sp=None, actor=ALICE, timeout_until=0, **kw) -> Facts:
    return Facts(
        actor,
        channel,
        MEMBER,
        space=sp or space(),
        space_member=SpaceMemberFacts(tuple(roles), timeout_until),
        now=NOW,
        **kw,
    )


COMPUTE_CASES = [
    # 1. privileged, globally banned, closed
    ("privileged stranger in a dm gets everything", Facts(CAROL, dm(), privileged=True), ALL),
    ("privileged wins over a closed channel", Facts(CAROL, group(closed_at=EARLIER), privileged=True, now=NOW), ALL),
    ("privileged wins over a global ban", Facts(CAROL, dm(), privileged=True, globally_banned=True), ALL),
    ("privileged wins over a channel ban and mute",
     Facts(CAROL, group(muted_until=LATER), privileged=True, channel_banned=True, now=NOW), ALL),
    ("globally banned saved owner gets nothing", f(ChannelFacts("saved", ALICE), globally_banned=True), 0),
    ("globally banned group owner gets nothing", f(group(), actor=OWNER, globally_banned=True), 0),
    ("globally banned dm side gets nothing", f(dm(), globally_banned=True), 0),
    ("closed group: owner gets nothing", f(group(SAMA_GROUP, closed_at=EARLIER), actor=OWNER), 0),
    ("closed stand-alone text: member gets nothing", f(standalone(closed_at=EARLIER)), 0),
    ("closed with a future closed_at is closed too", f(standalone(closed_at=LATER)), 0),
    ("closed space channel: space owner gets nothing", in_space(space_text(closed_at=1), actor=SPACE_OWNER), 0),
    # 2. saved
    ("saved: owner gets everything", f(ChannelFacts("saved", ALICE)), ALL),
    ("saved: owner without a member row gets everything", f(ChannelFacts("saved", ALICE), member=None), ALL),
    ("saved: anyone else gets nothing", f(ChannelFacts("saved", ALICE), actor=BOB), 0),
    # 3. dm
    ("dm: first of the pair gets the DM default", f(dm()), DM_DEFAULT),
    ("dm: second of the pair gets the DM default", f(dm(), actor=BOB), DM_DEFAULT),
    ("dm: the pair decides, not the member row", f(dm(), member=None), DM_DEFAULT),
    ("dm: stranger gets nothing", f(dm(), actor=CAROL, member=None), 0),
    ("dm: stranger with a member row gets nothing", f(dm(), actor=CAROL), 0),
    ("dm without a pair gives nothing", f(ChannelFacts("dm", owner_id=ALICE)), 0),
    ("dm blocked: view and read only", f(dm(), blocked=True), VIEW_READ),
    ("dm blocked: the other side too", f(dm(), actor=BOB, blocked=True), VIEW_READ),
    ("dm blocked: stranger still nothing", f(dm(), actor=CAROL, blocked=True), 0),
    # Revolt test.rs validate_user_permissions: friends' DM = DEFAULT_PERMISSION_DIRECT_MESSAGE (with React)
    ("revolt example: DM between friends", f(dm()), DEFAULT_PERMISSION_DIRECT_MESSAGE | REACT),
    # 4. group
    ("group: owner gets everything", f(group(), actor=OWNER), ALL),
    ("group: owner without a member row gets everything", f(group(), actor=OWNER, member=None), ALL),
    ("group: member with no allows views and reads", f(group()), VIEW_READ),
    ("group: SAMA preset member", f(group(SAMA_GROUP)), SAMA_GROUP),
    ("group: groups preset member", f(group(GROUPS_GROUP)), GROUPS_GROUP),
    ("group: view and read are always added", f(group(SEND)), VIEW_READ | SEND),
    ("group: default_deny is not used", f(group(SEND, default_deny=SEND | VIEW)), VIEW_READ | SEND),
    ("group: stranger gets nothing", f(group(SAMA_GROUP), actor=CAROL, member=None), 0),
    # Revolt test.rs validate_group_permissions: group allowing SendMessage
    ("revolt example: group with only talking permission", f(group(SEND)), DEFAULT_PERMISSION_VIEW_ONLY | SEND),
    # 5. text in a space
    ("space: owner gets everything", in_space(space_text(), actor=SPACE_OWNER), ALL),
    ("space: owner without a space member row gets everything",
     Facts(SPACE_OWNER, space_text(), space=space(), now=NOW), ALL),
    ("space: owner is not limited by channel denies",
     in_space(space_text(default_deny=ALL), actor=SPACE_OWNER), ALL),
    ("space: non-member gets nothing", Facts(ALICE, space_text(), space=space(), now=NOW), 0),
    ("space: non-member gets nothing even from channel allows",
     Facts(ALICE, space_text(default_allow=ALL), space=space(), now=NOW), 0),
    ("space: banned member gets nothing", in_space(space_text(default_allow=SEND), space_banned=True), 0),
    ("space: no space facts gives nothing", f(space_text()), 0),
    ("space: member without roles gets the space default", in_space(space_text()), VIEW_READ | SEND),
    ("space: a role's allow adds", in_space(space_text(), [LOW], ranked(Role(0, 0, 1), Role(UPLOAD, 0, 9))),
     VIEW_READ | SEND | UPLOAD),
    ("space: a role's deny removes from the default",
     in_space(space_text(), [LOW], ranked(Role(0, 0, 1), Role(0, SEND, 9))), VIEW_READ),
    ("space: higher role's deny beats lower role's allow",
     in_space(space_text(), [HIGH, LOW], ranked(Role(0, UPLOAD, 1), Role(UPLOAD, 0, 9))), VIEW_READ | SEND),
    ("space: higher role's allow beats lower role's deny",
     in_space(space_text(), [LOW, HIGH], ranked(Role(SEND, 0, 1), Role(0, SEND, 9))), VIEW_READ | SEND),
    # revolt.chat/posts/architecture-overhaul: "smaller numbers take precedence ... -5 will win out on 5"
    ("revolt example: rank -5 wins out on rank 5",
     in_space(space_text(), [HIGH, LOW], ranked(Role(0, SEND, -5), Role(SEND, 0, 5))), VIEW_READ),
    ("space: a role's own deny beats its own allow",
     in_space(space_text(), [LOW], ranked(Role(0, 0, 1), Role(UPLOAD, UPLOAD, 9))), VIEW_READ | SEND),
    ("space: equal ranks, the lower role id applies last",
     in_space(space_text(), [HIGH, LOW], ranked(Role(UPLOAD, 0, 3), Role(0, UPLOAD, 3))), VIEW_READ | SEND | UPLOAD),
    ("space: roles the space doesn't define are skipped",
     in_space(space_text(role_overrides={UNDEFINED: (MANAGE_MSGS, 0)}), [UNDEFINED]), VIEW_READ | SEND),
    ("space: a role the member lacks doesn't apply",
     in_space(space_text(), [LOW], ranked(Role(MANAGE_MSGS, 0, 1), Role(0, 0, 9))), VIEW_READ | SEND),
    ("space: timed-out member is limited to view and read",
     in_space(space_text(), [HIGH], ranked(Role(MANAGE_MSGS, 0, 1), Role(0, 0, 9)), timeout_until=LATER),
     VIEW_READ),
    ("space: timeout again after the channel's allows",
     in_space(space_text(default_allow=MANAGE_MSGS, role_overrides={LOW: (UPLOAD, 0)}), [LOW],
              ranked(Role(0, 0, 1), Role(0, 0, 9)), timeout_until=LATER), VIEW_READ),
    ("space: a timeout that ended no longer limits",
     in_space(space_text(), timeout_until=NOW), VIEW_READ | SEND),
    ("space: channel default allow adds", in_space(space_text(default_allow=REACT)), VIEW_READ | SEND | REACT),
    ("space: channel default deny removes a role's allow",
     in_space(space_text(default_deny=UPLOAD), [LOW], ranked(Role(0, 0, 1), Role(UPLOAD, 0, 9))), VIEW_READ | SEND),
    ("space: role override allow beats the channel default deny",
     in_space(space_text(default_deny=SEND, role_overrides={LOW: (SEND, 0)}), [LOW],
              ranked(Role(0, 0, 1), Role(0, 0, 9))), VIEW_READ | SEND),
    ("space: higher role's override deny beats lower role's override allow",
     in_space(space_text(role_overrides={HIGH: (0, REACT), LOW: (REACT, 0)}), [HIGH, LOW],
              ranked(Role(0, 0, 1), Role(0, 0, 9))), VIEW_READ | SEND),
    ("space: higher role's override allow beats lower role's override deny",
     in_space(space_text(role_overrides={HIGH: (REACT, 0), LOW: (0, REACT)}), [LOW, HIGH],
              ranked(Role(0, 0, 1), Role(0, 0, 9))), VIEW_READ | SEND | REACT),
    ("space: overrides for roles the member lacks don't apply",
     in_space(space_text(role_overrides={HIGH: (MANAGE_MSGS, 0)}), [LOW], ranked(Role(0, 0, 1), Role(0, 0, 9))),
     VIEW_READ | SEND),
    ("space: hidden channel gives nothing", in_space(space_text(default_deny=VIEW)), 0),
    ("space: hidden channel, shown to a role",
     in_space(space_text(default_deny=VIEW, role_overrides={HIGH: (VIEW, 0)}), [HIGH],
              ranked(Role(0, 0, 1), Role(0, 0, 9))), VIEW_READ | SEND),
    ("space: a default without ViewChannel gives nothing", in_space(space_text(), sp=space(READ | SEND)), 0),
    # Revolt test.rs validate_server_permissions: default view+send+read; role allows upload+react, denies
    # read; the channel denies send; the role's channel override denies react
    ("revolt example: server channel layering",
     in_space(space_text(default_deny=SEND, role_overrides={LOW: (0, REACT)}), [LOW],
              space(VIEW | SEND | READ, {LOW: Role(UPLOAD | REACT, READ, 0)})), VIEW | UPLOAD),
    # Revolt test.rs validate_timed_out_member: server default DEFAULT_PERMISSION_SERVER, timed out
    ("revolt example: timed-out member",
     in_space(space_text(), sp=space(DEFAULT_PERMISSION_SERVER), timeout_until=LATER), DEFAULT_PERMISSION_VIEW_ONLY),
    # 6. text without a space
    ("stand-alone: member gets the text default", f(standalone()), TEXT_DEFAULT),
    ("stand-alone: default_allow adds", f(standalone(default_allow=MANAGE_MSGS)), TEXT_DEFAULT | MANAGE_MSGS),
    ("stand-alone: default_deny removes", f(standalone(default_deny=SEND | UPLOAD)), TEXT_DEFAULT & ~(SEND | UPLOAD)),
    ("stand-alone: deny beats allow", f(standalone(default_allow=MANAGE_MSGS, default_deny=MANAGE_MSGS)),
     TEXT_DEFAULT),
    ("stand-alone: non-member gets nothing", f(standalone(), member=None), 0),
    ("stand-alone: denied view gives nothing", f(standalone(default_deny=VIEW)), 0),
    ("stand-alone: role overrides are ignored", f(standalone(role_overrides={LOW: (MANAGE_MSGS, 0)})), TEXT_DEFAULT),
    # 7. overlays
    ("channel ban: group member gets nothing", f(group(SAMA_GROUP), channel_banned=True), 0),
    ("channel ban: group owner gets nothing", f(group(), actor=OWNER, channel_banned=True), 0),
    ("channel ban: stand-alone member gets nothing", f(standalone(), channel_banned=True), 0),
    ("channel ban: dm side gets nothing", f(dm(), channel_banned=True), 0),
    ("channel ban: space member gets nothing", in_space(space_text(), channel_banned=True), 0),
    ("channel muted: view and read only", f(group(SAMA_GROUP, muted_until=LATER)), VIEW_READ),
    ("channel mute ended (muted_until == now)", f(group(SAMA_GROUP, muted_until=NOW)), SAMA_GROUP),
    ("channel mute ended (muted_until before now)", f(group(SAMA_GROUP, muted_until=EARLIER)), SAMA_GROUP),
    ("channel muted: the owner too", f(group(muted_until=LATER), actor=OWNER), VIEW_READ),
    ("channel muted: dm", f(dm(muted_until=LATER)), VIEW_READ),
    ("channel muted: space owner too", in_space(space_text(muted_until=LATER), actor=SPACE_OWNER), VIEW_READ),
    ("channel muted: stranger still nothing", f(group(muted_until=LATER), actor=CAROL, member=None), 0),
    ("channel muted: hidden stays hidden", in_space(space_text(muted_until=LATER, default_deny=VIEW)), 0),
    ("member muted: view and read only", f(standalone(), member=MemberFacts(muted_until=LATER)), VIEW_READ),
    ("member mute ended", f(standalone(), member=MemberFacts(muted_until=EARLIER)), TEXT_DEFAULT),
    ("member muted in a space channel",
     Facts(ALICE, space_text(), MemberFacts(LATER), space=space(), space_member=SpaceMemberFacts(), now=NOW),
     VIEW_READ),
    ("member muted and dm blocked", f(dm(), member=MemberFacts(LATER), blocked=True), VIEW_READ),
    ("unknown kind gives nothing", f(ChannelFacts("voice", OWNER), actor=OWNER), 0),
]


@pytest.mark.parametrize(("facts", "expected"), [pytest.param(c[1], c[2], id=c[0]) for c in COMPUTE_CASES])
def test_compute(facts, expected):
    result = compute(facts)
    assert type(result) is int
    assert result == int(expected), f"{Perm(result)!r} != {Perm(expected)!r}"


def test_compute_reads_any_object_with_the_attribute_names():
    channel = SimpleNamespace(
        kind="group", owner_id=OWNER, space_id=0, default_allow=SAMA_GROUP, default_deny=0,
        role_overrides={}, muted_until=0, closed_at=0, pair=None,
    )
    assert compute(Facts(ALICE, channel, SimpleNamespace(muted_until=0), now=NOW)) == SAMA_GROUP
    assert compute(Facts(ALICE, channel, SimpleNamespace(muted_until=LATER), now=NOW)) == VIEW_READ


SPACE_CASES = [
    ("privileged gets everything", dict(actor=CAROL, space_member=None, privileged=True), ALL),
    ("owner gets everything", dict(actor=SPACE_OWNER, space_member=None), ALL),
    ("owner gets everything even when banned", dict(actor=SPACE_OWNER, space_member=None, space_banned=True), ALL),
    ("non-member gets nothing", dict(space_member=None), 0),
    ("banned member gets nothing", dict(space_banned=True), 0),
    ("member without roles gets the default", dict(), DEFAULT_PERMISSION_SERVER),
    ("a moderator role adds kick and ban",
     dict(space_member=SpaceMemberFacts((HIGH,))), DEFAULT_PERMISSION_SERVER | Perm.KickMembers | Perm.BanMembers),
    ("a restricting role removes",
     dict(space_member=SpaceMemberFacts((LOW,))), DEFAULT_PERMISSION_SERVER & ~Perm.ChangeNickname),
    ("higher role wins over lower",
     dict(space_member=SpaceMemberFacts((LOW, HIGH))),
     (DEFAULT_PERMISSION_SERVER | Perm.KickMembers | Perm.BanMembers)),
    ("timeout limits to view and read", dict(space_member=SpaceMemberFacts((HIGH,), LATER)), ALLOW_IN_TIMEOUT),
    ("timeout ended", dict(space_member=SpaceMemberFacts((), EARLIER)), DEFAULT_PERMISSION_SERVER),
]
MOD_SPACE = space(
    DEFAULT_PERMISSION_SERVER,
    {
        HIGH: Role(Perm.KickMembers | Perm.BanMembers | Perm.ChangeNickname, 0, 1),
        LOW: Role(0, Perm.ChangeNickname, 9),
    },
)


@pytest.mark.parametrize(("kw", "expected"), [pytest.param(c[1], c[2], id=c[0]) for c in SPACE_CASES])
def test_space_permissions(kw, expected):
    kw = {"actor": ALICE, "space_member": SpaceMemberFacts(), "now": NOW, **kw}
    actor, member = kw.pop("actor"), kw.pop("space_member")
    assert space_permissions(actor, MOD_SPACE, member, **kw) == int(expected)


RANK_SPACE = space(roles={HIGH: Role(0, 0, 1), LOW: Role(0, 0, 9), OTHER: Role(0, 0, 9)})
SM_HIGH, SM_LOW = SpaceMemberFacts((HIGH,)), SpaceMemberFacts((LOW,))
SM_OTHER, SM_NONE = SpaceMemberFacts((OTHER,)), SpaceMemberFacts()

RANK_CASES = [
    ("owner ranks highest", SPACE_OWNER, None, I64_MIN),
    ("no roles ranks lowest", ALICE, SM_NONE, I64_MAX),
    ("non-member ranks lowest", ALICE, None, I64_MAX),
    ("rank is the lowest number among the roles", ALICE, SpaceMemberFacts((LOW, HIGH)), 1),
    ("undefined roles don't count", ALICE, SpaceMemberFacts((UNDEFINED, LOW)), 9),
]


@pytest.mark.parametrize(("actor", "member", "expected"), [pytest.param(*c[1:], id=c[0]) for c in RANK_CASES])
def test_member_rank(actor, member, expected):
    assert member_rank(RANK_SPACE, actor, member) == expected


OUTRANK_CASES = [
    ("higher member outranks a lower role", ALICE, SM_HIGH, 9, True),
    ("a member doesn't outrank their own rank", ALICE, SM_HIGH, 1, False),
    ("lower member doesn't outrank a higher role", ALICE, SM_LOW, 1, False),
    ("owner outranks rank i64 min + 1", SPACE_OWNER, None, I64_MIN + 1, True),
    ("no roles outranks nothing", ALICE, SM_NONE, I64_MAX, False),
]


@pytest.mark.parametrize(
    ("actor", "member", "rank", "expected"), [pytest.param(*c[1:], id=c[0]) for c in OUTRANK_CASES]
)
def test_outranks(actor, member, rank, expected):
    assert outranks(RANK_SPACE, actor, member, rank) is expected


ACT_ON_CASES = [
    ("higher acts on lower", (ALICE, SM_HIGH, BOB, SM_LOW), {}, True),
    ("higher acts on a member without roles", (ALICE, SM_HIGH, BOB, SM_NONE), {}, True),
    ("lower can't act on higher", (BOB, SM_LOW, ALICE, SM_HIGH), {}, False),
    ("equal ranks can't act on each other", (BOB, SM_LOW, CAROL, SM_OTHER), {}, False),
    ("members without roles can't act on each other", (BOB, SM_NONE, CAROL, SM_NONE), {}, False),
    ("nobody acts on themselves", (ALICE, SM_HIGH, ALICE, SM_HIGH), {}, False),
    ("owner acts on anyone", (SPACE_OWNER, None, ALICE, SM_HIGH), {}, True),
    ("nobody acts on the owner", (ALICE, SM_HIGH, SPACE_OWNER, None), {}, False),
    ("owner doesn't act on themselves", (SPACE_OWNER, None, SPACE_OWNER, None), {}, False),
    ("privileged acts on anyone", (CAROL, None, ALICE, SM_HIGH), {"privileged": True}, True),
    ("privileged doesn't act on the owner", (CAROL, None, SPACE_OWNER, None), {"privileged": True}, False),
]


@pytest.mark.parametrize(("args", "kw", "expected"), [pytest.param(*c[1:], id=c[0]) for c in ACT_ON_CASES])
def test_can_act_on(args, kw, expected):
    assert can_act_on(RANK_SPACE, *args, **kw) is expected


HAS_CASES = [
    ("all bits present", SAMA_GROUP, Perm.InviteOthers | Perm.ManageChannel, True),
    ("one bit missing", GROUPS_GROUP, Perm.InviteOthers, False),
    ("groups preset can't rename", GROUPS_GROUP, Perm.ManageChannel, False),
    ("part of need missing", VIEW_READ, VIEW | SEND, False),
    ("needing nothing", 0, 0, True),
    ("everything has every bit", ALL, int(ALL), True),
]


@pytest.mark.parametrize(("perms", "need", "expected"), [pytest.param(*c[1:], id=c[0]) for c in HAS_CASES])
def test_has(perms, need, expected):
    assert has(perms, need) is expected


MESSAGE_CASES = [
    ("author may manage their message", GROUPS_GROUP, ALICE, ALICE, True),
    ("others may not without ManageMessages", GROUPS_GROUP, BOB, ALICE, False),
    ("ManageMessages may manage anyone's", TEXT_DEFAULT | MANAGE_MSGS, BOB, ALICE, True),
    ("author who can't see the channel may not", 0, ALICE, ALICE, False),
    ("muted author still may (view and read)", VIEW_READ, ALICE, ALICE, True),
]


@pytest.mark.parametrize(
    ("perms", "actor", "author", "expected"), [pytest.param(*c[1:], id=c[0]) for c in MESSAGE_CASES]
)
def test_may_manage_message(perms, actor, author, expected):
    assert may_manage_message(perms, actor, author) is expected


# Revolt 0.5.5: crates/quark/src/permissions/defn/permission.rs; also developers.revolt.chat/stack/delta/permissions
REVOLT_BITS = {
    "ManageChannel": 0, "ManageServer": 1, "ManagePermissions": 2, "ManageRole": 3, "ManageCustomisation": 4,
    "KickMembers": 6, "BanMembers": 7, "TimeoutMembers": 8, "AssignRoles": 9, "ChangeNickname": 10,
    "ManageNicknames": 11, "ChangeAvatar": 12, "RemoveAvatars": 13, "ViewChannel": 20, "ReadMessageHistory": 21,
    "SendMessage": 22, "ManageMessages": 23, "ManageWebhooks": 24, "InviteOthers": 25, "SendEmbeds": 26,
    "UploadFiles": 27, "Masquerade": 28, "React": 29, "Connect": 30, "Speak": 31, "Video": 32,
    "MuteMembers": 33, "DeafenMembers": 34, "MoveMembers": 35,
}


def test_bits_are_revolts():
    assert {p.name: p.value for p in Perm} == {name: 1 << bit for name, bit in REVOLT_BITS.items()}
    assert int(ALL) == sum(1 << bit for bit in REVOLT_BITS.values())


def test_revolt_defaults():
    assert DEFAULT_PERMISSION_VIEW_ONLY == ALLOW_IN_TIMEOUT == 0x30_0000
    assert DEFAULT_PERMISSION == 0xCE70_0000  # view, read, send, invite, embeds, upload, connect, speak
    assert DEFAULT_PERMISSION_DIRECT_MESSAGE == 0xCE70_0001  # + ManageChannel (0.5.5: no React)
    assert DEFAULT_PERMISSION_SERVER == 0xCE70_1400  # + ChangeNickname, ChangeAvatar
    assert DEFAULT_PERMISSION_SAVED_MESSAGES == GRANT_ALL_SAFE == (1 << 52) - 1
    assert GRANT_ALL == (1 << 64) - 1
    assert DM_DEFAULT == DEFAULT_PERMISSION_DIRECT_MESSAGE | REACT
    assert ALL & GRANT_ALL_SAFE == ALL


def test_presets():
    assert SAMA_GROUP == VIEW_READ | SEND | REACT | UPLOAD | Perm.InviteOthers | Perm.ManageChannel
    assert GROUPS_GROUP == VIEW_READ | SEND | REACT
    assert TEXT_DEFAULT == (DEFAULT_PERMISSION | REACT) & ~(Perm.Connect | Perm.Speak)


def test_imports_only_the_standard_library():
    tree = ast.parse(Path(permissions.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            imported.add(node.module.split(".")[0])
    assert imported, "no imports found: the check is broken"
    assert "chatd" not in imported
    assert imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names
