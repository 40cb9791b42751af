"""The stored records (data format 2). Times are Unix milliseconds; ids are snowflakes.

The core re-exports them (`chatd.core.models`) as its vocabulary for dialects.
"""

import msgspec

CHANNEL_KINDS = ("dm", "group", "text", "saved")
RELATIONSHIPS = ("none", "friend", "outgoing", "incoming", "blocked", "blocked_by")
USER_TOKEN_ONLY = 1  # a user that acts only through a token (an admin token's user): no login


class User(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: int
    login: str
    created_at: int
    updated_at: int
    email: str | None = None
    phone: str | None = None
    password_hash: bytes | None = None
    first_name: str | None = None
    last_name: str | None = None
    avatar_url: str | None = None
    bot: bool = False
    roles: tuple[str, ...] = ()  # e.g. "admin", "teacher"
    flags: int = 0  # USER_TOKEN_ONLY, …
    # Profile fields a dialect keeps that the others have no name for.
    extra: dict = {}

    @property
    def display_name(self) -> str:
        full = " ".join(p for p in (self.first_name, self.last_name) if p)
        return full or self.login


class Session(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: int
    user_id: int
    device_id: str
    token_hash: bytes
    created_at: int
    expires_at: int
    refresh_hash: bytes | None = None
    refresh_expires_at: int = 0
    dialect: str = ""


class AdminToken(msgspec.Struct, kw_only=True):
    id: int
    name: str
    created_at: int
    user_id: int = 0  # the user the token acts as ("as Admin")


class Channel(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where messages are posted. `kind`: "dm" (exactly the two people of `pair`), "group",
    "text" (in a space, or stand-alone) or "saved" (a DM with oneself). What members may do is
    data: `default_allow`/`default_deny` and `role_overrides`, set by the dialect that created it
    and enforced by the core's permission engine for every dialect."""

    id: int
    kind: str
    owner_id: int
    created_at: int
    updated_at: int
    space_id: int = 0
    name: str | None = None
    description: str | None = None
    icon: str | None = None
    # The two people of a DM, whether or not they still list it.
    pair: tuple[int, int] | None = None
    default_allow: int = 0
    default_deny: int = 0
    role_overrides: dict[int, tuple[int, int]] = {}
    muted_until: int = 0
    closed_at: int = 0
    slug: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict = {}
    extra: dict = {}


class Member(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A member of a channel. Their read mark is a row of its own (`chanuserid_read`): it moves
    with every message they send or read, and the member record need not be rewritten then."""

    joined_at: int
    muted_until: int = 0


class Relationship(msgspec.Struct, kw_only=True):
    """How a user stands to another (one row per ordered pair; no row means "none")."""

    status: str  # RELATIONSHIPS
    updated_at: int


class Attachment(msgspec.Struct, kw_only=True, omit_defaults=True):
    file_id: str
    file_name: str | None = None
    size: int | None = None
    content_type: str | None = None


class Message(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`cid` is the channel's id. `kind`: "text", "system" (member added/removed/left: `data`
    says which), "custom", "image" or "file". `data`: fields a dialect keeps (SAMA's `x`)."""

    id: int
    cid: int
    author_id: int
    body: str
    created_at: int
    updated_at: int
    kind: str = "text"
    data: dict | None = None
    attachments: tuple[Attachment, ...] = ()
    client_id: str | None = None
    parent_id: int = 0
    mentions: tuple[int, ...] = ()
    edited_at: int = 0
    pinned: bool = False
    reactions: dict[str, tuple[int, ...]] = {}

    @property
    def system(self) -> bool:
        return self.kind == "system"


class ContactPoint(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: str
    value: str


class Contact(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: int
    owner_id: int
    created_at: int
    updated_at: int
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    email: tuple[ContactPoint, ...] = ()
    phone: tuple[ContactPoint, ...] = ()


class File(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: int
    owner_id: int
    name: str
    size: int
    content_type: str
    created_at: int
    sha256: str | None = None  # set once the bytes are uploaded


class PushSubscription(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: int
    user_id: int
    platform: str
    device_udid: str
    created_at: int
    updated_at: int
    web_endpoint: str | None = None
    web_key_auth: str | None = None
    web_key_p256dh: str | None = None
    device_token: str | None = None


class PushEvent(msgspec.Struct, kw_only=True):
    id: int
    user_id: int
    recipients_ids: tuple[int, ...]
    message: str  # JSON text, as the SAMA protocol returns it
    created_at: int


class QueuedPush(msgspec.Struct, kw_only=True):
    """One notification waiting for a push sender: for one subscription of one user."""

    id: int
    user_id: int
    subscription_id: int
    payload: dict
    created_at: int
