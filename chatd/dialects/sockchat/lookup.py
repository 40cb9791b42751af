"""Reads shared by the HTTP routes and the Socket.IO handler. sockchat only knows direct
channels: a channel is a core DM (kind "dm"); groups of other dialects are not shown."""

from ...core.errors import Forbidden, NotFound
from ...core.models import Channel


def dm(core, viewer: int, cid: int) -> Channel:
    """The DM `cid` of `viewer`, or NotFound (also when the viewer is not in it)."""
    try:
        channel = core.channels.get_for(viewer, cid)
    except Forbidden:
        raise NotFound("channel not found") from None
    if channel.kind != "dm" or not channel.pair:
        raise NotFound("channel not found")
    return channel


def other_of(channel: Channel, viewer: int) -> int:
    a, b = channel.pair
    return b if a == viewer else a


def dm_ids(core, viewer: int) -> list[int]:
    """The ids of the viewer's direct channels, oldest first."""
    out = []
    for cid in core.members.channel_ids(viewer):
        try:
            dm(core, viewer, cid)
        except NotFound:
            continue
        out.append(cid)
    return out
