"""Untimed setup through chatd's own core API, before the server starts (the way chatd/cli.py
`_with_core` opens the data directory): W3 history and W4 users with sessions.

Both write a small JSON file the driver reads.
"""

import json
import time
from pathlib import Path

import trio

from .common import PASSWORD, log


async def _with_core(config_path: Path, work, *, batch: int = 1024):
    from chatd import config as config_mod
    from chatd.cli import with_core

    return await with_core(config_mod.load(config_path), work, batch=batch)


def history(config_path: Path, out: Path, count: int, *, concurrency: int = 512) -> dict:
    """Two users, one private conversation, `count` messages sent concurrently (group commit)."""

    async def work(core):
        a = await core.accounts.create("w3a", password=PASSWORD)
        b = await core.accounts.create("w3b", password=PASSWORD)
        conv, _, _ = await core.channels.create(a.id, "dm", [b.id])
        numbers = iter(range(count))
        pad = "x" * 80
        started = time.perf_counter()

        async def worker():
            for i in numbers:  # shared iterator: bounded by `count` overall
                await core.messages.send(a.id if i % 2 else b.id, conv.id, body=f"history {i} {pad}")

        async with trio.open_nursery() as nursery:
            for _ in range(min(concurrency, max(1, count))):
                nursery.start_soon(worker)
        seconds = time.perf_counter() - started
        return {"users": [{"login": "w3a", "id": str(a.id)}, {"login": "w3b", "id": str(b.id)}],
                "password": PASSWORD, "cid": str(conv.id), "messages": count, "prefill_s": round(seconds, 2)}

    info = trio.run(_with_core, config_path, work)
    out.write_text(json.dumps(info))
    log(f"prefilled {count} messages in {info['prefill_s']} s ({count / max(info['prefill_s'], 1e-9):.0f}/s)")
    return info


def users(config_path: Path, out: Path, count: int, *, concurrency: int = 256) -> dict:
    """`count` users without passwords, each with one SAMA session; their access tokens."""

    async def work(core):
        tokens: list = [None] * count
        numbers = iter(range(count))
        started = time.perf_counter()

        async def worker():
            for i in numbers:  # shared iterator: bounded by `count` overall
                user = await core.accounts.create(f"w4u{i}")
                issued = await core.sessions.create(user.id, f"dev{i}", refresh=False, dialect="sama")
                tokens[i] = [str(user.id), issued.access_token, f"dev{i}"]

        async with trio.open_nursery() as nursery:
            for _ in range(min(concurrency, max(1, count))):
                nursery.start_soon(worker)
        return {"tokens": tokens, "prefill_s": round(time.perf_counter() - started, 2)}

    info = trio.run(_with_core, config_path, work)
    out.write_text(json.dumps(info))
    log(f"created {count} users with sessions in {info['prefill_s']} s")
    return info
