"""A WebSocket liveness probe at `/health` on the gateway port: every frame is answered with
the server's status, so monitors (and the tests) can check the gateway end to end."""

import time

import msgspec

from .. import __version__


class HealthProbe:
    def __init__(self, conn, server):
        self.conn = conn
        self.server = server

    async def on_message(self, data) -> None:
        self.conn.check_rate()
        self.conn.send(msgspec.json.encode({
            "status": "stopping" if self.server.stopping else "ok",
            "version": __version__,
            "uptime": round(time.monotonic() - self.server.started_at, 3),
        }).decode())

    def render(self, envelope):
        return None

    async def on_close(self) -> None:
        pass
