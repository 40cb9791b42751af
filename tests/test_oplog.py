"""The operations log's safety net: an event published after a user went offline is logged for them."""

import trio

from chatd.core.events import Typing
from chatd.core.oplog import Delivery
from chatd.store import tables as T


async def _entries(server, user_id):
    return server.core.oplog.entries(user_id, after_ms=0)


async def test_publish_logs_for_users_who_went_offline_since_the_write(server):
    core = server.core
    alice = await core.accounts.create("alice")
    bob = await core.accounts.create("bob")
    online = core.bus.subscribe(alice.id)
    op_id = core.ids.next()
    event = Typing(cid=1, user_id=bob.id)
    # As if the write had found both online: nothing was logged in its transaction.
    core.oplog.publish(Delivery(event, [alice.id, bob.id], op_id, frozenset()))
    assert online.receive_nowait().event == event
    with trio.fail_after(5):
        while not await _entries(server, bob.id):
            await trio.sleep(0.01)
    assert [(i, e) for i, e in await _entries(server, bob.id)] == [(op_id, event)]
    assert await _entries(server, alice.id) == []  # she was online and got it live


async def test_publish_does_not_log_twice(server):
    core = server.core
    bob = await core.accounts.create("bob")
    op_id = core.ids.next()
    event = Typing(cid=1, user_id=bob.id)
    delivery = await core.store.write(lambda txn: core.oplog.record_txn(txn, op_id, event, [bob.id]))
    before = server.core.store.stats.writes
    core.oplog.publish(delivery)
    await trio.sleep(0.1)
    assert server.core.store.stats.writes == before  # the entry existed: no second write
    with core.store.read() as txn:
        assert txn.count(T.useridopid_op, prefix=T.useridopid_op.prefix(bob.id)) == 1
