"""The running server (chatd/server.py, http.py, gateway/): /health, /metrics, the gateway probe,
limits (frame size, body size, idle, slow consumers) and graceful shutdown on SIGTERM/SIGINT."""

import json
import re
import signal

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from chatd import __version__
from chatd.store import tables as T
from tests.helpers import start_subprocess_server

METRICS = {
    "chatd_connections_open": "gauge",
    "chatd_events_delivered_total": "counter",
    "chatd_slow_consumers_dropped_total": "counter",
    "chatd_store_commit_batch_size": "histogram",
    "chatd_store_commit_seconds": "histogram",
    "chatd_http_requests_total": "counter",
}


async def probe(ws) -> dict:
    await ws.send_message("status?")
    return json.loads(await ws.get_message())


async def test_health(http):
    r = await http.get("/health")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "ok" and body["version"] == __version__
    assert isinstance(body["uptime"], int | float) and 0 <= body["uptime"] < 60


def _samples(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def test_metrics_prometheus_text(server, http):
    await http.get("/health")
    user = await server.core.accounts.create("m1")  # at least one commit
    async with open_websocket_url(server.ws_url + "/health") as ws:
        await probe(ws)
        r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name, kind in METRICS.items():
        assert f"# TYPE {name} {kind}\n" in text, name
        assert f"# HELP {name} " in text, name
    samples = _samples(text)
    assert samples['chatd_http_requests_total{method="GET",status="200"}'] >= 1
    assert samples['chatd_connections_open{gateway="websocket"}'] == 1
    assert samples["chatd_store_commit_batch_size_count"] >= 1
    assert samples['chatd_store_commit_batch_size_bucket{le="+Inf"}'] == samples["chatd_store_commit_batch_size_count"]
    assert samples['chatd_store_commit_seconds_bucket{le="+Inf"}'] == samples["chatd_store_commit_seconds_count"]
    assert samples["chatd_slow_consumers_dropped_total"] == 0
    # Buckets are cumulative.
    buckets = [v for k, v in samples.items() if k.startswith("chatd_store_commit_seconds_bucket")]
    assert buckets == sorted(buckets)
    # Every line is a comment or `name{labels} number`.
    for line in text.splitlines():
        assert line.startswith("# ") or re.fullmatch(r"[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+", line), line
    sub = server.core.bus.subscribe(user.id)
    server.core.bus.publish("x", [user.id])
    sub.close()
    r = await http.get("/metrics")
    assert _samples(r.text)["chatd_events_delivered_total"] == 1


async def test_gateway_health_probe_answers_frames(server):
    async with open_websocket_url(server.ws_url + "/health") as ws:
        for _ in range(3):
            body = await probe(ws)
            assert body["status"] == "ok" and body["version"] == __version__
        await ws.send_message(b"binary too")
        assert json.loads(await ws.get_message())["status"] == "ok"
    async with open_websocket_url(server.ws_url + "/health/?x=1") as ws:  # trailing slash, query
        assert (await probe(ws))["status"] == "ok"


async def test_unknown_gateway_path_rejected(server):
    with pytest.raises(ConnectionRejected) as e:
        async with open_websocket_url(server.ws_url + "/no-such-dialect"):
            pass
    assert e.value.status_code == 404
    async with open_websocket_url(server.ws_url + "/health") as ws:  # the listener is unharmed
        assert (await probe(ws))["status"] == "ok"


@pytest.mark.config(limits={"max_ws_frame": 1024})
async def test_oversized_frame_closes_only_that_connection(server):
    async with open_websocket_url(server.ws_url + "/health") as good, \
            open_websocket_url(server.ws_url + "/health") as bad:
        assert (await probe(bad))["status"] == "ok"
        await bad.send_message("x" * 1000)  # under the limit
        await bad.get_message()
        await bad.send_message("x" * 5000)
        with pytest.raises(ConnectionClosed) as e:
            await bad.get_message()
        assert e.value.reason.code == 1009
        assert (await probe(good))["status"] == "ok"


async def _raw_silent_client(port: int, path: str):
    """A WebSocket client that completes the handshake and then never answers anything
    (not even pings); returns the close code the server sends, or None on EOF."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += await stream.receive_some(4096)
        head, buf = buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        while True:
            while len(buf) >= 2:
                opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
                offset = 2
                if length == 126:
                    length, offset = int.from_bytes(buf[2:4], "big"), 4
                elif length == 127:
                    length, offset = int.from_bytes(buf[2:10], "big"), 10
                if len(buf) < offset + length:
                    break
                payload, buf = buf[offset:offset + length], buf[offset + length:]
                if opcode == 0x8:
                    return int.from_bytes(payload[:2], "big")
            chunk = await stream.receive_some(4096)
            if not chunk:
                return None
            buf += chunk


@pytest.mark.config(limits={"idle_timeout": 0.5, "heartbeat_interval": 0.1})
async def test_idle_timeout_closes_a_silent_connection(server):
    port = int(server.ws_url.rsplit(":", 1)[1])
    async with open_websocket_url(server.ws_url + "/health") as alive:  # answers pings: stays open
        t0 = trio.current_time()
        code = await _raw_silent_client(port, "/health")
        elapsed = trio.current_time() - t0
        assert code == 1001
        assert 0.4 <= elapsed < 3
        assert (await probe(alive))["status"] == "ok"


@pytest.mark.config(limits={"rate_per_second": 0.1, "rate_burst": 2})
async def test_rate_limited_connection_closed_with_a_reason(server):
    async with open_websocket_url(server.ws_url + "/health") as ws:
        with pytest.raises(ConnectionClosed) as e:
            for _ in range(5):
                await probe(ws)
    assert e.value.reason.code == 1008 and e.value.reason.reason


async def test_stop_loses_no_acknowledged_write(config):
    from chatd.core.errors import Unavailable
    from chatd.server import Server

    srv = Server(config)
    acked, refused = [], []
    async with trio.open_nursery() as nursery:
        await nursery.start(srv.run)

        async def one(i):
            try:
                await srv.store.write(lambda txn: txn.put(T.meta, b"s" + i.to_bytes(4, "big"), i))
                acked.append(i)
            except Unavailable:
                refused.append(i)

        async with trio.open_nursery() as writers:
            for i in range(300):
                writers.start_soon(one, i)
                if i == 150:
                    srv.stop()
    assert len(acked) + len(refused) == 300 and acked
    from chatd.store.lmdb import Store

    store = Store(config.data_dir)
    try:
        with store.read() as txn:
            stored = {v for _, v in txn.scan(T.meta, prefix=b"s")}
    finally:
        store.close()
    assert set(acked) <= stored


@pytest.fixture
def echo_route(monkeypatch):
    """Add `POST /_test/echo` (reads the body) to the app the server builds."""
    from quart import request

    import chatd.web.app

    create_app = chatd.web.app.create_app

    def with_echo(server):
        app = create_app(server)

        @app.post("/_test/echo")
        async def echo():
            data = await request.get_data()
            return {"size": len(data)}

        return app

    monkeypatch.setattr(chatd.web.app, "create_app", with_echo)


@pytest.mark.config(limits={"max_http_body": 2048})
async def test_http_body_over_limit_gets_413(echo_route, http):
    r = await http.post("/_test/echo", content=b"x" * 2000)
    assert r.status_code == 200 and r.json() == {"size": 2000}
    r = await http.post("/_test/echo", content=b"x" * 5000)
    assert r.status_code == 413

    async def chunks():  # no Content-Length: the limit holds for a streamed body too
        for _ in range(10):
            yield b"y" * 1000

    r = await http.post("/_test/echo", content=chunks())
    assert r.status_code == 413
    assert (await http.get("/health")).status_code == 200


@pytest.mark.config(limits={"outbound_queue": 8})
async def test_gateway_slow_consumer_closed_with_1013_others_unaffected(server, http):
    bus = server.core.bus
    async with open_websocket_url(server.ws_url + "/health") as slow, \
            open_websocket_url(server.ws_url + "/health") as other:
        await probe(slow)
        await probe(other)
        assert len(server.gateway.connections) == 2
        # Subscribe each connection for a user, as a dialect does after login.
        conns = list(server.gateway.connections)
        conns[0].subscribe(1)
        conns[1].subscribe(2)
        slow_ws = slow if conns[0] is _conn_of(server, slow) else other
        other_ws = other if slow_ws is slow else slow
        for i in range(20):  # no checkpoint between publishes: the writer cannot drain
            bus.publish({"i": i}, [1, 2] if i < 4 else [1])
        with pytest.raises(ConnectionClosed) as e:
            await slow_ws.get_message()
        assert e.value.reason.code == 1013 and "slow consumer" in e.value.reason.reason
        assert (await probe(other_ws))["status"] == "ok"
        assert bus.online(2) and not bus.online(1)
        assert server.gateway.stats.slow_consumers >= 1 and bus.dropped_slow == 1


def _conn_of(server, ws):
    """The server-side Connection of a client WebSocket (matched by the client's local port)."""
    local_port = ws.local.port
    for conn in server.gateway.connections:
        if conn.transport.remote_port == local_port:
            return conn
    raise LookupError(local_port)


@pytest.mark.config(limits={"outbound_queue": 8})
async def test_one_slow_consumer_counts_once_in_metrics(server, http):
    async with open_websocket_url(server.ws_url + "/health") as ws:
        await probe(ws)
        next(iter(server.gateway.connections)).subscribe(1)
        for i in range(20):
            server.core.bus.publish(i, [1])
        with pytest.raises(ConnectionClosed):
            await ws.get_message()
    r = await http.get("/metrics")
    assert _samples(r.text)["chatd_slow_consumers_dropped_total"] == 1


@pytest.mark.deadline(30)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_closes_websockets_with_1001_and_exits_0(tmp_path, signum):
    async with await start_subprocess_server(tmp_path) as srv:
        codes = []
        ready = trio.Event()
        opened = 0

        async def client():
            nonlocal opened
            async with open_websocket_url(srv.ws_url + "/health") as ws:
                assert (await probe(ws))["status"] == "ok"
                opened += 1
                if opened == 4:
                    ready.set()
                try:
                    while True:
                        await ws.get_message()
                except ConnectionClosed as e:
                    codes.append(e.reason.code)

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(client)
            await ready.wait()
            async with httpx.AsyncClient(base_url=srv.http_url) as http:
                assert (await http.get("/health")).json()["status"] == "ok"
            t0 = trio.current_time()
            srv.send_signal(signum)
            rc = await srv.wait(10)
            elapsed = trio.current_time() - t0
        assert codes == [1001] * 4
        assert rc == 0, srv.log
        assert elapsed < 10
        assert "Traceback" not in srv.log
