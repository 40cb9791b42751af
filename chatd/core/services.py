"""The core's services wired together over one store and one bus.

Dialects receive a `Core` and call its services; each service is a plain
class owning its own tables. Background jobs (pruning) run in `run`.
"""

import logging

import trio

from ..config import Config
from ..store import keys
from ..store.lmdb import Store
from ..store.tables import ID_TABLES
from .accounts import Accounts
from .bus import Bus
from .ids import Snowflakes
from .passwords import PasswordHasher
from .sessions import Sessions

log = logging.getLogger("chatd.core")


class Core:
    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store
        self.bus = Bus()
        self.ids = Snowflakes(config.server.worker_id)
        self._observe_stored_ids()
        self.hasher = PasswordHasher(config.auth.argon2_cost, config.auth.hash_concurrency)
        self.accounts = Accounts(store, self.bus, self.ids, self.hasher)
        self.sessions = Sessions(
            store, self.bus, self.ids,
            access_ttl=config.auth.access_token_ttl, refresh_ttl=config.auth.refresh_token_ttl,
        )

    def _observe_stored_ids(self) -> None:
        """Never reissue an id already stored, even if the clock went back since the last run."""
        with self.store.read() as txn:
            for table in ID_TABLES:
                for key, _ in txn.scan_raw(table, reverse=True, limit=1):
                    self.ids.observe(keys.read_u64(key))

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Background jobs: prune expired sessions (and whatever services add)."""
        task_status.started()
        while True:
            await trio.sleep(self.config.retention.prune_interval)
            try:
                removed = await self.sessions.prune_expired()
                if removed:
                    log.info("pruned expired sessions", extra={"fields": {"count": removed}})
            except Exception:
                log.exception("pruning failed")
