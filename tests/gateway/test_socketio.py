"""Socket.IO v5: packet units, raw protocol over a WebSocket, then the stock python-socketio client."""

from __future__ import annotations

import json
import queue
from typing import Any

import httpx
import pytest
import socketio
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from chatd.gateway.engineio import ProtocolError
from chatd.gateway.socketio import (
    ConnectInfo,
    ConnectRefused,
    Later,
    PacketType,
    SioPacket,
    Socket,
    SocketIOServer,
    decode_packet,
    encode_event,
    encode_packet,
)
from tests.gateway.conftest import serving

UNSET: Any = SioPacket(PacketType.CONNECT).data

# -- packets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "text"),
    [
        (SioPacket(PacketType.CONNECT), "0"),
        (SioPacket(PacketType.CONNECT, "/admin", {"token": "t"}), '0/admin,{"token":"t"}'),
        (SioPacket(PacketType.CONNECT, "/", {"sid": "abc"}), '0{"sid":"abc"}'),
        (SioPacket(PacketType.DISCONNECT, "/admin"), "1/admin,"),
        (SioPacket(PacketType.EVENT, "/", ["hello", 1]), '2["hello",1]'),
        (SioPacket(PacketType.EVENT, "/admin", ["hello"], 13), '2/admin,13["hello"]'),
        (SioPacket(PacketType.ACK, "/", ["bar"], 7), '37["bar"]'),
        (SioPacket(PacketType.ACK, "/", [], 7), "37[]"),
        (SioPacket(PacketType.CONNECT_ERROR, "/", {"message": "Invalid namespace"}), '4{"message":"Invalid namespace"}'),
    ],
)
def test_packet_round_trip(packet, text):
    assert encode_packet(packet) == text
    assert decode_packet(text) == packet


def test_decode_namespace_without_trailing_comma():
    assert decode_packet("1/admin") == SioPacket(PacketType.DISCONNECT, "/admin")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "9",
        '2{"not":"a list"}',
        "2[]",
        "2[1]",
        '2["x"',
        "3[1]",
        '37{"a":1}',
        '0["auth must be an object"]',
        '51-["x",{"_placeholder":true,"num":0}]',
        '61-[{"_placeholder":true,"num":0}]',
        '21234567890123456["x"]',
    ],
)
def test_decode_rejects(text):
    with pytest.raises(ProtocolError):
        decode_packet(text)


def test_encode_event_once():
    packet = encode_event("news", {"id": 1}, "x", namespace="/chat")
    assert packet.frame == '42/chat,["news",{"id":1},"x"]'
    assert packet.namespace == "/chat"
    with pytest.raises(ValueError):
        encode_event("disconnect")


# -- a real server ---------------------------------------------------------------------


class ChatHandler:
    """A test app: echo/whoami acks, fan-out, kick, crash and flood on request."""

    def __init__(self) -> None:
        self.sockets: list[Socket] = []
        self.disconnects: dict[str, str] = {}
        self._changed = trio.Event()

    async def connect(self, socket: Socket, info: ConnectInfo) -> None:
        if (info.auth or {}).get("token") == "bad":
            raise ConnectRefused("Not authorized", {"why": "bad token"})
        socket.state["info"] = info
        socket.emit("welcome", {"sid": socket.sid, "namespace": socket.namespace})
        self.sockets.append(socket)
        self._notify()

    async def event(self, socket: Socket, name: str, args: list) -> Any:
        info: ConnectInfo = socket.state["info"]
        match name:
            case "echo":
                return args
            case "whoami":
                return {
                    "auth": info.auth,
                    "header": info.headers.get("x-test"),
                    "query": info.query.get("room"),
                    "remote": info.remote_addr,
                }
            case "broadcast":
                packet = encode_event("news", *args, namespace=socket.namespace)
                for other in self.sockets:
                    if other.namespace == socket.namespace:
                        other.send_packet(packet)
            case "kick":
                await socket.close()
            case "crash":
                raise RuntimeError("handler bug")
            case "flood":
                for i in range(1000):
                    socket.emit("spam", i)
            case "slow":
                await trio.sleep(args[0])
                return "done"
        return None

    async def disconnect(self, socket: Socket, reason: str) -> None:
        assert socket.sid not in self.disconnects, "disconnect called twice"
        self.disconnects[socket.sid] = reason
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_disconnect(self, sid: str) -> str:
        while sid not in self.disconnects:
            await self._changed.wait()
        return self.disconnects[sid]

    async def wait_connected(self, count: int) -> None:
        while len(self.sockets) < count:
            await self._changed.wait()


def make_server(handlers, **options) -> SocketIOServer:
    options.setdefault("ping_interval", 5.0)
    options.setdefault("ping_timeout", 5.0)
    options.setdefault("shutdown_timeout", 0.2)
    return SocketIOServer(handlers, **options)


async def open_eio(ws: WebSocketConnection) -> None:
    assert (await ws.get_message())[0] == "0"


async def sio_connect(ws: WebSocketConnection, namespace: str = "/", auth: dict | None = None) -> str:
    prefix = "" if namespace == "/" else namespace + ","
    await ws.send_message("40" + prefix + (json.dumps(auth) if auth else ""))
    reply = await ws.get_message()
    assert reply.startswith("40" + prefix), reply
    return json.loads(reply[2 + len(prefix) :])["sid"]


async def test_raw_connect_event_ack_and_namespaces():
    root, admin = ChatHandler(), ChatHandler()
    with trio.fail_after(5):
        async with serving(make_server({"/": root, "/admin": admin})) as srv:
            async with open_websocket_url(srv.ws_url + "?EIO=4&transport=websocket") as ws:
                await open_eio(ws)
                sid = await sio_connect(ws)
                assert json.loads((await ws.get_message())[2:]) == [
                    "welcome",
                    {"sid": sid, "namespace": "/"},
                ]
                await ws.send_message('421["echo","x",{"y":2}]')
                assert await ws.get_message() == '431["x",{"y":2}]'
                await ws.send_message('42["echo","no ack wanted"]')
                await ws.send_message("42/nope,[\"echo\"]")
                await ws.send_message('422["whoami"]')
                assert (await ws.get_message()).startswith("432[")

                await ws.send_message("40/nope,")
                assert await ws.get_message() == '44/nope,{"message":"Invalid namespace"}'

                admin_sid = await sio_connect(ws, "/admin", {"token": "ok"})
                assert admin_sid != sid
                assert (await ws.get_message()).startswith('42/admin,["welcome"')
                await ws.send_message('42/admin,9["echo",1]')
                assert await ws.get_message() == "43/admin,9[1]"
                assert admin.sockets[0].info.auth == {"token": "ok"}

                await ws.send_message("41/admin,")
                assert await admin.wait_disconnect(admin_sid) == "client namespace disconnect"
                await ws.send_message('423["echo"]')
                assert await ws.get_message() == "433[]"
            assert await root.wait_disconnect(sid) == "transport close"


async def test_raw_connect_refused():
    handler = ChatHandler()
    with trio.fail_after(5):
        async with serving(make_server({"/": handler})) as srv:
            async with open_websocket_url(srv.ws_url + "?EIO=4&transport=websocket") as ws:
                await open_eio(ws)
                await ws.send_message('40{"token":"bad"}')
                assert json.loads((await ws.get_message())[2:]) == {
                    "message": "Not authorized",
                    "data": {"why": "bad token"},
                }
                await sio_connect(ws, auth={"token": "good"})
    assert handler.disconnects == {handler.sockets[0].sid: "transport close"}


class LaterHandler(ChatHandler):
    """`later <name>` answers its ack once the test sets `release[name]`; `echo` at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release: dict[str, trio.Event] = {}
        self.seen: list[str] = []

    async def event(self, socket: Socket, name: str, args: list) -> Any:
        self.seen.append(args[0])
        if name != "later":
            return await super().event(socket, name, args)
        gate = self.release.setdefault(args[0], trio.Event())

        async def wait() -> str:
            await gate.wait()
            return "done " + args[0]

        return Later(wait)


async def test_later_acks_do_not_hold_up_next_events_and_keep_their_order():
    handler = LaterHandler()
    with trio.fail_after(5):
        async with serving(make_server({"/": handler})) as srv:
            async with open_websocket_url(srv.ws_url + "?EIO=4&transport=websocket") as ws:
                await open_eio(ws)
                await sio_connect(ws)
                await ws.get_message()  # welcome
                await ws.send_message('421["later","a"]')
                await ws.send_message('422["echo","b"]')
                await ws.send_message('423["later","c"]')
                await ws.send_message('42["later","no ack wanted"]')
                while len(handler.seen) < 4:  # every event handled, none acked yet
                    await trio.sleep(0.01)
                handler.release["c"].set()
                with trio.move_on_after(0.2):
                    raise AssertionError(f"ack out of order: {await ws.get_message()}")
                handler.release["a"].set()
                assert [await ws.get_message() for _ in range(3)] == [
                    '431["done a"]', '432["b"]', '433["done c"]']
                await ws.send_message('424["echo","d"]')  # nothing outstanding: at once
                assert await ws.get_message() == '434["d"]'


async def test_fan_out_with_one_encoding():
    handler = ChatHandler()
    url_suffix = "?EIO=4&transport=websocket"
    with trio.fail_after(5):
        async with serving(make_server({"/": handler})) as srv:
            async with (
                open_websocket_url(srv.ws_url + url_suffix) as a,
                open_websocket_url(srv.ws_url + url_suffix) as b,
            ):
                for ws in (a, b):
                    await open_eio(ws)
                    await sio_connect(ws)
                    await ws.get_message()
                await a.send_message('42["broadcast","hi",{"n":1}]')
                for ws in (a, b):
                    assert await ws.get_message() == '42["news","hi",{"n":1}]'


async def test_server_close_kicks_one_namespace():
    handler = ChatHandler()
    with trio.fail_after(5):
        async with serving(make_server({"/": handler})) as srv:
            async with open_websocket_url(srv.ws_url + "?EIO=4&transport=websocket") as ws:
                await open_eio(ws)
                sid = await sio_connect(ws)
                await ws.get_message()
                await ws.send_message('421["kick"]')
                assert await ws.get_message() == "41"
                assert await handler.wait_disconnect(sid) == "server namespace disconnect"
                assert not handler.sockets[0].emit("after", 1)


async def test_handler_crash_closes_only_its_connection():
    handler = ChatHandler()
    url = "?EIO=4&transport=websocket"
    with trio.fail_after(5):
        async with serving(make_server({"/": handler})) as srv:
            async with (
                open_websocket_url(srv.ws_url + url) as bad,
                open_websocket_url(srv.ws_url + url) as good,
            ):
                for ws in (bad, good):
                    await open_eio(ws)
                    await sio_connect(ws)
                    await ws.get_message()
                bad_sid, good_sid = (s.sid for s in handler.sockets)
                await bad.send_message('42["crash"]')
                with pytest.raises(ConnectionClosed):
                    await bad.get_message()
                assert await handler.wait_disconnect(bad_sid) == "server error"
                await good.send_message('421["echo","ok"]')
                assert await good.get_message() == '431["ok"]'
                assert good_sid not in handler.disconnects


async def test_binary_packets_are_refused():
    handler = ChatHandler()
    with trio.fail_after(5):
        async with serving(make_server({"/": handler})) as srv:
            async with open_websocket_url(srv.ws_url + "?EIO=4&transport=websocket") as ws:
                await open_eio(ws)
                sid = await sio_connect(ws)
                await ws.get_message()
                await ws.send_message('451-["upload",{"_placeholder":true,"num":0}]')
                with pytest.raises(ConnectionClosed):
                    await ws.get_message()
                assert await handler.wait_disconnect(sid) == "parse error"


async def test_slow_consumer_is_disconnected():
    handler = ChatHandler()
    with trio.fail_after(5):
        async with serving(make_server({"/": handler}, outbound_queue_size=50)) as srv:
            async with open_websocket_url(srv.ws_url + "?EIO=4&transport=websocket") as ws:
                await open_eio(ws)
                sid = await sio_connect(ws)
                await ws.send_message('42["flood"]')
                assert await handler.wait_disconnect(sid) == "slow consumer"
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await ws.get_message()
                assert closed.value.reason.code == 1013


async def test_connect_timeout():
    handler = ChatHandler()
    with trio.fail_after(5):
        async with serving(make_server({"/": handler}, connect_timeout=0.2)) as srv:
            async with open_websocket_url(srv.ws_url + "?EIO=4&transport=websocket") as ws:
                await open_eio(ws)
                with pytest.raises(ConnectionClosed):
                    await ws.get_message()


async def test_shutdown_disconnects_sockets():
    handler = ChatHandler()
    server = make_server({"/": handler})
    engine_scope = trio.CancelScope()

    async def run_engine(task_status=trio.TASK_STATUS_IGNORED):
        with engine_scope:
            await server.run(task_status=task_status)

    with trio.fail_after(5):
        async with serving(server, run=False) as srv, trio.open_nursery() as nursery:
            await nursery.start(run_engine)
            async with open_websocket_url(srv.ws_url + "?EIO=4&transport=websocket") as ws:
                await open_eio(ws)
                sid = await sio_connect(ws)
                await ws.get_message()
                await ws.send_message('42["slow",0.2]')
                await trio.sleep(0.05)
                engine_scope.cancel()
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await ws.get_message()
                assert closed.value.reason.code == 1001
            assert await handler.wait_disconnect(sid) == "server shutting down"


async def test_disconnect_posted_over_polling():
    """What the stock client does not always manage (see test_stock_client): DISCONNECT by POST."""
    handler = ChatHandler()
    with trio.fail_after(5):
        async with serving(make_server({"/": handler})) as srv, httpx.AsyncClient(timeout=5) as http:
            r = await http.get(srv.url, params={"EIO": "4", "transport": "polling"})
            params = {"EIO": "4", "transport": "polling", "sid": json.loads(r.text[1:])["sid"]}
            assert (await http.post(srv.url, params=params, content="40")).text == "ok"
            assert (await http.get(srv.url, params=params)).text.startswith("40{")
            await handler.wait_connected(1)
            sid = handler.sockets[0].sid
            assert (await http.post(srv.url, params=params, content="41")).text == "ok"
            assert await handler.wait_disconnect(sid) == "client namespace disconnect"


# -- the stock python-socketio client (sync, run in a thread) -----------------------------


def run_client(url: str, **connect_options: Any) -> dict[str, Any]:
    """Connect, exchange a few events, disconnect; return what the client saw."""
    client = socketio.Client(reconnection=False, request_timeout=5)
    inbox: queue.Queue = queue.Queue()
    client.on("welcome", lambda data: inbox.put(("welcome", data)))
    client.on("news", lambda *args: inbox.put(("news", args)))
    client.connect(url, wait_timeout=5, **connect_options)
    try:
        seen = {"transport": client.transport(), "welcome": inbox.get(timeout=5)}
        seen["echo"] = client.call("echo", ("a", {"b": [1, 2]}), timeout=5)
        seen["whoami"] = client.call("whoami", timeout=5)
        client.emit("broadcast", "hello")
        seen["news"] = inbox.get(timeout=5)
        return seen
    finally:
        client.disconnect()


def run_refused_client(url: str) -> tuple[str, list]:
    client = socketio.Client(reconnection=False, request_timeout=5)
    errors: list = []
    client.on("connect_error", lambda data: errors.append(data))
    try:
        client.connect(url, auth={"token": "bad"}, wait_timeout=5, transports=["websocket"])
    except socketio.exceptions.ConnectionError as exc:
        return str(exc), errors
    finally:
        client.disconnect()
    raise AssertionError("connect should have been refused")


async def in_thread(fn, *args, **kwargs):
    return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs), abandon_on_cancel=True)


@pytest.mark.parametrize("transports", [None, ["websocket"], ["polling"]])
async def test_stock_client(transports):
    handler = ChatHandler()
    with trio.fail_after(10):
        # short pings: a polling client that never sends its close is noticed well in time
        server = make_server({"/": handler}, ping_interval=1.0, ping_timeout=1.0)
        async with serving(server) as srv:
            seen = await in_thread(
                run_client,
                srv.base_url + "?room=lobby",
                transports=transports,
                auth={"token": "t1"},
                headers={"X-Test": "custom"},
            )
            expected_transport = "polling" if transports == ["polling"] else "websocket"
            assert seen["transport"] == expected_transport
            sid = handler.sockets[0].sid
            assert seen["welcome"] == ("welcome", {"sid": sid, "namespace": "/"})
            assert seen["echo"] == ("a", {"b": [1, 2]})
            assert seen["whoami"] == {
                "auth": {"token": "t1"},
                "header": "custom",
                "query": "lobby",
                "remote": "127.0.0.1",
            }
            assert seen["news"] == ("news", ("hello",))
            # The client queues DISCONNECT and closes its WebSocket at once: either may win.
            # Over polling, the stock client's write loop can see the "disconnecting" state
            # before it posts the queued DISCONNECT and CLOSE; then only the missing pong tells.
            reasons = {"client namespace disconnect", "transport close"}
            if transports == ["polling"]:
                reasons = {"client namespace disconnect", "ping timeout"}
            assert await handler.wait_disconnect(sid) in reasons


async def test_stock_client_refused():
    handler = ChatHandler()
    with trio.fail_after(10):
        async with serving(make_server({"/": handler})) as srv:
            message, errors = await in_thread(run_refused_client, srv.base_url)
            assert "failed to connect" in message
            assert errors == [{"message": "Not authorized", "data": {"why": "bad token"}}]
            assert handler.sockets == []
