"""Domain events carried by the bus: facts about the core's records, in no dialect's shape."""

from typing import Any

import msgspec

from .models import User


class Event(msgspec.Struct, frozen=True, kw_only=True):
    pass


class UserUpdated(Event):
    user: User


class UserDeleted(Event):
    user_id: int


class SessionsRevoked(Event):
    """The user's sessions in `session_ids` are no longer valid; connections using them close."""

    user_id: int
    session_ids: tuple[int, ...]


class Custom(Event):
    """An event a dialect defines for its own clients only (rendered by that dialect alone)."""

    dialect: str
    name: str
    data: Any = None
