"""Tokens for the admin API, made from the CLI, printed once, stored as a hash."""

from ..store.lmdb import Store, Txn
from .clock import now_ms
from .errors import Unauthorized
from .ids import Snowflakes
from .models import AdminToken
from .sessions import new_token, token_hash


def create_txn(txn: Txn, ids: Snowflakes, name: str) -> str:
    token = "adm_" + new_token()
    txn.put("adminhash_admintoken", token_hash(token), AdminToken(id=ids.next(), name=name, created_at=now_ms()))
    return token


def authenticate(store: Store, token) -> AdminToken:
    if not isinstance(token, str) or not token.startswith("adm_"):
        raise Unauthorized("missing or malformed admin token")
    with store.read() as txn:
        record = txn.get("adminhash_admintoken", token_hash(token), AdminToken)
    if record is None:
        raise Unauthorized("unknown admin token")
    return record
