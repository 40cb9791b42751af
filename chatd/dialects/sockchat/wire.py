"""The sockchat wire format: ids, array query parameters, users, messages, channels, events.

Ids are snowflakes rendered as decimal strings. The welcome channel is virtual:
channel id "0", message id "0", its bot user id "1" (no snowflake is that small).
"""

import msgspec

from ... import wirejson
from ...core import events as ev
from ...core.ids import MAX_ID
from ...core.models import Message, User
from .errors import BadRequest

WELCOME_CHANNEL_ID = 0
WELCOME_BOT_ID = 1
MAX_IDS = 100
NULL_CHANNELS = ("null", "undefined")


class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Extra keys of `[dialects.sockchat]` in config.toml."""

    require_password: bool = False
    default_avatar_url: str = ""
    welcome_username: str = "chatd"
    welcome_avatar_url: str = ""
    welcome_message: str = (
        "Hello! Welcome {username}!!! It appears that you currently have no friends, though you can add "
        "some to hang out with by clicking that plus button at the top and entering their id!"
    )
    ping_interval: float | None = None  # default: limits.heartbeat_interval
    ping_timeout: float = 20.0


# -- parsing ---------------------------------------------------------------------------------


def parse_id(value, what: str = "id") -> int:
    """A wire id (decimal string; a JSON number is tolerated) → int, or BadRequest."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdecimal() and len(value.strip()) <= 20:
        n = int(value.strip())
    else:
        raise BadRequest(f"{what} must be an id")
    if not 0 <= n <= MAX_ID:
        raise BadRequest(f"{what} must be an id")
    return n


def array_param(args, name: str) -> list[int]:
    """An array query parameter in any form clients send: `name=1&name=2`, `name[]=1`,
    `name[0]=1`, `name=1,2`, or a JSON array `name=["1","2"]`. Duplicates are dropped."""
    raw: list[str] = []
    for key, value in args.items(multi=True):
        if key == name or key == name + "[]" or (key.startswith(name + "[") and key.endswith("]")
                                                  and key[len(name) + 1:-1].isascii() and key[len(name) + 1:-1].isdecimal()):
            raw.append(value)
    items: list = []
    for value in raw:
        value = value.strip()
        if value.startswith("["):
            try:
                decoded = wirejson.decode(value)
            except wirejson.JSONInputError:
                raise BadRequest(f"{name} is not a list of ids") from None
            if not isinstance(decoded, list):
                raise BadRequest(f"{name} is not a list of ids")
            items += decoded
        else:
            items += [part for part in value.split(",") if part.strip()]
    if not items:
        raise BadRequest(f"{name} must list at least one id")
    ids = list(dict.fromkeys(parse_id(item, name) for item in items))
    if len(ids) > MAX_IDS:
        raise BadRequest(f"{name} must list at most {MAX_IDS} ids")
    return ids


# -- rendering -------------------------------------------------------------------------------


class Renderer:
    """Renders records with this deployment's options (default avatar, welcome bot)."""

    def __init__(self, options: Options):
        self.options = options
        self.bot = {"avatarURL": options.welcome_avatar_url, "id": str(WELCOME_BOT_ID),
                    "username": options.welcome_username}

    def user(self, u: User | None, user_id: int | None = None) -> dict:
        if u is None:
            if user_id == WELCOME_BOT_ID:
                return dict(self.bot)
            return {"avatarURL": self.options.default_avatar_url, "id": str(user_id), "username": "Deleted User"}
        return {"avatarURL": u.avatar_url or self.options.default_avatar_url, "id": str(u.id), "username": u.login}

    def message(self, m: Message, author: dict) -> dict:
        return {"author": author, "channel_id": str(m.cid), "content": m.body, "id": str(m.id)}

    def welcome(self, viewer: User) -> dict:
        """The body of `GET /messages?channel_id=null`: the welcome channel with its one message."""
        text = self.options.welcome_message.replace("{username}", viewer.login)
        return {
            "messages": [{"content": text, "author": dict(self.bot), "id": "0",
                          "channel_id": str(WELCOME_CHANNEL_ID)}],
            "channel": {"name": self.options.welcome_username, "id": str(WELCOME_CHANNEL_ID)},
            "other_user": str(WELCOME_BOT_ID),
        }


def deleted(cid: int, mid: int) -> dict:
    return {"channel": str(cid), "id": str(mid)}


# -- events from clients -------------------------------------------------------------------------


class MessageIn(msgspec.Struct):
    content: str
    channel: str | int


class DeleteIn(msgspec.Struct):
    channel: str | int
    id: str | int


def event_payload(args: list, kind: type):
    """The one argument of a client event, in the documented shape, or BadRequest."""
    if len(args) != 1:
        raise BadRequest("the event takes exactly one object")
    try:
        return msgspec.convert(args[0], kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"not the documented format: {exc}") from None


# Domain events with a sockchat form; everything else is not sent to sockchat sockets.
RENDERED = (ev.MessageCreated, ev.MessagesDeleted, ev.ChannelCreated)
