"""A QuartTrio app with an Engine.IO/Socket.IO server, served by hypercorn on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import hypercorn.trio
import trio
from hypercorn.config import Config
from quart_trio import QuartTrio

from chatd.gateway.engineio import mount


@dataclass
class Served:
    server: Any
    base_url: str

    @property
    def url(self) -> str:
        return self.base_url + "/socket.io/"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")


@asynccontextmanager
async def serving(server: Any, *, run: bool = True) -> AsyncIterator[Served]:
    """Serve ``server`` mounted on a fresh QuartTrio app (and run it, unless ``run=False``)."""
    app = QuartTrio(__name__)
    mount(app, server)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 1
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        if run:
            await nursery.start(server.run)
        binds = await nursery.start(
            partial(hypercorn.trio.serve, app, config, shutdown_trigger=shutdown.wait)
        )
        try:
            yield Served(server, binds[0])
        finally:
            shutdown.set()
            nursery.cancel_scope.cancel()
