"""A small SAMA test client over trio-websocket, and helpers to create and log in users.

`SamaClient.request(op, body)` sends `{request: {op: body, id}}` and returns the
`response` object with that id; every other packet received meanwhile is kept
in `events` for `wait_for` / `expect_no`.
"""

import itertools
import json
import time
from collections.abc import Callable

import httpx
import trio
import trio_websocket

TIMEOUT = 5.0
_ids = itertools.count(1)


def _matcher(key_or_pred) -> Callable[[dict], bool]:
    if callable(key_or_pred):
        return key_or_pred
    return lambda packet: key_or_pred in packet


class SamaClient:
    def __init__(self, ws: trio_websocket.WebSocketConnection, name: str = ""):
        self.ws = ws
        self.name = name
        self.events: list[dict] = []
        self.user: dict | None = None
        self.user_id: str | None = None
        self.token: str | None = None

    # -- raw ---------------------------------------------------------------------------------

    async def send(self, packet) -> None:
        await self.ws.send_message(packet if isinstance(packet, str | bytes) else json.dumps(packet))

    async def receive(self) -> dict:
        return json.loads(await self.ws.get_message())

    # -- requests ----------------------------------------------------------------------------

    async def request(self, op: str, body=None, *, timeout: float = TIMEOUT) -> dict:
        """The `response` for `{request: {op: body, id}}` (errors included)."""
        rid = f"{op}-{next(_ids)}"
        await self.send({"request": {op: {} if body is None else body, "id": rid}})
        with trio.fail_after(timeout):
            while True:
                packet = await self.receive()
                response = packet.get("response")
                if isinstance(response, dict) and response.get("id") == rid:
                    return response
                self.events.append(packet)

    async def ok(self, op: str, body=None) -> dict:
        """Like `request`, asserting success."""
        response = await self.request(op, body)
        assert "error" not in response, f"{op} failed: {response}"
        return response

    async def error(self, op: str, body=None) -> int:
        """Like `request`, asserting an error; returns its status."""
        response = await self.request(op, body)
        assert "error" in response, f"{op} should have failed: {response}"
        return response["error"]["status"]

    async def send_message(self, cid: str, body: str = "hi", *, mid: str | None = None, **extra) -> dict:
        """Send a `message` packet and return its `ack` (asserts there is no error)."""
        mid = mid or f"m{next(_ids)}"
        await self.send({"message": {"id": mid, "cid": cid, "body": body, **extra}})
        packet = await self.wait_for(lambda p: ("ack" in p and p["ack"]["mid"] == mid)
                                     or ("message" in p and p["message"].get("id") == mid and "error" in p["message"]))
        assert "ack" in packet, f"message {mid} failed: {packet}"
        return packet["ack"]

    async def send_message_error(self, cid: str, body: str = "hi", **extra) -> int:
        mid = f"m{next(_ids)}"
        await self.send({"message": {"id": mid, "cid": cid, "body": body, **extra}})
        packet = await self.wait_for(lambda p: "ack" in p and p["ack"]["mid"] == mid
                                     or ("message" in p and p["message"].get("id") == mid and "error" in p["message"]))
        assert "ack" not in packet, f"message {mid} should have failed"
        return packet["message"]["error"]["status"]

    # -- events ------------------------------------------------------------------------------

    async def wait_for(self, key_or_pred, timeout: float = TIMEOUT) -> dict:
        """The first packet (buffered or new) with that top-level key or matching the predicate;
        it is removed from the buffer."""
        match = _matcher(key_or_pred)
        for i, packet in enumerate(self.events):
            if match(packet):
                return self.events.pop(i)
        with trio.fail_after(timeout):
            while True:
                packet = await self.receive()
                if match(packet):
                    return packet
                self.events.append(packet)

    async def expect_no(self, key_or_pred, within: float = 0.3) -> None:
        """Assert no packet matching arrives (or is buffered) within `within` seconds."""
        match = _matcher(key_or_pred)
        assert not any(match(p) for p in self.events), f"unexpected buffered packet: {self.events}"
        with trio.move_on_after(within):
            while True:
                packet = await self.receive()
                assert not match(packet), f"unexpected packet: {packet}"
                self.events.append(packet)

    def drain(self) -> None:
        self.events.clear()

    async def close(self) -> None:
        await self.ws.aclose()


async def open_client(nursery, server, name: str = "") -> SamaClient:
    ws = await trio_websocket.connect_websocket_url(nursery, server.ws_url + "/", max_message_size=1 << 22)
    return SamaClient(ws, name)


async def create_user(server, nursery, login: str, password: str = "secret-pw", **fields) -> dict:
    """user_create on an anonymous socket; returns the user object."""
    client = await open_client(nursery, server)
    try:
        response = await client.ok("user_create", {"login": login, "password": password, **fields})
    finally:
        await client.close()
    return response["user"]


async def login_http(server, login: str, password: str = "secret-pw", device_id: str = "d1",
                     *, http: httpx.AsyncClient | None = None) -> httpx.Response:
    """POST /login with login+password (a fresh cookie jar unless `http` is given)."""
    if http is not None:
        return await http.post("/login", json={"login": login, "password": password, "device_id": device_id})
    async with httpx.AsyncClient(base_url=server.http_url) as c:
        return await c.post("/login", json={"login": login, "password": password, "device_id": device_id})


async def connect(server, nursery, token: str, device_id: str, name: str = "") -> SamaClient:
    """A socket linked to an access token with `connect`."""
    client = await open_client(nursery, server, name)
    await client.ok("connect", {"token": token, "device_id": device_id})
    client.token = token
    return client


async def device(server, nursery, login: str, device_id: str, password: str = "secret-pw") -> SamaClient:
    """POST /login for that device, then a connected socket."""
    response = await login_http(server, login, password, device_id)
    assert response.status_code == 200, response.text
    data = response.json()
    client = await connect(server, nursery, data["access_token"], device_id, f"{login}/{device_id}")
    client.user = data["user"]
    client.user_id = data["user"]["_id"]
    return client


async def user_with_devices(server, nursery, login: str, devices=("d1", "d2"), **fields) -> list[SamaClient]:
    """A new user with one connected socket per device."""
    await create_user(server, nursery, login, **fields)
    return [await device(server, nursery, login, d) for d in devices]


async def private_chat(a: SamaClient, b: SamaClient) -> str:
    response = await a.ok("conversation_create", {"type": "u", "participants": [b.user_id]})
    return response["conversation"]["_id"]


async def two_users(server, nursery, a: str = "alice", b: str = "bob"):
    """Two users with two connected devices each: (a1, a2, b1, b2)."""
    a1, a2 = await user_with_devices(server, nursery, a)
    b1, b2 = await user_with_devices(server, nursery, b)
    return a1, a2, b1, b2


def now_ms() -> int:
    return int(time.time() * 1000)
