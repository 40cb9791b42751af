"""Tokens for the admin API, made from the CLI, printed once, stored as a hash.

Each token acts as its own user (role "admin", `USER_TOKEN_ONLY`: no login through any
dialect), so what an admin writes has an author.
"""

from ..store import tables as T
from ..store.lmdb import Store, Txn
from .clock import now_ms
from .errors import Unauthorized
from .ids import Snowflakes
from .models import USER_TOKEN_ONLY, AdminToken, User
from .sessions import new_token, token_hash

TOKENS = T.adminhash_admintoken


def create_txn(txn: Txn, ids: Snowflakes, name: str) -> str:
    token = "adm_" + new_token()
    now, token_id, user_id = now_ms(), ids.next(), ids.next()
    login, n = f"admin-{token_id}", 1
    while not txn.put(T.username_userid, T.username_userid.key(login), user_id, overwrite=False):
        n += 1
        login = f"admin-{token_id}-{n}"
    txn.put(T.userid_user, T.userid_user.key(user_id), User(
        id=user_id, login=login, created_at=now, updated_at=now, first_name=name, roles=("admin",),
        flags=USER_TOKEN_ONLY))
    txn.put(TOKENS, TOKENS.key(token_hash(token)), AdminToken(id=token_id, name=name, created_at=now, user_id=user_id))
    return token


def authenticate(store: Store, token) -> AdminToken:
    if not isinstance(token, str) or not token.startswith("adm_"):
        raise Unauthorized("missing or malformed admin token")
    with store.read() as txn:
        record = txn.get(TOKENS, TOKENS.key(token_hash(token)))
    if record is None:
        raise Unauthorized("unknown admin token")
    return record
