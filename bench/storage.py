"""Storage micro-benchmarks (one JSON line each):

- group commit: chatd.store.lmdb.Store with `store.run` in a nursery, N concurrent writers each doing
  sequential `await store.write(fn)` with ~200-byte values (N = 1, 10, 200) — writes/s, latency p50/p99;
- baseline: plain lmdb, sync=True, one durable commit per write, same sizes;
- history page: `core.history.history(viewer, cid, limit=50)` at 10k and 1M messages in one
  conversation (and the same page rendered the way SAMA's message_list renders it);
- idle server RSS: start chatd, read VmRSS.

    python -m bench.storage
    python -m bench.storage --history-sizes 10000 --writers 1,10,200 --seconds 3
"""

import argparse
import os
import sys
import time
from pathlib import Path

import lmdb
import trio

from . import prefill
from .common import (
    emit,
    latency_fields,
    log,
    managed_server,
    proc_status,
    temp_workdir,
    write_config,
)

perf = time.perf_counter
VALUE = os.urandom(100).hex().encode()  # 200 bytes


def out(what: str, **fields) -> None:
    emit({"server": "chatd", "bench": "storage", "what": what, **fields})


async def group_commit(path: Path, writers: int, seconds: float, max_writes: int) -> dict:
    from chatd.store import tables as T
    from chatd.store.lmdb import Store

    store = Store(path, map_size=4 << 30, batch=256)
    lat: list[float] = []
    counter = [0]
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            deadline = perf() + seconds
            per_writer = max_writes // writers

            async def writer(w):
                for i in range(per_writer):  # bounded in count and by the deadline
                    if perf() >= deadline:
                        return
                    key = w.to_bytes(8, "big") + i.to_bytes(8, "big")
                    t = perf()
                    await store.write(lambda txn, key=key: txn.put_encoded(T.chanidmsgid_msg, key, VALUE))
                    lat.append(perf() - t)
                    counter[0] += 1

            started = perf()
            async with trio.open_nursery() as inner:
                for w in range(writers):
                    inner.start_soon(writer, w)
            elapsed = perf() - started
            await store.close_writes()
    finally:
        store.close()
    stats = store.stats
    return {"writes": counter[0], "throughput": round(counter[0] / elapsed, 1), **latency_fields(lat),
            "notes": f"{stats.commits} commits, mean batch {stats.writes / max(stats.commits, 1):.1f}, "
                     f"mean commit {1000 * stats.commit_seconds / max(stats.commits, 1):.2f} ms"}


def baseline(path: Path, seconds: float, max_writes: int) -> dict:
    path.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=1 << 30, sync=True, metasync=True)
    lat = []
    deadline = perf() + seconds
    started = perf()
    try:
        for i in range(max_writes):  # bounded in count and by the deadline
            if perf() >= deadline:
                break
            t = perf()
            with env.begin(write=True) as txn:
                txn.put(i.to_bytes(16, "big"), VALUE)
            lat.append(perf() - t)
        elapsed = perf() - started
    finally:
        env.close()
    return {"writes": len(lat), "throughput": round(len(lat) / elapsed, 1), **latency_fields(lat),
            "notes": "plain lmdb, sync=True, one put per durable transaction"}


def history(wd: Path, count: int, reads: int) -> None:
    config_path = write_config(wd, wd / "data")
    info = prefill.history(config_path, wd / "w3.json", count)

    async def work(core):
        from chatd.dialects.sama import wire

        viewer, cid = int(info["users"][0]["id"]), int(info["cid"])
        for _ in range(50):
            core.history.history(viewer, cid, limit=50)
        lat, lat_render = [], []
        for _ in range(reads):
            t = perf()
            msgs = core.history.history(viewer, cid, limit=50)
            lat.append(perf() - t)
        for _ in range(reads):
            t = perf()
            msgs = core.history.history(viewer, cid, limit=50)
            flags = core.receipts.read_flags(cid, msgs)
            [wire.message_json(m, None, "read" if read else "sent") for m, read in zip(msgs, flags, strict=True)]
            lat_render.append(perf() - t)
        assert len(msgs) == 50
        return lat, lat_render

    lat, lat_render = trio.run(prefill._with_core, config_path, work)
    size = sum(f.stat().st_size for f in (wd / "data" / "db").iterdir())
    out("history_latest_50", messages=count, n=reads, **latency_fields(lat),
        notes=f"core.history.history(limit=50), inline read, decode cache warm after the first read; "
              f"prefill {info['prefill_s']} s; db file {size >> 20} MiB")
    out("history_latest_50_rendered", messages=count, n=reads, **latency_fields(lat_render),
        notes="history + read_flags + sama wire.message_json for each (what message_list does, minus the frame)")


def idle_rss(wd: Path) -> None:
    config_path = write_config(wd, wd / "data")
    with managed_server(config_path) as target:
        time.sleep(1.0)
        st = proc_status(target.pid)
    out("idle_server_rss", server_rss_kb=st.get("VmRSS"), notes=f"fresh chatd, sama only, no clients; {st}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--writers", default="1,10,200")
    p.add_argument("--seconds", type=float, default=3.0, help="per group-commit / baseline measurement")
    p.add_argument("--history-sizes", default="10000,1000000")
    p.add_argument("--reads", type=int, default=2000)
    p.add_argument("--skip", default="", help="comma list of: commit,baseline,history,rss")
    args = p.parse_args(argv)
    skip = set(args.skip.split(","))
    if "commit" not in skip:
        for n in [int(x) for x in args.writers.split(",")]:
            with temp_workdir() as wd:
                r = trio.run(group_commit, wd, n, args.seconds, 1_000_000)
            out("group_commit", writers=n, unit="writes/s", **r)
    if "baseline" not in skip:
        with temp_workdir() as wd:
            out("one_commit_per_write", writers=1, unit="writes/s", **baseline(wd / "db", args.seconds, 1_000_000))
    if "history" not in skip:
        for count in [int(x) for x in args.history_sizes.split(",")]:
            with temp_workdir() as wd:
                history(wd, count, args.reads)
    if "rss" not in skip:
        with temp_workdir() as wd:
            idle_rss(wd)
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
