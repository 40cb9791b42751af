"""Login sessions: one per user and device, random tokens of which only a hash is stored.

An access token is 32 random bytes (url-safe base64); the store keeps its
SHA-256. Logging in again on the same device replaces that device's session.
Refresh tokens rotate on every use.

Tokens are checked when a connection starts; `run` then watches the clock and
publishes `SessionsRevoked(reason="expired")` when a session's access token
expires, so the connections that use it close (the session stays, for its
refresh token, until pruned).

Session policy lives here, once, for every dialect (a dialect only maps the
errors to its wire shape):
- `authenticate(token, device_id=…)`: the token's live session, refused for
  another device than the one it was issued to (the refresh token likewise);
- `admit(user_id)`: before a connection binds to a user — at most
  `max_connections_per_user` connections, all dialects together (the bus's
  subscriptions of the user);
- `admission_checks`: global refusals (a ban), each called with a user id and
  raising `Forbidden`; run by `admit`, `authenticate` and `create`, so a refused
  user can neither connect, nor use a token, nor be issued a new one.
"""

import hashlib
import heapq
import math
import secrets
from collections.abc import Callable

import trio

from ..store import tables as T
from ..store.lmdb import Store, Txn
from . import validate
from .bus import Bus
from .clock import now_ms
from .errors import RateLimited, Unauthorized
from .events import SessionsRevoked
from .ids import Snowflakes
from .models import Session

SESSION = T.sessionid_session
DEVICE = T.useriddevice_sessionid
MINE = T.useridsessionid_


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class Issued:
    """A new session with its tokens, which exist in clear only here, once."""

    __slots__ = ("session", "access_token", "refresh_token")

    def __init__(self, session: Session, access_token: str, refresh_token: str | None):
        self.session = session
        self.access_token = access_token
        self.refresh_token = refresh_token


def check_device(session: Session, device_id: str | None, what: str = "token") -> None:
    """The device check, in one place: a token used from another device than its session's is
    refused (device ids compare case-insensitively; None: the caller names no device)."""
    if device_id is not None and device_id.casefold() != session.device_id.casefold():
        raise Unauthorized(f"the {what} belongs to another device")


class Sessions:
    def __init__(self, store: Store, bus: Bus, ids: Snowflakes, *, access_ttl: int, refresh_ttl: int,
                 max_connections_per_user: int = 16):
        self.store = store
        self.bus = bus
        self.ids = ids
        self.access_ttl_ms = access_ttl * 1000
        self.refresh_ttl_ms = refresh_ttl * 1000
        self.max_connections_per_user = max_connections_per_user
        # Global refusals (a ban): called with a user id, each raises Forbidden to refuse that user.
        self.admission_checks: list[Callable[[int], None]] = []
        # (expires_at, session id, user id) of access tokens not yet announced as expired; entries of
        # sessions revoked meanwhile are skipped when due.
        self._expiries: list[tuple[int, int, int]] = []
        self._wake = trio.Event()
        self.expired_announced = 0

    async def create(
        self, user_id: int, device_id: str, *, refresh: bool = True, dialect: str = "", ttl: int | None = None
    ) -> Issued:
        device_id = validate.device_id(device_id)
        self.check_admission(user_id)
        access, refresh_token = new_token(), (new_token() if refresh else None)
        now = now_ms()
        session = Session(
            id=self.ids.next(), user_id=user_id, device_id=device_id, token_hash=token_hash(access),
            created_at=now, expires_at=now + (int(ttl * 1000) if ttl else self.access_ttl_ms),
            refresh_hash=token_hash(refresh_token) if refresh_token else None,
            refresh_expires_at=now + self.refresh_ttl_ms if refresh_token else 0, dialect=dialect,
        )

        def create_txn(txn: Txn) -> list[int]:
            if not txn.exists(T.userid_user, T.userid_user.key(user_id)):
                raise Unauthorized("the account no longer exists")
            device_key = DEVICE.key(user_id, device_id)
            replaced = []
            old = txn.get(DEVICE, device_key)
            if old is not None:
                replaced.append(old)
                self._delete_txn(txn, old)
            self._put_txn(txn, session)
            txn.put(DEVICE, device_key, session.id)
            return replaced

        replaced = await self.store.write(create_txn)
        self._schedule(session)
        if replaced:
            self.bus.publish(SessionsRevoked(user_id=user_id, session_ids=tuple(replaced)), [user_id])
        return Issued(session, access, refresh_token)

    @staticmethod
    def _put_txn(txn: Txn, session: Session) -> None:
        txn.put(SESSION, SESSION.key(session.id), session)
        txn.put(T.tokenhash_sessionid, T.tokenhash_sessionid.key(session.token_hash), session.id)
        if session.refresh_hash:
            txn.put(T.refreshhash_sessionid, T.refreshhash_sessionid.key(session.refresh_hash), session.id)
        txn.put(MINE, MINE.key(session.user_id, session.id))

    @staticmethod
    def _delete_txn(txn: Txn, session_id: int) -> Session | None:
        session = txn.get(SESSION, SESSION.key(session_id))
        if session is None:
            return None
        txn.delete(SESSION, SESSION.key(session_id))
        txn.delete(T.tokenhash_sessionid, T.tokenhash_sessionid.key(session.token_hash))
        if session.refresh_hash:
            txn.delete(T.refreshhash_sessionid, T.refreshhash_sessionid.key(session.refresh_hash))
        txn.delete(MINE, MINE.key(session.user_id, session_id))
        device_key = DEVICE.key(session.user_id, session.device_id)
        if txn.get(DEVICE, device_key) == session_id:
            txn.delete(DEVICE, device_key)
        return session

    def authenticate(self, token, *, device_id: str | None = None) -> Session:
        """The live session for an access token. Unauthorized: unknown, revoked or expired, or
        issued to another device than `device_id` (when given); Forbidden: an admission check
        refuses its user."""
        if not isinstance(token, str) or not token or len(token) > 512:
            raise Unauthorized("missing or malformed token")
        with self.store.read() as txn:
            sid = txn.get(T.tokenhash_sessionid, T.tokenhash_sessionid.key(token_hash(token)))
            session = txn.get(SESSION, SESSION.key(sid)) if sid is not None else None
        if session is None:
            raise Unauthorized("unknown or revoked token")
        if session.expires_at <= now_ms():
            raise Unauthorized("token expired")
        check_device(session, device_id)
        self.check_admission(session.user_id)
        return session

    def check_admission(self, user_id: int) -> None:
        """Run the admission checks (a global ban raises Forbidden)."""
        for check in self.admission_checks:
            check(user_id)

    def admit(self, user_id: int, *, replacing: bool = False) -> None:
        """Before a connection binds to `user_id`: Forbidden if an admission check refuses the
        user; RateLimited when the user already has `max_connections_per_user` connections, all
        dialects together. `replacing`: the caller's connection is one of the user's already (a
        SAMA socket logging in again as the same user), so it is not counted twice."""
        self.check_admission(user_id)
        limit = self.max_connections_per_user
        if not replacing and self.bus.connections(user_id) >= limit:
            raise RateLimited(f"at most {limit} connections per user")

    def get(self, session_id: int) -> Session | None:
        with self.store.read() as txn:
            return txn.get(SESSION, SESSION.key(session_id))

    async def refresh(self, refresh_token, device_id: str | None = None) -> Issued:
        """Trade a refresh token for a new session on the same device (the old one ends).

        The token is checked and spent in one write transaction, so it works once only.
        """
        if not isinstance(refresh_token, str) or not refresh_token or len(refresh_token) > 512:
            raise Unauthorized("missing refresh token")
        access, new_refresh, now = new_token(), new_token(), now_ms()
        new_id = self.ids.next()

        def refresh_txn(txn: Txn) -> Session:
            sid = txn.get(T.refreshhash_sessionid, T.refreshhash_sessionid.key(token_hash(refresh_token)))
            old = txn.get(SESSION, SESSION.key(sid)) if sid is not None else None
            if old is None or old.refresh_expires_at <= now:
                raise Unauthorized("unknown, expired or revoked refresh token")
            check_device(old, device_id, "refresh token")
            self._delete_txn(txn, old.id)
            session = Session(
                id=new_id, user_id=old.user_id, device_id=old.device_id, token_hash=token_hash(access),
                created_at=now, expires_at=now + self.access_ttl_ms, refresh_hash=token_hash(new_refresh),
                refresh_expires_at=now + self.refresh_ttl_ms, dialect=old.dialect,
            )
            self._put_txn(txn, session)
            txn.put(DEVICE, DEVICE.key(old.user_id, old.device_id), session.id)
            return session, old.id

        session, old_id = await self.store.write(refresh_txn)
        self._schedule(session)
        self.bus.publish(SessionsRevoked(user_id=session.user_id, session_ids=(old_id,)), [session.user_id])
        return Issued(session, access, new_refresh)

    async def revoke(self, session_id: int) -> None:
        session = await self.store.write(lambda txn: self._delete_txn(txn, session_id))
        if session is not None:
            self.bus.publish(SessionsRevoked(user_id=session.user_id, session_ids=(session_id,)),
                             [session.user_id])

    async def revoke_all(self, user_id: int) -> None:
        await self.store.write(lambda txn: self.revoke_all_txn(txn, user_id))
        self.bus.drop_user(user_id, "logged out everywhere")

    def revoke_all_txn(self, txn: Txn, user_id: int, keep: int | None = None) -> list[int]:
        """Delete the user's sessions (but `keep`) in `txn`; their ids."""
        ids = [sid for _, sid in txn.keys(MINE, prefix=MINE.prefix(user_id))]
        ids = [sid for sid in ids if sid != keep]
        for sid in ids:
            self._delete_txn(txn, sid)
        return ids

    # -- access-token expiry ----------------------------------------------------------------------

    def _schedule(self, session: Session) -> None:
        heapq.heappush(self._expiries, (session.expires_at, session.id, session.user_id))
        if self._expiries[0][1] == session.id:
            self._wake.set()  # earlier than what the watcher sleeps for

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Announce each access token's expiry when it happens (SessionsRevoked, reason "expired")."""
        now = now_ms()
        with self.store.read() as txn:
            for _, s in txn.scan(SESSION):
                if s.expires_at > now:
                    heapq.heappush(self._expiries, (s.expires_at, s.id, s.user_id))
        task_status.started()
        while True:
            self._wake = trio.Event()
            now = now_ms()
            due = []
            while self._expiries and self._expiries[0][0] <= now:
                due.append(heapq.heappop(self._expiries))
            if due:
                self._announce_expired(due, now)
            # Re-read the wall clock at least each minute, in case it was stepped.
            delay = min(60.0, (self._expiries[0][0] - now) / 1000) if self._expiries else 60.0
            with trio.move_on_after(max(0.0, delay) if math.isfinite(delay) else 60.0):
                await self._wake.wait()

    def _announce_expired(self, due: list[tuple[int, int, int]], now: int) -> None:
        by_user: dict[int, list[int]] = {}
        with self.store.read() as txn:
            for _, sid, uid in due:
                session = txn.get(SESSION, SESSION.key(sid))
                # Gone: its revocation was announced already. Not expired: rescheduled (it cannot be
                # extended today, but a later expiry must not be announced early).
                if session is None:
                    continue
                if session.expires_at > now:
                    heapq.heappush(self._expiries, (session.expires_at, sid, uid))
                    continue
                by_user.setdefault(uid, []).append(sid)
        for uid, ids in by_user.items():
            self.expired_announced += len(ids)
            self.bus.publish(SessionsRevoked(user_id=uid, session_ids=tuple(ids), reason="expired"), [uid])

    async def prune_expired(self, *, batch: int = 1000) -> int:
        """Delete sessions whose access and refresh tokens have both expired."""
        now = now_ms()
        with self.store.read() as txn:
            dead = [
                s.id for _, s in txn.scan(SESSION)
                if s.expires_at <= now and s.refresh_expires_at <= now
            ][:batch]
        if dead:
            await self.store.write(lambda txn: [self._delete_txn(txn, sid) for sid in dead])
        return len(dead)
