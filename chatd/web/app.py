"""The HTTP app (Quart-Trio): shared routes (/health, /metrics, files), limits, access log;
dialects add their blueprints."""

import logging
import time

from quart import Response, g, request
from quart_trio import QuartTrio

from .. import __version__, metrics
from .bodies import json_response
from .files import blueprint as files_blueprint

access_log = logging.getLogger("chatd.access")
log = logging.getLogger("chatd.http")


def create_app(server) -> QuartTrio:
    """`server` is the running `chatd.server.Server` (config, core, stats)."""
    config = server.config
    app = QuartTrio("chatd")
    app.config["MAX_CONTENT_LENGTH"] = config.limits.max_http_body
    app.config["BODY_TIMEOUT"] = 30
    app.config["RESPONSE_TIMEOUT"] = 60
    stats = server.http_stats

    @app.before_request
    async def _start():
        g.started = time.perf_counter()
        stats.in_flight += 1

    @app.after_request
    async def _count(response):
        stats.count(request.method, response.status_code)
        if response.status_code == 413:
            # The rest of the refused body was never read: the connection cannot carry another request.
            response.headers["Connection"] = "close"
        if config.log.access_log:
            access_log.info(
                "%s %s %s", request.method, request.path, response.status_code,
                extra={"fields": {
                    "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
                    "remote": request.remote_addr,
                }},
            )
        return response

    @app.teardown_request
    async def _done(exc):
        stats.in_flight -= 1

    @app.get("/health")
    async def health():
        """GET /health — liveness and version."""
        return json_response({
            "status": "ok" if not server.stopping else "stopping",
            "version": __version__,
            "uptime": round(time.monotonic() - server.started_at, 3),
        }, status=200 if not server.stopping else 503)

    @app.get("/metrics")
    async def prometheus():
        """GET /metrics — Prometheus text format."""
        text = metrics.render(
            uptime=time.monotonic() - server.started_at,
            http=stats,
            gateways=server.gateway_stats(),
            bus=server.core.bus,
            writer=server.store.stats,
        )
        return Response(text, content_type="text/plain; version=0.0.4")

    app.register_blueprint(files_blueprint(server.core))
    return app
