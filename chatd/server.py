"""The root of the process: store writer, core jobs, HTTP, WebSocket gateway, shutdown.

Shutdown order (SIGTERM/SIGINT or `stop()`): stop accepting, close WebSockets
with 1001, let in-flight HTTP requests finish, then close the store's write
queue so the writer commits what is queued, and close LMDB. Nothing that was
acknowledged is lost because nothing is acknowledged before its commit.
"""

import logging
import signal
import time
from dataclasses import dataclass

import trio
from hypercorn.config import Config as HypercornConfig

from . import dialects, notify
from .config import Config
from .core.services import Core
from .front import FrontDoor
from .gateway.health import HealthProbe
from .gateway.websocket import WebSocketGateway
from .metrics import HttpStats
from .store.lmdb import Store
from .web import app as web_app

log = logging.getLogger("chatd.server")


@dataclass
class Listening:
    http_port: int
    gateway_port: int


class Server:
    def __init__(self, config: Config):
        self.config = config
        self.started_at = time.monotonic()
        self.stopping = False
        self.http_stats = HttpStats()
        self._shutdown = trio.Event()
        self.store: Store | None = None
        self.core: Core | None = None
        self.gateway: WebSocketGateway | None = None
        self.front: FrontDoor | None = None  # the HTTP port (dialects route WebSockets on it)
        self.extra_gateway_stats: dict = {}
        # Callbacks run when shutdown begins (dialects close their own transports with 1001).
        self.on_shutdown: list = []

    def stop(self) -> None:
        self._shutdown.set()

    def _open_connections(self) -> int:
        return sum(stats.open for stats in self.gateway_stats().values())

    def gateway_stats(self) -> dict:
        return {"websocket": self.gateway.stats, **self.extra_gateway_stats}

    def _hypercorn_config(self) -> HypercornConfig:
        hc = HypercornConfig()
        hc.accesslog = None
        hc.errorlog = logging.getLogger("hypercorn.error")
        hc.backlog = 1024
        hc.graceful_timeout = max(1.0, self.config.server.shutdown_timeout - 2)
        hc.websocket_max_message_size = self.config.limits.max_ws_frame
        hc.h11_max_incomplete_size = 64 * 1024
        hc.keep_alive_timeout = 30
        return hc

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        self.store = Store(config.data_dir, map_size=config.storage.map_size_mb << 20, batch=config.storage.commit_batch)
        try:
            self.core = Core(config, self.store)
            self.gateway = WebSocketGateway(config, self.core.bus)
            self.gateway.route("/health", lambda conn, request: HealthProbe(conn, self))
            app = web_app.create_app(self)
            self.front = FrontDoor(app, self._hypercorn_config(), host=config.server.listen,
                                   port=config.server.port, max_ws_message=config.limits.max_ws_frame)
            async with trio.open_nursery() as root:
                await root.start(self.store.run)
                async with trio.open_nursery() as services:
                    await services.start(self.core.run)
                    await dialects.mount(self, app, services)
                    # The HTTP port stops only after our own transports have said goodbye (1001), or it
                    # would drop the Socket.IO WebSockets it carries before their close frames go out.
                    http_stop, http_done = trio.Event(), trio.Event()

                    async def serve_http(task_status):
                        try:
                            await self.front.run(shutdown_trigger=http_stop.wait, task_status=task_status)
                        finally:
                            http_done.set()

                    http_port = await services.start(serve_http)
                    gateway_port = await services.start(self.gateway.run)
                    if config.server.port == 0:
                        # "Any free port": links the server hands out must name the port it got.
                        self.core.files.public_url = f"http://{config.server.listen}:{http_port}"
                    log.info("listening", extra={"fields": {"http": http_port, "websocket": gateway_port,
                                                            "data": str(config.data_dir)}})
                    task_status.started(Listening(http_port, gateway_port))
                    await self._shutdown.wait()
                    self.stopping = True
                    log.info("shutting down")
                    self.gateway.close_all()
                    for close in self.on_shutdown:
                        close()
                    # Give connections and in-flight requests a moment, then cancel whatever is left.
                    services.cancel_scope.deadline = trio.current_time() + config.server.shutdown_timeout
                    with trio.move_on_after(1.5):
                        while self._open_connections() or self.http_stats.in_flight:
                            await trio.sleep(0.02)
                    http_stop.set()
                    with trio.move_on_after(config.server.shutdown_timeout / 2):
                        await http_done.wait()
                    services.cancel_scope.cancel()
                await self.store.close_writes()
            log.info("stopped")
        finally:
            self.store.close()



async def run_until_signalled(config: Config) -> None:
    """`chatd --config …`: run until SIGTERM/SIGINT, telling systemd when ready and stopping."""
    server = Server(config)

    async def watch_signals():
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("signal received", extra={"fields": {"signal": signal.Signals(signum).name}})
                notify.send("STOPPING=1")
                server.stop()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_signals)
        await nursery.start(server.run)
        notify.send("READY=1")
        await server._shutdown.wait()
    # server.run returned: everything is flushed and closed.
