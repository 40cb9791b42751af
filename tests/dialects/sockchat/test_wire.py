"""Units: array query parameters, ids, options; and the Socket.IO gateway in /metrics."""

import json
import types
from contextlib import asynccontextmanager

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url
from werkzeug.datastructures import MultiDict

from chatd.config import ConfigError, DialectConfig
from chatd.dialects.sockchat import options_of
from chatd.dialects.sockchat.errors import BadRequest
from chatd.dialects.sockchat.wire import array_param, parse_id

from .client import new_user, sio_client


@pytest.mark.parametrize("pairs", [
    [("users", "5"), ("users", "7")], [("users[]", "5"), ("users[]", "7")], [("users", "5,7")],
    [("users[0]", "5"), ("users[1]", "7")], [("users", '["5", 7]')], [("users", "5, 7,,5")],
])
def test_array_param_forms(pairs):
    assert array_param(MultiDict(pairs), "users") == [5, 7]


@pytest.mark.parametrize("pairs", [[], [("users", "")], [("users", "a")], [("users", "[")], [("users", '{"a":1}')],
                                   [("users", "1.5")], [("users", str(1 << 63))], [("other", "1")]])
def test_array_param_rejects(pairs):
    with pytest.raises(BadRequest):
        array_param(MultiDict(pairs), "users")


def test_parse_id():
    assert parse_id("42") == 42 and parse_id(42) == 42
    for bad in ("", "-1", "4e2", True, None, 1.0, "１２"):
        with pytest.raises(BadRequest):
            parse_id(bad)


def test_options():
    opts = options_of(DialectConfig(options=types.MappingProxyType({"require_password": True})))
    assert opts.require_password is True and opts.welcome_username == "chatd"
    for bad in ({"require_pasword": True}, {"require_password": "yes"}):
        with pytest.raises(ConfigError):
            options_of(DialectConfig(options=types.MappingProxyType(bad)))


async def test_metrics_show_the_socketio_gateway(server, http):
    with trio.fail_after(10):
        alice = await new_user(http, "alice")
        async with sio_client(server, alice, transports=["websocket"]):
            text = (await http.get("/metrics")).text
            assert 'chatd_connections_open{gateway="socketio"} 1' in text
            assert 'chatd_connections_accepted_total{gateway="socketio"} 1' in text


@asynccontextmanager
async def open_socket(server, token: str):
    url = "ws" + server.http_url.removeprefix("http") + "/socket.io/?EIO=4&transport=websocket"
    async with open_websocket_url(url) as ws:
        assert (await ws.get_message()).startswith("0{")
        await ws.send_message("40" + json.dumps({"token": token}))
        assert (await ws.get_message()).startswith("40{")
        yield ws


async def closed_code(ws) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await ws.get_message()
    return closed.value.reason.code


async def test_shutdown_closes_sockets(server, http):
    with trio.fail_after(10):
        alice = await new_user(http, "alice")
        async with open_socket(server, alice.token) as ws:
            for close in server.on_shutdown:
                close()
            assert await closed_code(ws) == 1001
        # the whole server stopping: our close frames go out before hypercorn stops
        async with open_socket(server, alice.token) as ws:
            server.stop()
            assert await closed_code(ws) == 1001
