"""Shared checks for values every dialect passes to the core."""

import re

from .errors import Invalid

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")
_PHONE_STRIP = re.compile(r"[\s\-().]")
_PHONE = re.compile(r"^\+?[0-9]{3,20}$")
_CONTROL = re.compile(r"[\x00-\x1f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # tab, LF and CR allowed


def text(value, field: str, *, max_len: int, min_len: int = 1, allow_newlines: bool = True) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{field} must be a string", field=field)
    if not (min_len <= len(value) <= max_len):
        raise Invalid(f"{field} must be {min_len} to {max_len} characters", field=field)
    if (_CONTROL_BUT_LINES if allow_newlines else _CONTROL).search(value):
        raise Invalid(f"{field} contains control characters", field=field)
    return value


def login(value) -> str:
    value = text(value, "login", max_len=64, allow_newlines=False).strip()
    if not value:
        raise Invalid("login must not be blank", field="login")
    return value


def password(value, field: str = "password") -> str:
    return text(value, field, min_len=1, max_len=512)


def email(value) -> str:
    value = text(value, "email", max_len=254, allow_newlines=False).strip()
    if not _EMAIL.match(value):
        raise Invalid("email is not a valid address", field="email")
    return value


def phone(value) -> str:
    value = _PHONE_STRIP.sub("", text(value, "phone", max_len=32, allow_newlines=False))
    if not _PHONE.match(value):
        raise Invalid("phone must be 3 to 20 digits, optionally starting with +", field="phone")
    return value


def device_id(value) -> str:
    return text(value, "device_id", max_len=128, allow_newlines=False)
