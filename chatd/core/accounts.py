"""User accounts: unique case-insensitive logins, optional email/phone/password, profile.

Every password check goes through here (`check_password`, `login_by_id`, the
current password of `update`), behind the failed-login throttle
(core/throttle.py). Changing a password ends the user's other sessions.
"""

from collections.abc import Callable

import msgspec

from ..store import tables as T
from ..store.lmdb import Store, Txn
from . import validate
from .bus import Bus
from .clock import now_ms
from .errors import Conflict, Invalid, NotFound, Unauthorized
from .events import SessionsRevoked, UserDeleted, UserUpdated
from .ids import Snowflakes
from .models import USER_TOKEN_ONLY, User
from .passwords import PasswordHasher
from .throttle import LoginThrottle, account_key, address_key

PROFILE_FIELDS = ("first_name", "last_name", "avatar_url")
_UNSET = object()


class Accounts:
    def __init__(self, store: Store, bus: Bus, ids: Snowflakes, hasher: PasswordHasher,
                 throttle: LoginThrottle):
        self.store = store
        self.bus = bus
        self.ids = ids
        self.hasher = hasher
        self.throttle = throttle  # budgets from [auth] (Core builds it)
        # Run in a password change's transaction: end the user's sessions but one (None: all), return their ids.
        self.revoke_sessions_txn: Callable[[Txn, int, int | None], list[int]] = lambda txn, uid, keep: []
        # Functions run in the deleting transaction, so other services drop what they keep for a user.
        self.delete_hooks: list[Callable[[Txn, int], None]] = []
        # Audience for a user's profile changes (those who can see the user); set by the services that know.
        self.audience_of: Callable[[int], set[int]] = lambda user_id: {user_id}

    # -- reads -------------------------------------------------------------------------------

    def get(self, user_id: int) -> User:
        with self.store.read() as txn:
            return self.get_txn(txn, user_id)

    @staticmethod
    def get_txn(txn: Txn, user_id: int) -> User:
        user = txn.get(T.userid_user, T.userid_user.key(user_id))
        if user is None:
            raise NotFound("user not found", kind="user", id=user_id)
        return user

    def find(self, user_id: int) -> User | None:
        with self.store.read() as txn:
            return txn.get(T.userid_user, T.userid_user.key(user_id))

    def get_many(self, user_ids) -> list[User]:
        """The users that exist among `user_ids`, in the given order, without duplicates."""
        out, seen = [], set()
        with self.store.read() as txn:
            for uid in user_ids:
                if uid in seen:
                    continue
                seen.add(uid)
                user = txn.get(T.userid_user, T.userid_user.key(uid))
                if user is not None:
                    out.append(user)
        return out

    def _find_by(self, table: T.Table, value: str) -> User | None:
        with self.store.read() as txn:
            uid = txn.get(table, table.key(value))
            return txn.get(T.userid_user, T.userid_user.key(uid)) if uid is not None else None

    def by_login(self, login: str) -> User | None:
        return self._find_by(T.username_userid, login.strip())

    def by_email(self, email: str) -> User | None:
        return self._find_by(T.email_userid, email.strip())

    def by_phone(self, phone: str) -> User | None:
        try:
            return self._find_by(T.phone_userid, validate.phone(phone))
        except Invalid:
            return None

    def search(self, keyword: str, *, limit: int, updated_after: int = 0, ignore: set[int] = frozenset()):
        """Users whose login starts with `keyword` (case-insensitive), by login order."""
        prefix = T.username_userid.key(keyword) if keyword else b""
        out = []
        with self.store.read() as txn:
            for _, uid in txn.scan(T.username_userid, prefix=prefix):
                if uid in ignore:
                    continue
                user = txn.get(T.userid_user, T.userid_user.key(uid))
                if user is None or user.updated_at <= updated_after:
                    continue
                out.append(user)
                if len(out) >= limit:
                    break
        return out

    # -- writes ------------------------------------------------------------------------------

    async def create(
        self,
        login: str,
        *,
        password: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        avatar_url: str | None = None,
        bot: bool = False,
        extra: dict | None = None,
    ) -> User:
        login = validate.login(login)
        email = validate.email(email) if email is not None else None
        phone = validate.phone(phone) if phone is not None else None
        profile = self._profile(first_name=first_name, last_name=last_name, avatar_url=avatar_url)
        password_hash = await self.hasher.hash(validate.password(password)) if password is not None else None
        now = now_ms()
        user = User(
            id=self.ids.next(), login=login, created_at=now, updated_at=now, email=email, phone=phone,
            password_hash=password_hash, bot=bot, extra=extra or {}, **profile,
        )

        def create_txn(txn: Txn) -> User:
            self._claim_txn(txn, T.username_userid, login, user.id, "login")
            if email:
                self._claim_txn(txn, T.email_userid, email, user.id, "email")
            if phone:
                self._claim_txn(txn, T.phone_userid, phone, user.id, "phone")
            txn.put(T.userid_user, T.userid_user.key(user.id), user)
            return user

        return await self.store.write(create_txn)

    @staticmethod
    def _claim_txn(txn: Txn, table: T.Table, value: str, user_id: int, field: str) -> None:
        key = table.key(value)
        if not txn.put(table, key, user_id, overwrite=False):
            if txn.get(table, key) != user_id:
                raise Conflict(f"this {field} is already taken", field=field)

    @staticmethod
    def _profile(**fields) -> dict:
        out = {}
        for name, value in fields.items():
            if value is _UNSET:
                continue
            if value is not None:
                value = validate.text(value, name, max_len=2048 if name == "avatar_url" else 128,
                                      min_len=0, allow_newlines=False)
            out[name] = value
        return out

    async def update(
        self,
        user_id: int,
        *,
        login=_UNSET,
        email=_UNSET,
        phone=_UNSET,
        first_name=_UNSET,
        last_name=_UNSET,
        avatar_url=_UNSET,
        extra: dict | None = None,
        new_password: str | None = None,
        current_password: str | None = None,
        require_current_password: bool = True,
        keep_session: int | None = None,
        remote: str | None = None,
    ) -> User:
        """Change a user's own account; a password change needs the current password (checked
        behind the failed-login throttle, `remote` being the client's address) and ends every
        session of the user except `keep_session` (the one that asked)."""
        login = validate.login(login) if login is not _UNSET else _UNSET
        if email is not _UNSET and email is not None:
            email = validate.email(email)
        if phone is not _UNSET and phone is not None:
            phone = validate.phone(phone)
        profile = self._profile(first_name=first_name, last_name=last_name, avatar_url=avatar_url)
        new_hash = None
        if new_password is not None:
            validate.password(new_password, "new_password")
            current = self.get(user_id)
            if require_current_password and current.password_hash is not None:
                if current_password is None:
                    raise Invalid("current_password is required to change the password", field="current_password")
                if not await self._verify(current.login, remote, current.password_hash, current_password):
                    raise Unauthorized("current_password is wrong")
            new_hash = await self.hasher.hash(new_password)

        revoked: list[int] = []

        def update_txn(txn: Txn) -> User:
            user = self.get_txn(txn, user_id)
            if new_hash is not None:
                revoked[:] = self.revoke_sessions_txn(txn, user_id, keep_session)
            changes = dict(profile)
            for field, value, table in (
                ("login", login, T.username_userid),
                ("email", email, T.email_userid),
                ("phone", phone, T.phone_userid),
            ):
                key_of = table.key
                old = getattr(user, field)
                if value is _UNSET or value == old:
                    continue
                if value is not None:
                    self._claim_txn(txn, table, value, user_id, field)
                if old is not None and (value is None or key_of(old) != key_of(value)):
                    txn.delete(table, key_of(old))
                changes[field] = value
            if new_hash is not None:
                changes["password_hash"] = new_hash
            if extra:
                changes["extra"] = {**user.extra, **extra}
            changes = {k: v for k, v in changes.items() if getattr(user, k) != v}
            if not changes:
                return user
            user = msgspec.structs.replace(user, updated_at=max(now_ms(), user.updated_at + 1), **changes)
            txn.put(T.userid_user, T.userid_user.key(user_id), user)
            return user

        before_updated = self.get(user_id).updated_at
        user = await self.store.write(update_txn)
        if revoked:
            self.bus.publish(SessionsRevoked(user_id=user_id, session_ids=tuple(revoked), reason="password changed"),
                             [user_id])
        if user.updated_at != before_updated:
            self.bus.publish(UserUpdated(user=user), self.audience_of(user_id))
        return user

    async def set_password(self, user_id: int, password: str) -> User:
        """Set a password without the current one (the CLI, account recovery); every session ends."""
        return await self.update(user_id, new_password=password, require_current_password=False)

    async def delete(self, user_id: int) -> None:
        audience = self.audience_of(user_id)

        def delete_txn(txn: Txn) -> None:
            user = self.get_txn(txn, user_id)
            txn.delete(T.username_userid, T.username_userid.key(user.login))
            if user.email:
                txn.delete(T.email_userid, T.email_userid.key(user.email))
            if user.phone:
                txn.delete(T.phone_userid, T.phone_userid.key(user.phone))
            for hook in self.delete_hooks:
                hook(txn, user_id)
            txn.delete(T.userid_user, T.userid_user.key(user_id))

        await self.store.write(delete_txn)
        self.bus.publish(UserDeleted(user_id=user_id), audience)
        self.bus.drop_user(user_id, "account deleted")

    async def check_password(self, login: str, password: str, *, remote: str | None = None) -> User:
        """The user with this login and password, or Unauthorized (same error for either mistake).

        `remote` is the client's address. Over the failed-login budget of the login or the address:
        RateLimited, before any hash is computed; too many hashes already waiting: Unavailable.
        """
        if not isinstance(login, str) or not isinstance(password, str):
            raise Unauthorized("wrong login or password")
        user = self.by_login(login)
        if user is not None and user.flags & USER_TOKEN_ONLY:
            user = None  # acts only through its token: no password ever matches
        if not await self._verify(login, remote, user.password_hash if user else None, password):
            raise Unauthorized("wrong login or password")
        return user

    async def login_by_id(self, user_id: int, login, password=None, *, allow_passwordless: bool,
                          remote: str | None = None) -> User:
        """The user with this id and login (a dialect's login without a password, as sockchat documents).

        Only an account that has no password may log in that way, and only where the dialect allows it
        (`allow_passwordless`); an account with a password needs it, whatever the dialect.
        """
        user = self.by_login(login) if isinstance(login, str) else None
        if user is None or user.id != user_id or user.flags & USER_TOKEN_ONLY:
            raise Unauthorized("wrong account id or username")
        if user.password_hash is None and allow_passwordless:
            return user
        if not isinstance(password, str) or not password:
            raise Unauthorized("wrong account id, username or password")
        return await self.check_password(user.login, password, remote=remote)

    async def _verify(self, login: str, remote: str | None, stored: bytes | None, password: str) -> bool:
        """One throttled password check: refused (RateLimited) over budget, counted when wrong."""
        account, address = account_key(login), address_key(remote)
        self.throttle.attempt(account, address)
        try:
            ok = await self.hasher.verify(stored, password)
        except BaseException:
            self.throttle.withdraw(account, address)  # no password was checked (busy, cancelled)
            raise
        if ok:
            self.throttle.succeeded(account, address)
        return ok
