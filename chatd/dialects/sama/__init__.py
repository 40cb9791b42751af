"""The SAMA dialect: the WebSocket JSON protocol of shared/seeds/004_9ee5375aac75720c.txt.

The WebSocket endpoint is the raw gateway (`server.gateway_port`) at the
dialect prefix (default "/"); HTTP `/login` and `/logout` are on the HTTP port.
Compatibility with the vendor's own server and SDK: the message acknowledgement
is sent under both `ack` (the document) and `ask` (the SDK) in the same packet,
`t` is epoch seconds, and `organization_id` is accepted (and kept) on
`user_create` and ignored on `/login`.
"""

from . import wire
from .http import blueprint
from .session import SamaSession


def mount(server, app, nursery, settings) -> None:
    core = server.core
    wire.set_cache_budget(core.config.limits.history_cache_mb)
    server.gateway.route(settings.prefix or "/",
                         lambda conn, request: SamaSession(conn, core, settings, remote=request.remote))
    app.register_blueprint(blueprint(core, settings))
