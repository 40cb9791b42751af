"""Reads shared by the HTTP routes and the Socket.IO handler. sockchat only knows direct
channels: a channel is a core private conversation ("u"); groups of other dialects are not shown."""

from ...core.errors import Forbidden, NotFound
from ...core.models import Conversation


def dm(core, viewer: int, cid: int) -> Conversation:
    """The private conversation `cid` of `viewer`, or NotFound (also when the viewer is not in it)."""
    try:
        conv = core.conversations.get_for(viewer, cid)
    except Forbidden:
        raise NotFound("channel not found") from None
    if conv.type != "u" or not conv.pair:
        raise NotFound("channel not found")
    return conv


def other_of(conv: Conversation, viewer: int) -> int:
    a, b = conv.pair
    return b if a == viewer else a


def dm_ids(core, viewer: int) -> list[int]:
    """The ids of the viewer's direct channels, oldest first."""
    out = []
    for cid in core.conversations.ids_of(viewer):
        try:
            dm(core, viewer, cid)
        except NotFound:
            continue
        out.append(cid)
    return out
