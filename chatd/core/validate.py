"""Shared checks for values every dialect passes to the core."""

import re

import msgspec

from .errors import Invalid

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")
_PHONE_STRIP = re.compile(r"[\s\-().]")
_PHONE = re.compile(r"^\+?[0-9]{3,20}$")
_CONTROL = re.compile(r"[\x00-\x1f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # tab, LF and CR allowed


# Values that become (part of) an LMDB key are bounded in bytes once case-folded, so that
# every such key stays well under LMDB's 511-byte limit whatever the characters.
MAX_KEY_TEXT_BYTES = 400
MAX_JSON_DEPTH = 32


def text(value, field: str, *, max_len: int, min_len: int = 1, allow_newlines: bool = True,
         key: bool = False) -> str:
    """A string of `min_len`..`max_len` characters without control characters; with `key`, also
    at most MAX_KEY_TEXT_BYTES bytes of UTF-8 once case-folded (it becomes a storage key)."""
    if not isinstance(value, str):
        raise Invalid(f"{field} must be a string", field=field)
    if not (min_len <= len(value) <= max_len):
        raise Invalid(f"{field} must be {min_len} to {max_len} characters", field=field)
    if (_CONTROL_BUT_LINES if allow_newlines else _CONTROL).search(value):
        raise Invalid(f"{field} contains control characters", field=field)
    if key:
        try:
            size = len(value.casefold().encode("utf-8"))
        except UnicodeEncodeError:
            raise Invalid(f"{field} is not valid text", field=field) from None
        if size > MAX_KEY_TEXT_BYTES:
            raise Invalid(f"{field} is too long", field=field)
    return value


def nesting_exceeds(value, max_depth: int) -> bool:
    """Whether `value` has lists or objects nested deeper than `max_depth` levels."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))
    return False


def free_json(value, field: str, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> dict:
    """A client's free-form JSON object (e.g. SAMA's `x`), bounded in depth and encoded size."""
    if not isinstance(value, dict):
        raise Invalid(f"{field} must be an object", field=field)
    if nesting_exceeds(value, max_depth):
        raise Invalid(f"{field} must not nest deeper than {max_depth} levels", field=field)
    try:
        size = len(msgspec.json.encode(value))
    except (TypeError, msgspec.EncodeError):
        raise Invalid(f"{field} must be JSON", field=field) from None
    if size > max_bytes:
        raise Invalid(f"{field} must be at most {max_bytes} bytes of JSON", field=field)
    return value


def login(value) -> str:
    value = text(value, "login", max_len=64, allow_newlines=False, key=True).strip()
    if not value:
        raise Invalid("login must not be blank", field="login")
    return value


def password(value, field: str = "password") -> str:
    return text(value, field, min_len=1, max_len=512)


def email(value) -> str:
    value = text(value, "email", max_len=254, allow_newlines=False, key=True).strip()
    if not _EMAIL.match(value):
        raise Invalid("email is not a valid address", field="email")
    return value


def phone(value) -> str:
    value = _PHONE_STRIP.sub("", text(value, "phone", max_len=32, allow_newlines=False))
    if not _PHONE.match(value):
        raise Invalid("phone must be 3 to 20 digits, optionally starting with +", field="phone")
    return value


def device_id(value) -> str:
    return text(value, "device_id", max_len=128, allow_newlines=False, key=True)
