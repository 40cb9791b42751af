"""The core's services wired together over one store and one bus.

Dialects receive a `Core` and call its services; each service is a plain
class owning its own tables. Background jobs (pruning) run in `run`.
"""

import logging

import trio

from ..config import Config
from ..store.blobs import Blobs
from ..store.lmdb import Store
from ..store.tables import ID_TABLES
from . import errors
from .accounts import Accounts
from .bus import Bus
from .channels import Channels
from .clock import now_ms
from .contacts import Contacts
from .files import Files
from .history import History
from .ids import Snowflakes
from .members import Members
from .messages import Messages
from .oplog import OpLog
from .passwords import PasswordHasher
from .presence import Presence
from .push import Push
from .receipts import Receipts
from .relationships import Relationships
from .sessions import Sessions
from .signals import Signals
from .throttle import LoginThrottle
from .views import Views
from .writer import MessageWriter

log = logging.getLogger("chatd.core")

# Shares of `limits.history_cache_mb`: decoded messages, latest pages, read marks, audiences.
DECODED_SHARE, LATEST_SHARE, MARKS_SHARE, AUDIENCE_SHARE = 0.35, 0.2, 0.1, 0.05


class Core:
    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store
        store.translate_error = errors.from_store
        self.bus = Bus()
        self.ids = Snowflakes(config.server.worker_id)
        self._observe_stored_ids()
        auth = config.auth
        self.hasher = PasswordHasher(auth.argon2_cost, auth.hash_concurrency, auth.hash_wait_limit)
        self.login_throttle = LoginThrottle(per_account=auth.login_failures_per_account,
                                            per_address=auth.login_failures_per_address,
                                            window=auth.login_failure_window)
        self.accounts = Accounts(store, self.bus, self.ids, self.hasher, self.login_throttle)
        self.sessions = Sessions(
            store, self.bus, self.ids,
            access_ttl=auth.access_token_ttl, refresh_ttl=auth.refresh_token_ttl,
            max_connections_per_user=config.limits.max_connections_per_user,
        )
        self.accounts.revoke_sessions_txn = self.sessions.revoke_all_txn
        self.relationships = Relationships(store)
        self.oplog = OpLog(store, self.bus)
        self.presence = Presence(store, self.bus, self.relationships)
        self.files = Files(
            store, self.ids, Blobs(config.data_dir / "files"), public_url=config.server.public_url,
            url_ttl=config.auth.file_url_ttl, max_size=config.limits.max_file_size,
        )
        self.push = Push(store, self.ids, lambda file: self.files.url(file, "download"))
        self.contacts = Contacts(store, self.ids)
        # The history caches' budget (bytes), shared out; the rest is the dialects' (rendered JSON).
        budget = config.limits.history_cache_mb << 20
        self.members = Members(store, int(budget * AUDIENCE_SHARE))
        self.writer = MessageWriter(self.ids, self.oplog, self.push)
        self.channels = Channels(store, self.ids, self.oplog, self.members, self.writer)
        self.views = Views(store, self.members)
        self.history = History(store, int(budget * DECODED_SHARE), int(budget * LATEST_SHARE))
        self.receipts = Receipts(store, self.ids, self.oplog, int(budget * MARKS_SHARE))
        self.signals = Signals(store, self.bus, self.ids, self.oplog, self.members)
        self.messages = Messages(store, self.ids, self.oplog, self.members, self.writer, self.history,
                                 config.limits)
        self.accounts.audience_of = self.members.contacts_of
        self.accounts.delete_hooks += [
            self.channels.forget_user_txn, self.relationships.forget_user_txn, self.contacts.forget_user_txn,
            self.oplog.forget_user_txn, self.push.forget_user_txn, self.sessions.revoke_all_txn,
        ]

    def _observe_stored_ids(self) -> None:
        """Never reissue an id already stored, even if the clock went back since the last run."""
        with self.store.read() as txn:
            for table in ID_TABLES:
                for key, _ in txn.scan_raw(table, reverse=True, limit=1):
                    self.ids.observe(table.parts(key))

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Background jobs: persisting last activity, announcing expired access tokens, pruning
        expired sessions and old op-log entries."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.presence.run)
            await nursery.start(self.sessions.run)
            task_status.started()
            while True:
                await trio.sleep(self.config.retention.prune_interval)
                await self.prune()

    async def prune(self) -> None:
        try:
            sessions = await self.sessions.prune_expired()
            cutoff = now_ms() - int(self.config.retention.oplog_days * 86_400_000)
            ops = await self.oplog.prune(cutoff)
            if sessions or ops:
                log.info("pruned", extra={"fields": {"sessions": sessions, "oplog": ops}})
        except Exception:
            log.exception("pruning failed")
