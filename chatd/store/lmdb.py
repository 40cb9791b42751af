"""The LMDB environment, typed table access and the group-commit writer.

This module is the only code that opens LMDB transactions. Services read
inline (`with store.read() as txn`) — point gets and short cursor scans cost a
few microseconds — and write by handing a synchronous function to
`await store.write(fn)`. The writer runs up to `batch` such functions in one
LMDB transaction in a worker thread, each in its own child transaction (so
one caller's error rolls back only its own writes), commits durably, and only
then wakes the callers.
"""

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2
import lmdb
import msgspec
import trio

from . import migrations
from .errors import KeyTooLong, StoreError, StoreUnavailable
from .tables import ANY, EMPTY, FORMAT_VERSION, ID, TABLES, Table, meta

log = logging.getLogger("chatd.store")


HOLD_LOOP_S = 0.02  # the longest the event loop waits for a batch's write functions (not its fsync)
WRITE_QUEUE = 65536  # writes waiting for a commit; past this, submit() answers StoreUnavailable


# Nesting deeper than this is refused at every dialect's input; a record that nests deeper
# anyway (written before that bound) is decoded this deep only to be deleted.
SALVAGE_DEPTH = 4096
_logged_bad: set[tuple[str, bytes]] = set()
DECODE_ERRORS = (cbor2.CBORDecodeError, msgspec.ValidationError)


def decode(raw: bytes, type: type | None = None, *, max_depth: int = 400):
    """A stored value; raises DECODE_ERRORS for a record that cannot be decoded."""
    value = cbor2.loads(raw, max_depth=max_depth)
    return msgspec.convert(value, type) if type is not None else value


def undecodable(table: str, key: bytes, exc: Exception) -> None:
    """Log a record that cannot be decoded (once per record); readers skip it instead of failing."""
    if (table, key) in _logged_bad:
        return
    if len(_logged_bad) < 4096:
        _logged_bad.add((table, key))
    log.error("undecodable record skipped", extra={"fields": {
        "table": table, "key": key.hex(), "error": f"{type(exc).__name__}: {exc}"}})


def encode(value: Any) -> bytes:
    if isinstance(value, msgspec.Struct):
        value = msgspec.to_builtins(value)
    return cbor2.dumps(value)


MAX_KEY = 511  # LMDB's default key size limit, in bytes


def _check_key(key: bytes) -> None:
    """Services validate what becomes a key; this keeps a value that slipped through a client
    error (translated to Invalid by the core), not an LMDB error."""
    if not 0 < len(key) <= MAX_KEY:
        raise KeyTooLong("a value is empty or too long to be stored as a key")


def _decode_value(table: Table, raw: bytes, max_depth: int = 400):
    value = table.value
    if value is ID:
        return ID.decode(raw)
    if value is EMPTY:
        return raw
    loaded = cbor2.loads(raw, max_depth=max_depth) if max_depth != 400 else cbor2.loads(raw)
    return loaded if value is ANY else msgspec.convert(loaded, value)


def _encode_value(table: Table, value) -> bytes:
    kind = table.value
    if kind is ID:
        return ID.encode(value)
    if kind is EMPTY:
        return b""
    return encode(value)


class Txn:
    """A transaction over declared tables (`chatd.store.tables`): values are encoded and decoded
    by the table's value type.

    A write transaction notes which key prefixes of the watched tables it touches (see
    `Store.watch`), so the store can bump their generations once the commit is durable.
    """

    __slots__ = ("_txn", "_dbs", "_watched", "_touched")

    def __init__(self, txn: lmdb.Transaction, dbs: dict[str, Any], watched: dict[str, int] | None = None,
                 touched: set[tuple[str, bytes]] | None = None):
        self._txn = txn
        self._dbs = dbs
        self._watched = watched
        self._touched = touched

    def _touch(self, name: str, key: bytes) -> None:
        size = self._watched.get(name)
        if size is not None:
            self._touched.add((name, key[:size]))

    def touched(self, name: str, prefix: bytes) -> bool:
        """Whether this write batch (so far) wrote under `prefix` of the watched table (or bumped
        the named generation) `name`."""
        return self._touched is not None and (name, prefix) in self._touched

    def bump(self, name: str, prefix: bytes) -> None:
        """Advance the generation `(name, prefix)` with this commit: for a fact that is not one
        table's rows (e.g. a channel's membership, whose member rows also hold read marks)."""
        if self._touched is not None:
            self._touched.add((name, prefix))

    def get_raw(self, table: Table, key: bytes) -> bytes | None:
        if not 0 < len(key) <= MAX_KEY:
            return None  # LMDB cannot hold such a key, so there is none
        return self._txn.get(key, db=self._dbs[table.name])

    def get(self, table: Table, key: bytes):
        """The value at `key`, or None if there is none or it cannot be decoded (logged)."""
        raw = self.get_raw(table, key)
        if raw is None:
            return None
        try:
            return _decode_value(table, raw)
        except DECODE_ERRORS as e:
            undecodable(table.name, key, e)
            return None

    def get_salvaged(self, table: Table, key: bytes):
        """Like `get`, but decodes a record nested past the usual limit (to delete it)."""
        raw = self.get_raw(table, key)
        if raw is None:
            return None
        try:
            return _decode_value(table, raw, SALVAGE_DEPTH)
        except DECODE_ERRORS as e:
            undecodable(table.name, key, e)
            return None

    def exists(self, table: Table, key: bytes) -> bool:
        return self.get_raw(table, key) is not None

    def put(self, table: Table, key: bytes, value: Any = None, *, overwrite: bool = True) -> bool:
        """Store `value` (nothing for an EMPTY table); with `overwrite=False`, only if `key` is free
        (returns whether it was stored)."""
        _check_key(key)
        if self._watched:
            self._touch(table.name, key)
        return self._txn.put(key, _encode_value(table, value), db=self._dbs[table.name], overwrite=overwrite)

    def put_encoded(self, table: Table, key: bytes, raw: bytes) -> None:
        """Store an already-encoded value (the same record written under many keys)."""
        _check_key(key)
        if self._watched:
            self._touch(table.name, key)
        self._txn.put(key, raw, db=self._dbs[table.name])

    def delete(self, table: Table, key: bytes) -> bool:
        if not 0 < len(key) <= MAX_KEY:
            return False
        if self._watched:
            self._touch(table.name, key)
        return self._txn.delete(key, db=self._dbs[table.name])

    def scan_raw(
        self,
        table: Table,
        *,
        prefix: bytes = b"",
        start: bytes | None = None,
        stop: bytes | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """Items with `prefix`, in key order (or reverse), within [start, stop)."""
        lo = max(prefix, start) if start is not None else prefix
        hi = stop
        if prefix:
            end = _prefix_end(prefix)
            hi = end if hi is None or (end is not None and end < hi) else hi
        n = 0
        with self._txn.cursor(db=self._dbs[table.name]) as cur:
            if not reverse:
                ok = cur.set_range(lo) if lo else cur.first()
                while ok:
                    key = cur.key()
                    if hi is not None and key >= hi:
                        return
                    yield key, cur.value()
                    n += 1
                    if limit is not None and n >= limit:
                        return
                    ok = cur.next()
            else:
                if hi is None:
                    ok = cur.last()
                else:
                    ok = cur.set_range(hi)
                    ok = cur.prev() if ok else cur.last()
                while ok:
                    key = cur.key()
                    if key < lo:
                        return
                    yield key, cur.value()
                    n += 1
                    if limit is not None and n >= limit:
                        return
                    ok = cur.prev()

    def keys(self, table: Table, **kw) -> Iterator:
        """The decoded keys (their parts) of the items `scan_raw` would give."""
        decode_key = table.layout.decode
        for key, _ in self.scan_raw(table, **kw):
            yield decode_key(key)

    def scan(self, table: Table, **kw) -> Iterator[tuple[bytes, Any]]:
        """Decoded items, as `scan_raw`; a record that cannot be decoded is skipped (logged)."""
        for key, raw in self.scan_raw(table, **kw):
            try:
                value = _decode_value(table, raw)
            except DECODE_ERRORS as e:
                undecodable(table.name, key, e)
                continue
            yield key, value

    def count(self, table: Table, *, prefix: bytes = b"") -> int:
        return sum(1 for _ in self.scan_raw(table, prefix=prefix))


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix`."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)


class _Read:
    """The context manager of `Store.read` (a class: it is on every request's path)."""

    __slots__ = ("_env", "_dbs", "_txn")

    def __init__(self, env: lmdb.Environment, dbs: dict[str, Any]):
        self._env = env
        self._dbs = dbs

    def __enter__(self) -> Txn:
        self._txn = self._env.begin(write=False, buffers=False)
        return Txn(self._txn, self._dbs)

    def __exit__(self, *exc) -> None:
        self._txn.abort()


class Pending:
    """A write handed to the group-commit writer; `await wait()` for its durable result."""

    __slots__ = ("fn", "after", "on_done", "result", "error", "done")

    def __init__(self, fn, after=None, on_done=None):
        self.fn = fn
        self.after = after
        self.on_done = on_done
        self.result = None
        self.error: BaseException | None = None
        self.done = trio.Event()

    async def wait(self):
        await self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result


class WriterStats:
    def __init__(self):
        self.commits = 0
        self.writes = 0
        self.commit_seconds = 0.0
        # Histogram of batch sizes (upper bounds) and commit latencies (seconds), for /metrics.
        self.batch_buckets = {1: 0, 4: 0, 16: 0, 64: 0, 256: 0, 1024: 0, float("inf"): 0}
        self.latency_buckets = {0.001: 0, 0.0025: 0, 0.005: 0, 0.01: 0, 0.025: 0, 0.1: 0, float("inf"): 0}

    def record(self, size: int, seconds: float) -> None:
        self.commits += 1
        self.writes += size
        self.commit_seconds += seconds
        for bound in self.batch_buckets:
            if size <= bound:
                self.batch_buckets[bound] += 1
                break
        for bound in self.latency_buckets:
            if seconds <= bound:
                self.latency_buckets[bound] += 1
                break


class Store:
    def __init__(self, path: Path, *, map_size: int = 1 << 30, batch: int = 256, readonly: bool = False):
        self.path = Path(path)
        if not readonly:
            migrations.upgrade(self.path, map_size=map_size)
        self.batch = batch
        self.stats = WriterStats()
        self._send, self._recv = trio.open_memory_channel(max(WRITE_QUEUE, batch * 4))
        self._closed = False
        self._watched: dict[str, int] = {}  # table -> length of the key prefix it is watched by
        self._generations: dict[tuple[str, bytes], int] = {}
        # The core sets this to turn the store's errors into its own (the store never imports the core).
        self.translate_error: Callable[[Exception], Exception] = lambda e: e
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.env = lmdb.open(
                str(self.path / "db"),
                map_size=map_size,
                max_dbs=len(TABLES) + 32,  # room for a migration's old and new names
                subdir=True,
                readonly=readonly,
                sync=True,
                metasync=True,
                readahead=False,
                max_readers=1024,
            )
        except lmdb.Error as e:
            raise StoreError(f"cannot open the LMDB environment in {self.path / 'db'}: {e}") from None
        self._dbs = {}
        if readonly:
            # Handles opened inside a read transaction die with it, so each is opened on its own.
            # Older data may lack tables added since; those are simply absent.
            for table in TABLES:
                try:
                    self._dbs[table.name] = self.env.open_db(table.name.encode(), create=False)
                except lmdb.NotFoundError:
                    pass
            with self.env.begin() as txn:
                self._check_format(Txn(txn, self._dbs), readonly)
        else:
            with self.env.begin(write=True) as txn:
                for table in TABLES:
                    self._dbs[table.name] = self.env.open_db(table.name.encode(), txn=txn, create=True)
                self._check_format(Txn(txn, self._dbs), readonly)

    def _check_format(self, txn: Txn, readonly: bool) -> None:
        version = txn.get(meta, meta.key("format_version")) if meta.name in self._dbs else None
        if version is None:
            if not readonly:
                txn.put(meta, meta.key("format_version"), FORMAT_VERSION)
        elif version > FORMAT_VERSION:
            raise StoreError(
                f"the data in {self.path} has format version {version}, newer than this chatd "
                f"supports ({FORMAT_VERSION}); run a newer chatd or restore a backup"
            )

    def watch(self, table: Table, prefix_len: int) -> None:
        """Keep a generation per `prefix_len`-byte key prefix of `table` (see `generation`)."""
        self._watched[table.name] = prefix_len

    def generation(self, table: Table | str, prefix: bytes) -> int:
        """A number that changes after every durable commit that wrote a key of `table` under
        `prefix` (a watched table). It changes on the event loop once the commit is durable,
        never before, and before any write of that commit is acknowledged. So a value read in
        the same transaction may be newer than its generation, never older, and a value cached
        under a generation that has not changed since misses no acknowledged write."""
        return self._generations.get((table if type(table) is str else table.name, prefix), 0)

    def _advance(self, touched: set[tuple[str, bytes]]) -> None:
        for name in touched:
            self._generations[name] = self._generations.get(name, 0) + 1

    def read(self) -> "_Read":
        """`with store.read() as txn:` a read-only snapshot, ended on leaving the block."""
        return _Read(self.env, self._dbs)

    def write_now(self, fn: Callable[[Txn], Any]) -> Any:
        """Run one write function in its own durable transaction, synchronously.

        For the CLI and start-up, when no writer task runs; never on the event loop of a live server.
        """
        touched: set[tuple[str, bytes]] = set()
        try:
            with self.env.begin(write=True) as txn:
                result = fn(Txn(txn, self._dbs, self._watched, touched))
        except KeyTooLong as e:
            raise self.translate_error(e) from None
        self._advance(touched)
        return result

    async def write(self, fn: Callable[[Txn], Any]) -> Any:
        """Run `fn(txn)` in the next group commit; return its result once it is durable.

        `fn` must be synchronous and quick (it runs in the writer thread with the
        write lock held). If it raises, its own writes are rolled back and the
        error is raised here; the other writes in the batch are unaffected.
        """
        if self._closed:
            raise self.translate_error(StoreUnavailable("the server is shutting down"))
        item = Pending(fn)
        try:
            await self._send.send(item)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self.translate_error(StoreUnavailable("the server is shutting down")) from None
        return await item.wait()

    def submit(self, fn: Callable[[Txn], Any], after: Callable[[Any], None] | None = None,
               on_done: Callable[[Pending], None] | None = None) -> Pending:
        """Queue `fn` for the next group commit without waiting, keeping the caller's order.

        `after(result)` runs on the event loop, in commit order, once the write is durable
        (and only if `fn` succeeded): the place to publish what the write made true, so it
        happens even if the submitter stops waiting. `on_done(pending)` runs next, whether
        `fn` succeeded or raised. Both run in submission order, so a connection can pipeline
        its writes into shared commits and acknowledge each from `on_done`, in order.
        """
        if self._closed:
            raise self.translate_error(StoreUnavailable("the server is shutting down"))
        item = Pending(fn, after, on_done)
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            raise self.translate_error(StoreUnavailable("the server is overloaded; try again")) from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self.translate_error(StoreUnavailable("the server is shutting down")) from None
        return item

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """The group-commit writer. Ends after `close_writes()` once every queued write is committed."""
        task_status.started()
        async with self._recv:
            async for first in self._recv:
                batch = [first]
                while len(batch) < self.batch:
                    try:
                        batch.append(self._recv.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                # Not cancellable: a started commit always finishes and its callers are woken.
                touched: set[tuple[str, bytes]] = set()
                with trio.CancelScope(shield=True):
                    await self._commit_in_thread(batch, touched)
                self._advance(touched)
                for item in batch:
                    try:
                        if item.after is not None and item.error is None:
                            item.after(item.result)
                        if item.on_done is not None:
                            item.on_done(item)
                    except Exception:
                        log.exception("after-commit callback failed")
                    item.done.set()

    async def _commit_in_thread(self, batch: list[Pending], touched: set[tuple[str, bytes]]) -> None:
        """Commit `batch` in a worker thread, holding the event loop while the batch's functions run.

        py-lmdb releases the GIL around every LMDB call. With the loop busy beside it, each call
        in the writer thread then waits for the GIL again, and a batch's functions took several
        times their own cost. So the loop waits (GIL released) while they run, as it would have
        waited for the GIL anyway, but at most `HOLD_LOOP_S`, and never for the disk: it is let go
        before the commit's writes and fsyncs.
        """
        token = trio.lowlevel.current_trio_token()
        finished = trio.Event()
        outcome: list = []
        body_done = threading.Event()

        def deliver(result) -> None:
            outcome.append(result)
            token.run_sync_soon(finished.set)

        trio.lowlevel.start_thread_soon(lambda: self._commit(batch, touched, body_done), deliver)
        body_done.wait(HOLD_LOOP_S)
        await finished.wait()
        outcome[0].unwrap()

    def _commit(self, batch: list[Pending], touched: set[tuple[str, bytes]], body_done: threading.Event) -> None:
        started = time.perf_counter()
        try:
            with self.env.begin(write=True) as txn:
                for item in batch:
                    try:
                        with self.env.begin(write=True, parent=txn) as child:
                            item.result = item.fn(Txn(child, self._dbs, self._watched, touched))
                    except KeyTooLong as e:
                        item.error = self.translate_error(e)
                    except Exception as e:
                        item.error = e
                body_done.set()  # the commit's disk writes follow; the loop need not wait for them
        except lmdb.MapFullError:
            log.error("LMDB map is full: raise storage.map_size_mb in the config")
            for item in batch:
                item.error = item.error or self.translate_error(StoreUnavailable("storage is full"))
        except lmdb.Error as e:
            log.exception("LMDB commit failed")
            for item in batch:
                item.error = item.error or self.translate_error(StoreUnavailable(f"storage error: {e}"))
        finally:
            body_done.set()
        self.stats.record(len(batch), time.perf_counter() - started)

    async def close_writes(self) -> None:
        """Refuse new writes; the writer drains what is queued and then `run` returns."""
        self._closed = True
        await self._send.aclose()

    def close(self) -> None:
        self.env.close()

    def copy_to(self, dest: Path) -> None:
        """A consistent, compacted copy of the environment (safe while writers run)."""
        dest.mkdir(parents=True, exist_ok=True)
        self.env.copy(str(dest), compact=True)


def data_files(path: Path) -> list[Path]:
    return [Path(path) / "db" / name for name in os.listdir(Path(path) / "db")]
