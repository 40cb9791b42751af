"""The wire dialects. Each is a package with `mount(server, app, nursery, settings)`.

`mount` may be a coroutine function (to `await nursery.start(...)` its own
servers, so they are ready before the HTTP port opens).

Only the composition root (server.py) imports this; the core never does, and
no dialect imports another.
"""

import importlib
import importlib.util
import inspect
import logging

from ..config import DIALECTS

log = logging.getLogger("chatd.dialects")

AVAILABLE = [name for name in DIALECTS if importlib.util.find_spec(f"{__name__}.{name}") is not None]


async def mount(server, app, nursery) -> None:
    for name in AVAILABLE:
        settings = server.config.dialect(name)
        if not settings.enabled:
            continue
        module = importlib.import_module(f"{__name__}.{name}")
        result = module.mount(server, app, nursery, settings)
        if inspect.isawaitable(result):
            await result
        log.info("dialect mounted", extra={"fields": {"dialect": name, "prefix": settings.prefix or "/"}})
