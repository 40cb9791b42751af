"""Domain events carried by the bus: facts about the core's records, in no dialect's shape.

Events are tagged structs so that those kept in a user's operations log can be
stored and decoded again (`decode_event`).
"""

from typing import Any, Union

import msgspec

from .models import Channel, Message, User


class Event(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    pass


class UserUpdated(Event):
    user: User


class UserDeleted(Event):
    user_id: int


class SessionsRevoked(Event):
    """The user's sessions in `session_ids` are no longer valid; connections using them close.

    `reason`: "" (logged out, replaced, revoked), "expired" (the access token's time is up; the
    session's refresh token may still get a new one) or "password changed".
    """

    user_id: int
    session_ids: tuple[int, ...]
    reason: str = ""


class MessageCreated(Event):
    message: Message


class MessageEdited(Event):
    message: Message
    editor_id: int


class MessagesDeleted(Event):
    cid: int
    ids: tuple[int, ...]
    actor_id: int


class MessagesRead(Event):
    cid: int
    ids: tuple[int, ...]
    reader_id: int


class Typing(Event):
    cid: int
    user_id: int
    status: str | None = None


class ChannelCreated(Event):
    channel: Channel
    participants: tuple[int, ...]
    actor_id: int


class ChannelUpdated(Event):
    channel: Channel
    participants: tuple[int, ...]
    actor_id: int
    added: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()


class ChannelKicked(Event):
    """Sent to the users removed from a channel."""

    channel: Channel
    participants: tuple[int, ...]
    actor_id: int


class SystemMessage(Event):
    """A transient application signal (not stored in history), to users or a channel."""

    id: str
    from_id: int
    created_at: int
    cid: int | None = None
    x: dict | None = None


class PresenceChanged(Event):
    user_id: int
    online: bool
    last_activity: int  # Unix ms


class Custom(Event):
    """An event a dialect defines for its own clients only (rendered by that dialect alone)."""

    dialect: str
    name: str
    data: Any = None


AnyEvent = Union[  # noqa: UP007 - msgspec needs a real Union of the tagged types
    UserUpdated, UserDeleted, SessionsRevoked, MessageCreated, MessageEdited, MessagesDeleted,
    MessagesRead, Typing, ChannelCreated, ChannelUpdated, ChannelKicked,
    SystemMessage, PresenceChanged, Custom,
]


def decode_event(value) -> Event:
    return msgspec.convert(value, AnyEvent)
