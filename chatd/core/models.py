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
