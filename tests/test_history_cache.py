"""The cached latest page and read marks (core/messages.py): every durable write to a conversation
shows in the next read, whichever path wrote it."""

import msgspec
import pytest

from chatd.core.errors import NotFound
from chatd.core.permissions import SAMA_GROUP
from chatd.store import tables as T
from chatd.store.lmdb import Txn


async def _pair(core):
    alice = await core.accounts.create("alice")
    bob = await core.accounts.create("bob")
    conv, _, _ = await core.channels.create(alice.id, "dm", [bob.id])
    return alice.id, bob.id, conv.id


def _bodies(core, viewer, cid, limit=50):
    return [m.body for m in core.history.history(viewer, cid, limit=limit)]


async def test_latest_page_follows_sends_edits_and_deletes(server):
    core = server.core
    alice, bob, cid = await _pair(core)
    sent = [(await core.messages.send(alice, cid, body=f"m{i}"))[0] for i in range(5)]
    assert _bodies(core, bob, cid) == ["m4", "m3", "m2", "m1", "m0"]

    await core.messages.send(bob, cid, body="m5")
    assert _bodies(core, alice, cid) == ["m5", "m4", "m3", "m2", "m1", "m0"]

    await core.messages.edit(alice, sent[4].id, body="m4 edited")
    assert _bodies(core, bob, cid)[:2] == ["m5", "m4 edited"]

    await core.messages.delete(alice, cid, [sent[3].id], for_all=True)
    assert _bodies(core, bob, cid) == ["m5", "m4 edited", "m2", "m1", "m0"]


async def test_a_smaller_or_larger_limit_than_the_cached_page(server):
    core = server.core
    alice, bob, cid = await _pair(core)
    for i in range(8):
        await core.messages.send(alice, cid, body=f"m{i}")
    assert _bodies(core, bob, cid, limit=3) == ["m7", "m6", "m5"]
    assert _bodies(core, bob, cid, limit=2) == ["m7", "m6"]
    assert _bodies(core, bob, cid, limit=6) == ["m7", "m6", "m5", "m4", "m3", "m2"]
    assert len(_bodies(core, bob, cid, limit=100)) == 8
    assert _bodies(core, bob, cid, limit=4) == ["m7", "m6", "m5", "m4"]  # from the whole-conversation page
    page = core.history.history(bob, cid, limit=4)
    page.clear()  # a caller's copy: the cached page is untouched
    assert len(_bodies(core, bob, cid, limit=4)) == 4


async def test_messages_hidden_for_one_viewer_only(server):
    core = server.core
    alice, bob, cid = await _pair(core)
    sent = [(await core.messages.send(alice, cid, body=f"m{i}"))[0] for i in range(3)]
    assert _bodies(core, bob, cid) == ["m2", "m1", "m0"]
    await core.messages.delete(bob, cid, [sent[1].id], for_all=False)
    assert _bodies(core, bob, cid) == ["m2", "m0"]
    assert _bodies(core, alice, cid) == ["m2", "m1", "m0"]


async def test_membership_is_checked_on_every_read(server):
    core = server.core
    alice, bob, cid = await _pair(core)
    carol = (await core.accounts.create("carol")).id
    await core.messages.send(alice, cid, body="private")
    assert _bodies(core, bob, cid) == ["private"]  # now cached
    with pytest.raises(NotFound):
        core.history.history(carol, cid)


async def test_group_membership_changes_show_in_the_page(server):
    core = server.core
    alice, bob, _ = await _pair(core)
    carol = (await core.accounts.create("carol")).id
    conv, _, _ = await core.channels.create(alice, "group", [bob], preset=SAMA_GROUP, name="g")
    await core.messages.send(alice, conv.id, body="hello")
    before = core.history.history(bob, conv.id)
    await core.channels.update(alice, conv.id, add=[carol])
    after = core.history.history(bob, conv.id)
    assert len(after) == len(before) + 1 and after[0].system
    await core.channels.leave(bob, conv.id)
    assert len(core.history.history(alice, conv.id)) == len(after) + 1


async def test_read_marks_follow_mark_read_and_sends(server):
    core = server.core
    alice, bob, cid = await _pair(core)
    m1, _ = await core.messages.send(alice, cid, body="one")
    m2, _ = await core.messages.send(alice, cid, body="two")
    page = core.history.history(alice, cid)
    assert core.receipts.read_flags(cid, page) == [False, False]
    await core.receipts.mark_read(bob, cid, [m1.id])
    assert core.receipts.read_flags(cid, page) == [False, True]
    await core.receipts.mark_read(bob, cid)
    assert core.receipts.read_flags(cid, page) == [True, True]
    reply, _ = await core.messages.send(bob, cid, body="three")  # bob's own send moves his mark
    assert core.receipts.read_marks(cid)[bob] == reply.id
    marks = core.receipts.read_marks(cid)
    marks[bob] = 0  # a caller's copy
    assert core.receipts.read_marks(cid)[bob] == reply.id


async def test_a_write_straight_to_the_table_is_seen(server):
    """Any write to the watched tables goes through the same generations, not only Messages'."""
    core = server.core
    alice, bob, cid = await _pair(core)
    first, _ = await core.messages.send(alice, cid, body="one")
    assert _bodies(core, bob, cid) == ["one"]

    def rewrite(txn: Txn):
        key = T.chanidmsgid_msg.key(cid, first.id)
        msg = txn.get(T.chanidmsgid_msg, key)
        txn.put(T.chanidmsgid_msg, key, msgspec.structs.replace(msg, body="rewritten"))

    await core.store.write(rewrite)
    assert _bodies(core, bob, cid) == ["rewritten"]
