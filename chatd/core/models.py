"""The stored records. Times are Unix milliseconds; ids are snowflakes."""

import msgspec


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


class Conversation(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: int
    type: str  # "u": private, exactly two people; "g": group
    owner_id: int
    created_at: int
    updated_at: int
    name: str | None = None
    description: str | None = None
    # The two people of a private conversation, whether or not they still list it.
    pair: tuple[int, int] | None = None
    extra: dict = {}


class Member(msgspec.Struct, kw_only=True, omit_defaults=True):
    joined_at: int
    last_read: int = 0  # the highest message id this member has read


class Attachment(msgspec.Struct, kw_only=True, omit_defaults=True):
    file_id: str
    file_name: str | None = None
    size: int | None = None
    content_type: str | None = None


class Message(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: int
    cid: int
    author_id: int
    body: str
    created_at: int
    updated_at: int
    x: dict | None = None
    attachments: tuple[Attachment, ...] = ()
    client_id: str | None = None
    # A stored system message (participant added/removed/left): `x` says which.
    system: bool = False


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
