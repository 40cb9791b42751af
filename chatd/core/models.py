"""The core's records, as dialects see them. They are defined with the tables that store them
(`chatd.store.records`); dialects import them from here, never from the store."""

from ..store.records import (
    CHANNEL_KINDS,
    RELATIONSHIPS,
    USER_TOKEN_ONLY,
    AdminToken,
    Attachment,
    Channel,
    Contact,
    ContactPoint,
    File,
    Member,
    Message,
    PushEvent,
    PushSubscription,
    QueuedPush,
    Relationship,
    Session,
    User,
)

__all__ = [
    "CHANNEL_KINDS", "RELATIONSHIPS", "USER_TOKEN_ONLY", "AdminToken", "Attachment", "Channel", "Contact",
    "ContactPoint", "File", "Member", "Message", "PushEvent", "PushSubscription", "QueuedPush", "Relationship",
    "Session", "User",
]
