"""Test helpers for sockchat: REST shortcuts and the stock python-socketio client in a thread.

    alice = await new_user(http, "alice")              # Account(id, token, name)
    cid = await create_channel(http, alice, bob)
    async with sio_client(server, alice, [cid]) as a:   # a real socketio.Client, connected
        ack = await a.call("message", {"content": "hi", "channel": cid})
        event = await b.wait_for("message")
"""

import queue
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import socketio
import trio


@dataclass
class Account:
    id: str
    token: str
    name: str

    @property
    def auth(self) -> dict:
        return {"Authorisation": self.token}


async def new_user(http, name: str, **extra) -> Account:
    r = await http.post("/new", json={"username": name, **extra})
    assert r.status_code == 201, r.text
    body = r.json()
    return Account(body["id"], body["token"], name)


async def create_channel(http, a: Account, b: Account) -> str:
    r = await http.post("/create-channel", json={"to": b.id, "type": 1}, headers=a.auth)
    assert r.status_code == 201, r.text
    return r.json()["channel_id"]


async def in_thread(fn, *args, **kwargs):
    return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs), abandon_on_cancel=True)


class SyncClient:
    """A stock `socketio.Client` whose events land in a queue; every call is run in a thread."""

    EVENTS = ("message", "messageDeleted", "channelCreate")

    def __init__(self):
        self.client = socketio.Client(reconnection=False, request_timeout=5)
        self.inbox: queue.Queue = queue.Queue()
        for name in self.EVENTS:
            self.client.on(name, lambda data, name=name: self.inbox.put((name, data)))

    @property
    def transport(self) -> str:
        return self.client.transport()

    async def call(self, event: str, data: Any) -> Any:
        return await in_thread(self.client.call, event, data, timeout=5)

    async def emit(self, event: str, data: Any) -> None:
        await in_thread(self.client.emit, event, data)

    async def wait_for(self, name: str, timeout: float = 5) -> Any:
        """The next event (it must be `name`)."""
        got, data = await in_thread(self.inbox.get, timeout=timeout)
        assert got == name, (got, data)
        return data

    async def nothing(self, within: float = 0.3) -> None:
        """Assert no event arrives within `within` seconds."""
        try:
            got = await in_thread(self.inbox.get, timeout=within)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected event {got!r}")


@asynccontextmanager
async def sio_client(server, account: Account | None = None, channels=(), *, transports=None,
                     via: str = "headers", token: str | None = None):
    """A connected SyncClient; `via` = "headers" (the document), "auth" or "query"."""
    c = SyncClient()
    token = token if token is not None else (account.token if account else None)
    url, headers, auth = server.http_url, {}, None
    if via == "headers":
        if token is not None:
            headers["Authorisation"] = token
        if channels:
            headers["channels"] = ",".join(channels)
    elif via == "auth":
        auth = {"token": token, "channels": list(channels)}
    else:
        url += f"?token={token}&channels={','.join(channels)}"
    await in_thread(c.client.connect, url, headers=headers, auth=auth, transports=transports, wait_timeout=5)
    try:
        yield c
    finally:
        with trio.CancelScope(shield=True):
            await in_thread(c.client.disconnect)
