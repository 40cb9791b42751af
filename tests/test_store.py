"""The LMDB store (chatd/store/): key encodings, scans, group commit, format version, kill -9 durability."""

import random
import signal
import subprocess
import sys
import time

import cbor2
import pytest
import trio
import trio.testing

from chatd.store import tables as T
from chatd.store.errors import StoreUnavailable
from chatd.store.lmdb import Store, StoreError, Txn, _prefix_end
from chatd.store.tables import FORMAT_VERSION, TABLES
from tests.helpers import REPO
from tests.helpers.burst_writer import check_record

# -- tables (key layouts byte for byte: tests/test_tables.py) ----------------------------------


def test_tables_declared_once():
    names = [t.name for t in TABLES]
    assert len(set(names)) == len(names)
    assert T.meta in TABLES


# -- scans ----------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "data", map_size=64 << 20, batch=256)
    yield s
    s.close()


SCAN_KEYS = [
    b"\x00", b"\x00\x01", b"\x01", b"\x01\x00", b"\x01\xff", b"\x01\xff\x00", b"\x01\xff\xff",
    b"\x02", b"a", b"ab", b"abc", b"ac", b"b", b"\xfe", b"\xfe\xff", b"\xff", b"\xff\x00",
    b"\xff\x01", b"\xff\xff", b"\xff\xff\x00", b"\xff\xff\xff",
]


def _fill(store, keys_):
    store.write_now(lambda txn: [txn.put_encoded(T.useridsessionid_, k, b"v" + k) for k in keys_])


def _reference(keys_, prefix=b"", start=None, stop=None, reverse=False, limit=None):
    out = sorted(k for k in keys_ if k.startswith(prefix)
                 and (start is None or k >= start) and (stop is None or k < stop))
    if reverse:
        out.reverse()
    return out[:limit] if limit is not None else out


def _scan(store, **kw):
    with store.read() as txn:
        items = list(txn.scan_raw(T.useridsessionid_, **kw))
    assert all(v == b"v" + k for k, v in items)
    return [k for k, _ in items]


def test_scan_prefix_start_stop_reverse_limit(store):
    _fill(store, SCAN_KEYS)
    assert _scan(store) == sorted(SCAN_KEYS)
    assert _scan(store, reverse=True) == sorted(SCAN_KEYS, reverse=True)
    assert _scan(store, prefix=b"a") == [b"a", b"ab", b"abc", b"ac"]
    assert _scan(store, prefix=b"a", reverse=True) == [b"ac", b"abc", b"ab", b"a"]
    assert _scan(store, prefix=b"a", limit=2) == [b"a", b"ab"]
    assert _scan(store, prefix=b"a", reverse=True, limit=1) == [b"ac"]
    assert _scan(store, prefix=b"a", start=b"ab", stop=b"ac") == [b"ab", b"abc"]
    assert _scan(store, prefix=b"a", start=b"ab", stop=b"ac", reverse=True) == [b"abc", b"ab"]
    assert _scan(store, start=b"b", stop=b"\xff") == [b"b", b"\xfe", b"\xfe\xff"]
    assert _scan(store, prefix=b"zz") == []
    assert _scan(store, prefix=b"zz", reverse=True) == []


def test_scan_0xff_prefix_edge(store):
    _fill(store, SCAN_KEYS)
    # A prefix of all 0xFF bytes has no successor key: the scan runs to the end of the table.
    assert _scan(store, prefix=b"\xff") == [b"\xff", b"\xff\x00", b"\xff\x01", b"\xff\xff",
                                            b"\xff\xff\x00", b"\xff\xff\xff"]
    assert _scan(store, prefix=b"\xff\xff") == [b"\xff\xff", b"\xff\xff\x00", b"\xff\xff\xff"]
    assert _scan(store, prefix=b"\xff\xff", reverse=True) == [b"\xff\xff\xff", b"\xff\xff\x00", b"\xff\xff"]
    assert _scan(store, prefix=b"\x01\xff") == [b"\x01\xff", b"\x01\xff\x00", b"\x01\xff\xff"]
    assert _scan(store, prefix=b"\x01\xff", reverse=True) == [b"\x01\xff\xff", b"\x01\xff\x00", b"\x01\xff"]
    assert _scan(store, prefix=b"\xfe", reverse=True) == [b"\xfe\xff", b"\xfe"]
    assert _prefix_end(b"\x01\xff\xff") == b"\x02"
    assert _prefix_end(b"\xff\xff") is None
    assert _prefix_end(b"ab") == b"ac"


def test_scan_matches_reference_on_random_queries(store):
    rng = random.Random(7)
    alphabet = [0x00, 0x01, 0x7F, 0xFE, 0xFF]
    all_keys = sorted({bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 5))) for _ in range(300)})
    _fill(store, all_keys)

    def some_key():
        return bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 4)))

    for _ in range(1500):
        kw = {"prefix": some_key(), "reverse": rng.random() < 0.5}
        if rng.random() < 0.5:
            kw["start"] = some_key()
        if rng.random() < 0.5:
            kw["stop"] = some_key()
        if rng.random() < 0.3:
            kw["limit"] = rng.randrange(1, 5)
        assert _scan(store, **kw) == _reference(all_keys, **kw), kw


def test_typed_get_put_scan(store):
    store.write_now(lambda txn: [txn.put(T.meta, b"k%d" % i, {"i": i, "b": b"\x00\xff"}) for i in range(3)])
    with store.read() as txn:
        assert txn.get(T.meta, b"k1") == {"i": 1, "b": b"\x00\xff"}
        assert txn.get(T.meta, b"missing") is None
        assert [v["i"] for _, v in txn.scan(T.meta, prefix=b"k")] == [0, 1, 2]
        assert txn.count(T.meta, prefix=b"k") == 3
        assert txn.exists(T.meta, b"k2") and not txn.exists(T.meta, b"k9")


# -- group commit ---------------------------------------------------------------------------


async def test_group_commit_200_concurrent_writers(store):
    results = {}

    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)

        async def one(i):
            def put_txn(txn: Txn):
                txn.put(T.meta, b"w" + T.ID.encode(i), {"i": i})
                return i * 2

            results[i] = await store.write(put_txn)

        async with trio.open_nursery() as writers:
            for i in range(200):
                writers.start_soon(one, i)
        await store.close_writes()

    assert results == {i: i * 2 for i in range(200)}
    with store.read() as txn:
        assert [v["i"] for _, v in txn.scan(T.meta, prefix=b"w")] == list(range(200))
    assert store.stats.writes == 200
    assert store.stats.commits < 200, "concurrent writes should share commits"
    assert sum(n for bound, n in store.stats.batch_buckets.items() if bound > 1) >= 1
    assert sum(store.stats.batch_buckets.values()) == store.stats.commits


async def test_failing_write_rolls_back_only_itself(store):
    outcome = {}

    async def one(i):
        def put_txn(txn: Txn):
            txn.put(T.meta, b"r" + T.ID.encode(i), i)
            if i == 3:
                raise ValueError("boom")
            return i

        try:
            outcome[i] = await store.write(put_txn)
        except ValueError as e:
            outcome[i] = e

    async with trio.open_nursery() as nursery:
        for i in range(8):
            nursery.start_soon(one, i)
        await trio.testing.wait_all_tasks_blocked()  # all 8 queued before the writer starts
        await nursery.start(store.run)
        while len(outcome) < 8:
            await trio.sleep(0.001)
        await store.close_writes()

    assert store.stats.commits == 1, "the 8 queued writes should form one batch"
    assert isinstance(outcome.pop(3), ValueError)
    assert outcome == {i: i for i in range(8) if i != 3}
    with store.read() as txn:
        present = {T.ID.decode(k[1:]) for k, _ in txn.scan_raw(T.meta, prefix=b"r")}
    assert present == {0, 1, 2, 4, 5, 6, 7}


async def test_slow_write_function_does_not_stall_the_event_loop(store):
    """The loop waits for a batch's functions only up to HOLD_LOOP_S; a slow one runs on alone."""
    gaps = []

    async def ticker(task_status=trio.TASK_STATUS_IGNORED):
        last = trio.current_time()
        task_status.started()
        while True:
            await trio.sleep(0.005)
            now = trio.current_time()
            gaps.append(now - last)
            last = now

    def slow_txn(txn: Txn):
        time.sleep(0.5)  # holds no GIL, like a long LMDB scan
        txn.put(T.meta, b"slow", 1)
        return "ok"

    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await nursery.start(ticker)
        assert await store.write(slow_txn) == "ok"
        nursery.cancel_scope.cancel()

    assert len(gaps) > 20
    assert max(gaps) < 0.25, f"the event loop stalled {max(gaps):.3f} s behind a slow write"
    with store.read() as txn:
        assert txn.get(T.meta, b"slow") == 1


async def test_generation_changes_after_the_commit_and_only_for_its_prefix(store):
    store.watch(T.meta, 2)
    seen_inside = []

    def put_txn(txn: Txn):
        txn.put(T.meta, b"aa-1", 1)
        txn.delete(T.meta, b"cc-1")
        seen_inside.append(store.generation(T.meta, b"aa"))
        return store.generation(T.meta, b"aa")

    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        assert await store.write(put_txn) == 0  # not yet durable while the function runs
        assert store.generation(T.meta, b"aa") == 1
        assert store.generation(T.meta, b"cc") == 1  # a delete is a change too
        assert store.generation(T.meta, b"bb") == 0
        await store.write(lambda txn: txn.put(T.userid_user, b"aa-unwatched", 1))
        assert store.generation(T.meta, b"aa") == 1
        await store.close_writes()
    store.write_now(lambda txn: txn.put(T.meta, b"aa-2", 2))
    assert store.generation(T.meta, b"aa") == 2
    assert seen_inside == [0]


async def test_write_after_close_is_refused(store):
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await store.close_writes()
    with pytest.raises(StoreUnavailable):
        await store.write(lambda txn: None)


# -- format version -------------------------------------------------------------------------


def test_format_version_written_and_newer_refused(tmp_path):
    s = Store(tmp_path / "d")
    with s.read() as txn:
        assert txn.get(T.meta, b"format_version") == FORMAT_VERSION
    s.write_now(lambda txn: txn.put(T.meta, b"format_version", FORMAT_VERSION + 1))
    s.close()
    with pytest.raises(StoreError) as e:
        Store(tmp_path / "d")
    msg = str(e.value)
    assert f"format version {FORMAT_VERSION + 1}" in msg and "newer" in msg and str(tmp_path / "d") in msg
    with pytest.raises(StoreError):
        Store(tmp_path / "d", readonly=True)


# -- durability under kill -9 ---------------------------------------------------------------


@pytest.mark.deadline(40)
async def test_kill_9_loses_no_acknowledged_write(tmp_path):
    data = tmp_path / "data"
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.helpers.burst_writer", str(data), "--tasks", "48"],
        stdout=subprocess.PIPE, cwd=str(REPO),
    )
    buf = bytearray()
    try:
        while buf.count(b"\n") < 3000:
            chunk = await proc.stdout.receive_some(65536)
            assert chunk, "the writer exited early"
            buf += chunk
        proc.send_signal(signal.SIGKILL)  # mid-burst: 48 writers have writes queued or committing
        while chunk := await proc.stdout.receive_some(65536):
            buf += chunk
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # Only complete lines: a key printed in part was acknowledged but we cannot tell which.
    acked = [bytes.fromhex(line.decode()) for line in bytes(buf).split(b"\n")[:-1]]
    assert len(acked) >= 3000

    store = Store(data)
    try:
        with store.read() as txn:
            stored = dict(txn.scan_raw(T.meta, prefix=b"burst:"))
    finally:
        store.close()
    missing = [k for k in acked if k not in stored]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
    for key, raw in stored.items():  # nothing partial: every stored record decodes and checks out
        value = cbor2.loads(raw)
        assert check_record(value), key
        assert key == b"burst:" + value["n"].to_bytes(8, "big")


def test_readonly_store_can_read(tmp_path):
    Store(tmp_path / "d").close()
    ro = Store(tmp_path / "d", readonly=True)
    try:
        with ro.read() as txn:
            assert txn.get(T.meta, b"format_version") == FORMAT_VERSION
    finally:
        ro.close()


def _older_env(path, tables=(b"meta", b"userid_user")):
    """An environment as an older chatd wrote it: fewer tables, same format version."""
    import lmdb

    (path / "db").mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path / "db"), max_dbs=16, subdir=True)
    with env.begin(write=True) as txn:
        dbs = {name: env.open_db(name, txn=txn) for name in tables}
        txn.put(b"format_version", cbor2.dumps(FORMAT_VERSION), db=dbs[b"meta"])
    env.close()


def test_older_environment_gets_new_tables(tmp_path):
    _older_env(tmp_path)
    store = Store(tmp_path)
    try:
        with store.read() as txn:
            for table in TABLES:
                assert txn.count(table) >= 0
    finally:
        store.close()
