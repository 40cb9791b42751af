"""Engine.IO v4: framing units, then a real server over polling and WebSocket."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from chatd.gateway.engineio import (
    EngineIOServer,
    EngineIOSession,
    Packet,
    PacketType,
    ProtocolError,
    decode_packet,
    decode_payload,
    encode_message,
    encode_packet,
    encode_payload,
)
from tests.gateway.conftest import serving

# -- framing ---------------------------------------------------------------------------


def test_encode_packets():
    assert encode_packet(Packet(PacketType.PING)) == "2"
    assert encode_packet(Packet(PacketType.PONG, "probe")) == "3probe"
    assert encode_packet(Packet(PacketType.MESSAGE, "héllo")) == "4héllo"
    assert encode_packet(Packet(PacketType.MESSAGE, b"\x01\x02")) == b"\x01\x02"
    with pytest.raises(ProtocolError):
        encode_packet(Packet(PacketType.PING, b"x"))
    assert encode_message("hi") == "4hi"
    assert encode_message(b"\x00") == b"\x00"


def test_decode_packets():
    assert decode_packet("2probe") == Packet(PacketType.PING, "probe")
    assert decode_packet("6") == Packet(PacketType.NOOP)
    assert decode_packet("4") == Packet(PacketType.MESSAGE, "")
    assert decode_packet(b"\xff") == Packet(PacketType.MESSAGE, b"\xff")
    for bad in ("", "7", "x4"):
        with pytest.raises(ProtocolError):
            decode_packet(bad)


def test_payload_round_trip():
    frames = ["4hello", b"\x01\x02\x03", "2", "4€"]
    body = encode_payload(frames)
    assert body == "4hello\x1ebAQID\x1e2\x1e4€"
    assert decode_payload(body) == [
        Packet(PacketType.MESSAGE, "hello"),
        Packet(PacketType.MESSAGE, b"\x01\x02\x03"),
        Packet(PacketType.PING),
        Packet(PacketType.MESSAGE, "€"),
    ]
    assert decode_payload("4") == [Packet(PacketType.MESSAGE, "")]
    with pytest.raises(ProtocolError):
        decode_payload("b!!!")
    with pytest.raises(ProtocolError):
        decode_payload("4a\x1e\x1e4b")


# -- a real server ---------------------------------------------------------------------


class Recorder:
    """An echo app that records the sessions it saw and why they closed."""

    def __init__(self) -> None:
        self.sessions: list[EngineIOSession] = []
        self.closed: dict[str, str | None] = {}
        self.changed = trio.Event()

    async def __call__(self, session: EngineIOSession) -> None:
        self.sessions.append(session)
        self._changed()
        async for message in session:
            if message == "close me":
                session.close("app close")
            elif message == "flood":
                for i in range(100):
                    session.send(str(i))
            elif message == "crash":
                raise RuntimeError("boom")
            else:
                session.send(message)
        self.closed[session.sid] = session.close_reason
        self._changed()

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def wait_closed(self, sid: str) -> str | None:
        while sid not in self.closed:
            await self.changed.wait()
        return self.closed[sid]


def make_server(app, **options) -> EngineIOServer:
    options.setdefault("ping_interval", 5.0)
    options.setdefault("ping_timeout", 5.0)
    options.setdefault("shutdown_timeout", 0.2)
    return EngineIOServer(app, **options)


async def handshake(http: httpx.AsyncClient, url: str) -> dict:
    r = await http.get(url, params={"EIO": "4", "transport": "polling"})
    assert r.status_code == 200, r.text
    assert r.text[0] == "0"
    return json.loads(r.text[1:])


def poll_params(sid: str) -> dict:
    return {"EIO": "4", "transport": "polling", "sid": sid}


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def test_polling_handshake_and_echo(http):
    app = Recorder()
    with trio.fail_after(5):
        async with serving(make_server(app, max_payload=5000)) as srv:
            open_ = await handshake(http, srv.url)
            assert open_["upgrades"] == ["websocket"]
            assert (open_["pingInterval"], open_["pingTimeout"], open_["maxPayload"]) == (5000, 5000, 5000)
            sid = open_["sid"]
            r = await http.post(srv.url, params=poll_params(sid), content="4hello\x1ebAQID\x1e4€")
            assert (r.status_code, r.text) == (200, "ok")
            received = []
            while len(received) < 3:
                r = await http.get(srv.url, params=poll_params(sid))
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/plain")
                received += r.text.split("\x1e")
            assert received == ["4hello", "bAQID", "4€"]
            assert app.sessions[0].info.transport == "polling"


async def test_protocol_errors(http):
    with trio.fail_after(5):
        async with serving(make_server(Recorder())) as srv:

            async def error(method="GET", **params):
                r = await http.request(method, srv.url, params=params)
                return r.status_code, r.json()

            assert await error(EIO="3", transport="polling") == (
                400,
                {"code": 5, "message": "Unsupported protocol version"},
            )
            assert await error(transport="polling") == (
                400,
                {"code": 5, "message": "Unsupported protocol version"},
            )
            assert await error(EIO="4", transport="carrier-pigeon") == (
                400,
                {"code": 0, "message": "Transport unknown"},
            )
            assert await error("POST", EIO="4", transport="polling") == (
                400,
                {"code": 2, "message": "Bad handshake method"},
            )
            assert await error(EIO="4", transport="websocket") == (
                400,
                {"code": 3, "message": "Bad request"},
            )
            assert await error(EIO="4", transport="polling", sid="nope") == (
                400,
                {"code": 1, "message": "Session ID unknown"},
            )
            assert await error("POST", EIO="4", transport="polling", sid="nope") == (
                400,
                {"code": 1, "message": "Session ID unknown"},
            )


async def test_concurrent_get_is_refused(http):
    app = Recorder()
    with trio.fail_after(5):
        async with serving(make_server(app)) as srv:
            sid = (await handshake(http, srv.url))["sid"]
            first: list[httpx.Response] = []
            async with trio.open_nursery() as nursery:

                async def pending_get():
                    first.append(await http.get(srv.url, params=poll_params(sid)))

                nursery.start_soon(pending_get)
                while app.sessions[0]._poll_scope is None:
                    await trio.sleep(0.01)
                r = await http.get(srv.url, params=poll_params(sid))
                assert r.status_code == 400
                assert r.json()["code"] == 3
            assert first[0].text == "1"
            assert await app.wait_closed(sid) == "transport error"


async def test_polling_post_over_max_payload(http):
    app = Recorder()
    with trio.fail_after(5):
        async with serving(make_server(app, max_payload=100)) as srv:
            sid = (await handshake(http, srv.url))["sid"]
            r = await http.post(srv.url, params=poll_params(sid), content="4" + "x" * 200)
            assert r.status_code == 413
            assert await app.wait_closed(sid) == "transport error"
            r = await http.get(srv.url, params=poll_params(sid))
            assert r.text == "1"
            r = await http.get(srv.url, params=poll_params(sid))
            assert r.status_code == 400


async def test_polling_bad_payload_closes_session(http):
    app = Recorder()
    with trio.fail_after(5):
        async with serving(make_server(app)) as srv:
            sid = (await handshake(http, srv.url))["sid"]
            r = await http.post(srv.url, params=poll_params(sid), content="9what")
            assert r.status_code == 400
            assert await app.wait_closed(sid) == "parse error"


async def test_server_close_sends_close_packet_over_polling(http):
    app = Recorder()
    with trio.fail_after(5):
        async with serving(make_server(app)) as srv:
            sid = (await handshake(http, srv.url))["sid"]
            await http.post(srv.url, params=poll_params(sid), content="4close me")
            r = await http.get(srv.url, params=poll_params(sid))
            assert r.text == "1"
            assert await app.wait_closed(sid) == "app close"


async def test_client_close_packet(http):
    app = Recorder()
    with trio.fail_after(5):
        async with serving(make_server(app)) as srv:
            sid = (await handshake(http, srv.url))["sid"]
            await http.post(srv.url, params=poll_params(sid), content="1")
            assert await app.wait_closed(sid) == "transport close"


async def test_slow_consumer_is_closed(http):
    app = Recorder()
    with trio.fail_after(5):
        async with serving(make_server(app, outbound_queue_size=10)) as srv:
            sid = (await handshake(http, srv.url))["sid"]
            await http.post(srv.url, params=poll_params(sid), content="4flood")
            assert await app.wait_closed(sid) == "slow consumer"
            r = await http.get(srv.url, params=poll_params(sid))
            assert r.text == "1"


async def test_app_crash_is_contained(http):
    app = Recorder()
    with trio.fail_after(5):
        async with serving(make_server(app)) as srv:
            sid1 = (await handshake(http, srv.url))["sid"]
            sid2 = (await handshake(http, srv.url))["sid"]
            await http.post(srv.url, params=poll_params(sid1), content="4crash")
            r = await http.get(srv.url, params=poll_params(sid1))
            assert r.text == "1"
            await http.post(srv.url, params=poll_params(sid2), content="4still here")
            r = await http.get(srv.url, params=poll_params(sid2))
            assert r.text == "4still here"


async def test_cors(http):
    with trio.fail_after(5):
        async with serving(make_server(Recorder(), cors_allowed_origins=["https://ok.example"])) as srv:
            params = {"EIO": "4", "transport": "polling"}
            r = await http.options(
                srv.url,
                params=params,
                headers={
                    "Origin": "https://ok.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type",
                },
            )
            assert r.status_code == 204
            assert r.headers["access-control-allow-origin"] == "https://ok.example"
            assert r.headers["access-control-allow-credentials"] == "true"
            assert "POST" in r.headers["access-control-allow-methods"]
            assert r.headers["access-control-allow-headers"] == "content-type"
            r = await http.get(srv.url, params=params, headers={"Origin": "https://ok.example"})
            assert r.status_code == 200
            assert r.headers["access-control-allow-origin"] == "https://ok.example"
            r = await http.get(srv.url, params=params, headers={"Origin": "https://evil.example"})
            assert r.status_code == 403
            assert r.json() == {"code": 4, "message": "Forbidden"}
            r = await http.get(srv.url, params=params)
            assert "access-control-allow-origin" not in r.headers

        async with serving(make_server(Recorder(), cors_allowed_origins="*")) as srv:
            r = await http.get(srv.url, params=params, headers={"Origin": "https://any.example"})
            assert r.status_code == 200
            assert r.headers["access-control-allow-origin"] == "https://any.example"


async def test_websocket_transport():
    app = Recorder()
    with trio.fail_after(5):
        async with serving(make_server(app)) as srv:
            async with open_websocket_url(srv.ws_url + "?EIO=4&transport=websocket") as ws:
                opened = await ws.get_message()
                assert opened[0] == "0"
                assert json.loads(opened[1:])["upgrades"] == []
                await ws.send_message("4hi")
                assert await ws.get_message() == "4hi"
                await ws.send_message(b"\x00\x01")
                assert await ws.get_message() == b"\x00\x01"
                assert app.sessions[0].transport == "websocket"
                await ws.send_message("4close me")
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
                assert closed.value.reason.code == 1000
            assert await app.wait_closed(app.sessions[0].sid) == "app close"


async def test_websocket_refusals():
    with trio.fail_after(5):
        async with serving(make_server(Recorder())) as srv:
            for query in ("?EIO=3&transport=websocket", "?EIO=4&transport=websocket&sid=nope"):
                with pytest.raises(Exception) as refused:
                    async with open_websocket_url(srv.ws_url + query):
                        pass
                assert getattr(refused.value, "status_code", None) == 400


async def test_websocket_origin_refused():
    with trio.fail_after(5):
        async with serving(make_server(Recorder(), cors_allowed_origins=["https://ok.example"])) as srv:
            url = srv.ws_url + "?EIO=4&transport=websocket"
            with pytest.raises(Exception) as refused:
                async with open_websocket_url(url, extra_headers=[(b"Origin", b"https://evil.example")]):
                    pass
            assert getattr(refused.value, "status_code", None) == 403
            async with open_websocket_url(url, extra_headers=[(b"Origin", b"https://ok.example")]) as ws:
                assert (await ws.get_message())[0] == "0"


async def test_upgrade_from_polling(http):
    app = Recorder()
    with trio.fail_after(5):
        async with serving(make_server(app)) as srv:
            sid = (await handshake(http, srv.url))["sid"]
            session = app.sessions[0]
            pending: list[httpx.Response] = []
            async with trio.open_nursery() as nursery:

                async def pending_get():
                    pending.append(await http.get(srv.url, params=poll_params(sid)))

                nursery.start_soon(pending_get)
                while session._poll_scope is None:
                    await trio.sleep(0.01)
                async with open_websocket_url(srv.ws_url + f"?EIO=4&transport=websocket&sid={sid}") as ws:
                    await ws.send_message("2probe")
                    assert await ws.get_message() == "3probe"
                    while not pending:
                        await trio.sleep(0.01)
                    assert pending[0].text == "6"
                    with trio.fail_after(1):
                        r = await http.get(srv.url, params=poll_params(sid))
                    assert r.text == "6"
                    assert session.transport == "polling"
                    await ws.send_message("5")
                    await ws.send_message("4over ws")
                    assert await ws.get_message() == "4over ws"
                    assert session.transport == "websocket"
                    r = await http.get(srv.url, params=poll_params(sid))
                    assert r.status_code == 400
                assert await app.wait_closed(sid) == "transport close"


async def test_failed_upgrade_keeps_polling(http):
    app = Recorder()
    with trio.fail_after(5):
        async with serving(make_server(app)) as srv:
            sid = (await handshake(http, srv.url))["sid"]
            async with open_websocket_url(srv.ws_url + f"?EIO=4&transport=websocket&sid={sid}") as ws:
                await ws.send_message("4not a probe")
                with pytest.raises(ConnectionClosed):
                    await ws.get_message()
            await http.post(srv.url, params=poll_params(sid), content="4still polling")
            r = await http.get(srv.url, params=poll_params(sid))
            assert r.text == "4still polling"


async def test_ping_pong_and_ping_timeout():
    app = Recorder()
    with trio.fail_after(5):
        async with serving(make_server(app, ping_interval=0.1, ping_timeout=0.2)) as srv:
            url = srv.ws_url + "?EIO=4&transport=websocket"
            async with open_websocket_url(url) as good, open_websocket_url(url) as bad:
                await good.get_message()
                await bad.get_message()
                for _ in range(4):
                    assert await good.get_message() == "2"
                    await good.send_message("3")
                assert await bad.get_message() == "2"
                with pytest.raises(ConnectionClosed):
                    await bad.get_message()
                good_sid, bad_sid = (s.sid for s in app.sessions)
                assert await app.wait_closed(bad_sid) == "ping timeout"
                assert good_sid not in app.closed


async def test_websocket_frame_over_max_payload():
    app = Recorder()
    with trio.fail_after(5):
        async with serving(make_server(app, max_payload=100)) as srv:
            async with open_websocket_url(srv.ws_url + "?EIO=4&transport=websocket") as ws:
                await ws.get_message()
                await ws.send_message("4" + "x" * 101)
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
                assert closed.value.reason.code == 1009
            assert await app.wait_closed(app.sessions[0].sid) == "transport error"


async def test_shutdown_closes_sessions_with_going_away(http):
    app = Recorder()
    server = make_server(app)
    engine_scope = trio.CancelScope()

    async def run_engine(task_status=trio.TASK_STATUS_IGNORED):
        with engine_scope:
            await server.run(task_status=task_status)

    with trio.fail_after(5):
        async with serving(server, run=False) as srv, trio.open_nursery() as nursery:
            await nursery.start(run_engine)
            sid = (await handshake(http, srv.url))["sid"]
            async with open_websocket_url(srv.ws_url + "?EIO=4&transport=websocket") as ws:
                await ws.get_message()
                engine_scope.cancel()
                r = await http.get(srv.url, params=poll_params(sid))
                assert r.text == "1"
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
                assert closed.value.reason.code == 1001
            assert app.closed[sid] == "server shutting down"
            with trio.fail_after(1):
                while server.sessions:
                    await trio.sleep(0.01)
            r = await http.get(srv.url, params={"EIO": "4", "transport": "polling"})
            assert r.status_code == 503
