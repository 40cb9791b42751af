"""A child process for durability tests: concurrent writes through chatd's group-commit writer.

    python -m tests.helpers.burst_writer DATA_DIR [--table meta] [--tasks 32] [--count N]

Each write puts one record `key → cbor({"n", "payload", "sha"})` and, only after
`await store.write()` returned (the commit is durable), prints the key in hex
on one line. With no --count it writes until killed.
"""

import argparse
import hashlib
import os
import random

import trio

from chatd.store.lmdb import Store
from chatd.store.tables import BY_NAME


def record(n: int) -> dict:
    payload = random.randbytes(random.randrange(16, 4096))
    return {"n": n, "payload": payload, "sha": hashlib.sha256(payload).digest()}


def check_record(value: dict) -> bool:
    return hashlib.sha256(value["payload"]).digest() == value["sha"]


def key_of(n: int) -> bytes:
    return b"burst:" + n.to_bytes(8, "big")


async def main(data_dir: str, table, tasks: int, count: int | None) -> None:
    store = Store(data_dir, map_size=256 << 20, batch=64)
    counter = iter(range(count if count is not None else 1 << 62))

    async def writer():
        for n in counter:
            key, value = key_of(n), record(n)
            await store.write(lambda txn, key=key, value=value: txn.put(table, key, value))
            os.write(1, key.hex().encode() + b"\n")

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            async with trio.open_nursery() as writers:
                for _ in range(tasks):
                    writers.start_soon(writer)
            await store.close_writes()
    finally:
        store.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("data_dir")
    p.add_argument("--table", default="meta")
    p.add_argument("--tasks", type=int, default=32)
    p.add_argument("--count", type=int, default=None)
    a = p.parse_args()
    trio.run(main, a.data_dir, BY_NAME[a.table], a.tasks, a.count)
