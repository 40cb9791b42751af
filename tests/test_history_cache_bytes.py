"""History caches are bounded by bytes (`limits.history_cache_mb`), not by entry count: reading
far more history than the budget keeps no more memory than the budget."""

import gc
import tracemalloc

import pytest

from chatd.core.cache import ByteLRU
from chatd.dialects.sama import wire
from tests.helpers import make_config

BODY = "x" * 4000


def test_byte_lru_evicts_least_recently_used_to_stay_in_budget():
    cache = ByteLRU(10_000)
    for key in "abc":
        cache.put(key, key.upper(), 2_000)
    assert cache.get("a") == "A"  # now the most recently used
    cache.put("d", "D", 4_000)
    assert cache.get("b") is None and cache.get("a") == "A" and cache.get("d") == "D"
    assert cache.used <= cache.max_bytes
    cache.put("huge", "H", 20_000)  # larger than the budget: not kept, nothing evicted for it
    assert cache.get("huge") is None and cache.get("d") == "D"
    cache.put("d", "D2", 100)  # replacing an entry releases its old size
    assert cache.get("d") == "D2" and cache.used <= 10_000


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, limits={"history_cache_mb": 1}, dialects={"sama": {"enabled": True}})


@pytest.mark.deadline(60)
async def test_reading_much_more_history_than_the_budget_keeps_memory_bounded(server):
    core = server.core
    users = [(await core.accounts.create(f"u{i}")).id for i in range(21)]
    convs = []
    for other in users[1:]:
        conv, _, _ = await core.channels.create(users[0], "dm", [other])
        convs.append(conv.id)
    for cid in convs:
        for _ in range(60):
            await core.messages.send(users[0], cid, body=BODY)
    # 1,200 messages of 4 KB: about 5 MB stored, 15 MB as decoded, cached and rendered before
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(2):
            for cid in convs:
                page = core.history.history(users[0], cid, limit=50)
                for msg, read in zip(page, core.receipts.read_flags(cid, page), strict=True):
                    wire.message_json(msg, None, "read" if read else "sent")
                core.history.history(users[0], cid, limit=50, before_id=page[-1].id)  # older pages
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    caches = (core.history._decoded, core.history._latest, core.receipts._marks, core.members._audience, wire._RENDERED)
    assert all(c.used <= c.max_bytes for c in caches)
    assert sum(c.max_bytes for c in caches) <= 1 << 20
    assert len(core.history._decoded) > 10  # the caches are in use, within their budget
    assert kept < 2 << 20, f"{kept} bytes kept after reading history with a 1 MB cache budget"
