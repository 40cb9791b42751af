"""The wire dialects. Each is a package with `mount(server, app, nursery)`.

Only the composition root (server.py) imports this; the core never does, and
no dialect imports another.
"""

import importlib
import importlib.util
import logging

from ..config import DIALECTS

log = logging.getLogger("chatd.dialects")

AVAILABLE = [name for name in DIALECTS if importlib.util.find_spec(f"{__name__}.{name}") is not None]


def mount(server, app, nursery) -> None:
    for name in AVAILABLE:
        settings = server.config.dialect(name)
        if not settings.enabled:
            continue
        module = importlib.import_module(f"{__name__}.{name}")
        module.mount(server, app, nursery, settings)
        log.info("dialect mounted", extra={"fields": {"dialect": name, "prefix": settings.prefix or "/"}})
