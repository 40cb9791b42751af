"""A channel keeps the rules of the dialect that made it, whichever dialect acts on it.

The groups dialect is not served yet; its groups are made here through the core exactly as it
will make them (owner-only management: `GROUPS_GROUP`), and a SAMA client acts on them.
"""

from chatd.core.errors import Forbidden
from chatd.core.permissions import GROUPS_GROUP, SAMA_GROUP

from .client import user_with_devices


async def _three(server, nursery):
    (owner,) = await user_with_devices(server, nursery, "owner", ("d1",))
    (member,) = await user_with_devices(server, nursery, "member", ("d1",))
    (newcomer,) = await user_with_devices(server, nursery, "newcomer", ("d1",))
    return owner, member, newcomer


async def _group(server, owner, member, preset):
    channel, _, _ = await server.core.channels.create(int(owner.user_id), "group", [int(member.user_id)],
                                                      name="made elsewhere", preset=preset)
    return str(channel.id)


async def test_an_owner_only_group_refuses_a_sama_members_add_and_rename(server, nursery):
    owner, member, newcomer = await _three(server, nursery)
    cid = await _group(server, owner, member, GROUPS_GROUP)
    add = {"id": cid, "participants": {"add": [newcomer.user_id]}}
    assert await member.error("conversation_update", add) == 403
    assert await member.error("conversation_update", {"id": cid, "name": "renamed"}) == 403
    # Nothing changed, and members may still talk there.
    assert set(server.core.members.audience(int(cid))) == {int(owner.user_id), int(member.user_id)}
    assert server.core.channels.get_for(int(owner.user_id), int(cid)).name == "made elsewhere"
    await member.send_message(cid, "still allowed to write")
    # The owner may do both, through SAMA too.
    updated = (await owner.ok("conversation_update", {**add, "name": "renamed"}))["conversation"]
    assert newcomer.user_id in updated["participants"] and updated["name"] == "renamed"


async def test_a_sama_group_lets_any_member_add_and_rename(server, nursery):
    owner, member, newcomer = await _three(server, nursery)
    cid = await _group(server, owner, member, SAMA_GROUP)
    updated = (await member.ok("conversation_update", {"id": cid, "name": "renamed",
                                                       "participants": {"add": [newcomer.user_id]}}))
    assert newcomer.user_id in updated["conversation"]["participants"]
    # Removing others stays the owner's, in either kind of group.
    assert await member.error("conversation_update", {"id": cid, "participants": {"remove": [newcomer.user_id]}}) \
        == 403


async def test_owner_leaving_is_the_dialects_choice(server, nursery):
    owner, member, _ = await _three(server, nursery)
    cid = int(await _group(server, owner, member, GROUPS_GROUP))
    core = server.core
    try:
        await core.channels.leave(int(owner.user_id), cid, owner_leaves="refuse")
    except Forbidden:
        pass
    else:
        raise AssertionError("the owner left although the dialect refuses it")
    assert core.channels.get_for(int(owner.user_id), cid).owner_id == int(owner.user_id)
    # SAMA's rule on the same channel: ownership passes on.
    assert (await owner.ok("conversation_delete", {"id": str(cid)}))["success"] is True
    assert core.channels.get_for(int(member.user_id), cid).owner_id == int(member.user_id)
